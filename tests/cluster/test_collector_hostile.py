"""Hostile and broken input to the collector (issue 11), and its memory bound (issue 17).

Real report services (and a hostile one speaking the service's protocol) over SSH; one bad
report, or one huge answer, never stalls its host or the round and never shows a traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import subprocess
import sys

from hub.report_records import MAX_SEQ
from hub.report_writer import ReportWriter
from hub.store import Pull
from hubcluster.report_kinds import INVENTORY
from tests.cluster.fleet import INVENTORY_SAMPLE, SETTINGS, collector, stored_seqs
from tests.cluster.hostile_service import start_line_service


def _report(seq: int, epoch: str = "e-hostile", **payload_changes) -> str:
    payload = {**INVENTORY_SAMPLE, **payload_changes}
    record = {"seq": seq, "epoch": epoch, "time": 1.0, "kind": INVENTORY, "payload": payload}
    return json.dumps(record)


def _no_traceback(caplog) -> None:
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert "Traceback" not in caplog.text


def test_poison_reports_are_quarantined_and_the_host_goes_on(store, fleet, caplog):
    healthy = fleet.make(3)
    (hostile,) = fleet.make(1)
    deep = _report(4).replace('"uptime": 1.0', '"uptime": ' + "[" * 50_000 + "]" * 50_000)
    nul_key = _report(6).replace('"os":', '"o\\u0000s": 1, "os":')
    lines = [
        (1, _report(1)),
        (2, _report(2, uptime=2**64)),
        (3, _report(3, hostname="lone \ud800 surrogate")),
        (4, deep),
        (5, _report(5)),
        (6, nul_key),
        (7, _report(7)),
        (2**63, _report(2**63)),
    ]

    async def scenario():
        hostile.acceptor = await start_line_service(hostile.state, lambda: lines)
        await fleet.serve(healthy)
        fleet.register(store)
        col = collector(store, fleet)
        with caplog.at_level(logging.INFO):
            rounds = [await col.run_round(), await col.run_round()]
        await col.close()
        await fleet.close()
        return rounds

    first, second = asyncio.run(scenario())
    assert first.failed == {} and second.failed == {} and first.pulled == 4
    for client in healthy:
        assert stored_seqs(store, client) == client.produced
    assert stored_seqs(store, hostile) == [1, 5, 7]
    evidence = {
        d["seq"]: d["reason"] for d in store.db["rejected_reports"].find({"host": hostile.sha})
    }
    assert sorted(evidence) == [2, 3, 4, 6, MAX_SEQ]
    assert "64-bit" in evidence[2]
    assert "surrogates" in evidence[3]
    assert "nested too deeply" in evidence[4]
    assert "NUL" in evidence[6] or "unknown fields" in evidence[6]
    assert "beyond the 64-bit range" in evidence[MAX_SEQ]
    cursor = store.db["cursors"].find_one({"_id": hostile.sha})
    assert cursor["seq"] == MAX_SEQ and cursor["epoch"] == "e-hostile"
    assert second.stored == 0
    _no_traceback(caplog)


def test_a_write_the_database_refuses_fails_only_its_report(store, fleet):
    """The group writer's fallback, for what no check foresaw: here, unchecked input."""
    a, b = fleet.make(2, reports_each=0)
    now = dt.datetime.now(dt.UTC)
    good = {"seq": 1, "time": 1.0, "kind": INVENTORY, "payload": INVENTORY_SAMPLE}
    bad = {**good, "seq": 2, "payload": {**INVENTORY_SAMPLE, "uptime": 2**64}}
    later = {**good, "seq": 3}
    writer = ReportWriter(store, "hub1", lambda: True)

    async def scenario():
        return await asyncio.gather(
            writer.write(Pull(a.sha, [good, bad, later], [], 3, now, "e1", "")),
            writer.write(Pull(b.sha, [good], [], 1, now, "e2", "")),
        )

    assert asyncio.run(scenario()) == [2, 1]
    assert stored_seqs(store, a) == [1, 3] and stored_seqs(store, b) == [1]
    refused = store.db["rejected_reports"].find_one({"host": a.sha})
    assert refused["seq"] == 2 and "the database refused it" in refused["reason"]
    assert store.db["cursors"].find_one({"_id": a.sha})["seq"] == 3


def _memory_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1])


# The stated bound: a 400 MB answer moves the collector's peak memory by less than this.
RSS_BOUND_MB = 64


def test_a_client_answering_400_mb_costs_bounded_memory(store, fleet, tmp_path):
    healthy = fleet.make(3)
    (hostile,) = fleet.make(1)
    service = subprocess.Popen(
        [sys.executable, "-m", "tests.cluster.hostile_service", str(hostile.state.workdir)]
        + ["50", str(8 * 1024 * 1024)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    async def scenario():
        port = int(await asyncio.wait_for(asyncio.to_thread(service.stdout.readline), 20))
        await fleet.serve(healthy)
        fleet.register(store, healthy)
        store.record_host(hostile.sha, hostile.name, "127.0.0.1", port, hub="hub1")
        col = collector(store, fleet)
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets the peak (VmHWM) to the current RSS
        before = _memory_kb("VmRSS")
        rounds = [await col.run_round() for _ in range(3)]
        peak = _memory_kb("VmHWM")
        await col.close()
        await fleet.close()
        return rounds, (peak - before) / 1024

    try:
        rounds, grown_mb = asyncio.run(scenario())
    finally:
        service.stdin.close()
        service.wait(timeout=10)
    print(f"collector peak RSS grew {grown_mb:.1f} MB over 3 rounds of a 400 MB client")
    assert grown_mb < RSS_BOUND_MB, grown_mb
    # every round collected the healthy clients and quarantined one huge record
    for client in healthy:
        assert stored_seqs(store, client) == client.produced
    assert [r.rejected for r in rounds] == [1, 1, 1] and all(r.failed == {} for r in rounds)
    evidence = list(store.db["rejected_reports"].find({"host": hostile.sha}).sort("seq", 1))
    assert [d["seq"] for d in evidence] == [1, 2, 3]
    assert "or more exceeds the limit" in evidence[0]["reason"]
    assert store.db["cursors"].find_one({"_id": hostile.sha})["seq"] == 3


def _hostile_line(rng, seq: int) -> str:
    """One generated report a hub cannot store, still starting with its seq as the service's do."""

    def nested(depth: int) -> str:
        return "[" * depth + "]" * depth

    kind = rng.randrange(12)
    if kind == 0:
        return _report(seq, uptime=rng.choice([2**63, 2**64, -(2**70), 10**30]))
    if kind == 1:
        return _report(seq).replace('"uptime": 1.0', '"uptime": ' + nested(rng.randint(95, 30_000)))
    if kind == 2:
        return _report(seq).replace('"os":', '"o\\u0000s": 1, "os":')
    if kind == 3:
        return _report(seq, uptime={"$gt": rng.random()})
    if kind == 4:
        return _report(seq, hostname="lone " + chr(rng.randint(0xD800, 0xDFFF)))
    if kind == 5:
        return _report(seq)[:-1] + ', "extra": 1}'
    if kind == 6:
        return _report(seq).replace('"kind": "inventory"', '"kind": "bogus"')
    if kind == 7:
        return _report(seq, hostname=rng.randint(0, 10))
    if kind == 8:
        line = _report(seq)
        return line[: rng.randint(len(f'{{"seq": {seq},'), len(line) - 2)]
    if kind == 9:
        return _report(seq).replace('"time": 1.0', f'"time": {rng.choice(["1e300", "-5", "NaN"])}')
    if kind == 10:
        return _report(seq, hostname="x" * rng.randint(20_000, 60_000))
    return f'{{"seq": {seq}, ' + "".join(chr(rng.randint(33, 126)) for _ in range(40))


def test_a_generated_stream_of_hostile_reports_among_healthy_clients(store, fleet, caplog):
    """Seeded, so a failure replays: a third of one client's reports are hostile, at random."""
    import random

    rng = random.Random(20261201)
    healthy = fleet.make(3)
    (hostile,) = fleet.make(1)
    good: list[int] = []
    bad: list[int] = []
    lines: list[tuple[int, str]] = []
    for seq in range(1, 121):
        if rng.random() < 1 / 3:
            bad.append(seq)
            lines.append((seq, _hostile_line(rng, seq)))
        else:
            good.append(seq)
            lines.append((seq, _report(seq)))
    settings = dataclasses.replace(SETTINGS, batch_size=25, max_report_bytes=16_384)

    async def scenario():
        hostile.acceptor = await start_line_service(hostile.state, lambda: lines)
        await fleet.serve(healthy)
        fleet.register(store)
        col = collector(store, fleet, settings)
        with caplog.at_level(logging.INFO):
            for _ in range(12):
                for client in healthy:
                    client.produce(2)
                figures = await col.run_round()
                assert figures.failed == {}
                for client in healthy:  # the healthy are collected in every round
                    assert stored_seqs(store, client) == client.produced
                cursor = store.db["cursors"].find_one({"_id": hostile.sha}) or {}
                if cursor.get("seq") == 120:
                    break
        await col.close()
        await fleet.close()

    asyncio.run(scenario())
    assert stored_seqs(store, hostile) == good
    evidence = {
        d["seq"]: d["reason"] for d in store.db["rejected_reports"].find({"host": hostile.sha})
    }
    assert sorted(evidence) == bad
    assert all(reason for reason in evidence.values())
    _no_traceback(caplog)
