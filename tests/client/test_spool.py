"""The report spool: numbering, crash recovery, acknowledgement, size cap, concurrency."""

from __future__ import annotations

import json
import logging
import multiprocessing
import struct
import zlib
from pathlib import Path

import pytest

from client_agent.spool import Spool


def seqs(spool: Spool, since: int = 0) -> list[int]:
    return [r["seq"] for r in spool.read_since(since)]


def frame_starts(raw: bytes) -> list[int]:
    starts, pos = [], 0
    while pos < len(raw):
        starts.append(pos)
        pos += 8 + struct.unpack(">I", raw[pos : pos + 4])[0]
    return starts


def fill(directory: Path, n: int, **kw) -> Spool:
    spool = Spool(directory, **kw)
    for i in range(n):
        spool.append("outcome", {"i": i})
    return spool


def test_records_round_trip_in_order(tmp_path):
    spool = Spool(tmp_path)
    assert spool.append("outcome", {"name": "motd", "status": "kept"}) == 1
    assert spool.append_many([("inventory", {"os": "linux"}), ("outcome", {"n": 2})]) == [2, 3]
    records = spool.read_since(0)
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert records[0]["kind"] == "outcome"
    assert records[0]["payload"] == {"name": "motd", "status": "kept"}
    assert isinstance(records[0]["time"], float)
    assert seqs(spool, 1) == [2, 3]
    assert [r["seq"] for r in spool.read_since(0, limit=2)] == [1, 2]
    assert spool.read_since(3) == []


def test_frames_are_length_prefixed_and_checksummed(tmp_path):
    Spool(tmp_path).append("k", {"a": 1})
    raw = (tmp_path / "spool.log").read_bytes()
    length, crc = struct.unpack(">II", raw[:8])
    body = raw[8:]
    assert length == len(body) and crc == zlib.crc32(body)
    assert json.loads(body)["payload"] == {"a": 1}


def test_bad_records_are_refused_before_anything_is_written(tmp_path):
    spool = Spool(tmp_path)
    with pytest.raises(TypeError):
        spool.append("k", ["not", "a", "dict"])
    with pytest.raises(ValueError):
        spool.append("", {})
    with pytest.raises(TypeError):
        spool.append("k", {"x": object()})
    assert spool.status()["last_seq"] == 0
    assert spool.append("k", {}) == 1


def test_seqs_are_monotonic_across_reopen(tmp_path):
    fill(tmp_path, 3).close()
    spool = Spool(tmp_path)
    assert spool.append("k", {}) == 4
    assert seqs(spool) == [1, 2, 3, 4]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "bad-crc"])
def test_torn_last_record_is_dropped_and_earlier_survive(tmp_path, caplog, damage):
    fill(tmp_path, 3).close()
    log = tmp_path / "spool.log"
    raw = log.read_bytes()
    if damage == "truncate":
        log.write_bytes(raw[:-3])
    elif damage == "garbage":
        log.write_bytes(raw + b"\x00\x00\x01")
    else:
        log.write_bytes(raw[:-2] + bytes([raw[-2] ^ 0xFF]) + raw[-1:])

    with caplog.at_level(logging.WARNING):
        spool = Spool(tmp_path)
    assert "torn" in caplog.text
    expected = [1, 2, 3] if damage == "garbage" else [1, 2]
    assert seqs(spool) == expected
    assert spool.append("k", {}) == 4  # the high-water mark is not lowered by the loss
    assert seqs(spool) == [*expected, 4]
    assert not list(tmp_path.glob("spool.log.corrupt-*"))


def test_corruption_in_the_middle_is_moved_aside(tmp_path, caplog):
    fill(tmp_path, 5).close()
    log = tmp_path / "spool.log"
    raw = bytearray(log.read_bytes())
    third = frame_starts(bytes(raw))[2]
    raw[third + 12] ^= 0xFF  # inside the body of seq 3
    log.write_bytes(bytes(raw))

    with caplog.at_level(logging.ERROR):
        spool = Spool(tmp_path)
    assert "CORRUPT" in caplog.text
    assert seqs(spool) == [1, 2]
    [aside] = tmp_path.glob("spool.log.corrupt-*")
    assert aside.read_bytes() == bytes(raw[third:])
    assert spool.append("k", {}) == 6
    assert seqs(spool) == [1, 2, 6]


def test_acknowledge_prunes_and_never_reuses_seqs(tmp_path):
    spool = fill(tmp_path, 5)
    size = (tmp_path / "spool.log").stat().st_size
    assert spool.acknowledge(2) == 2
    assert seqs(spool) == [3, 4, 5]
    assert (tmp_path / "spool.log").stat().st_size < size
    assert spool.acknowledge(2) == 0  # repeating an acknowledgement is harmless
    assert spool.acknowledge(5) == 3
    assert spool.read_since(0) == []
    assert spool.status()["records"] == 0 and spool.status()["bytes"] == 0
    spool.close()

    spool = Spool(tmp_path)
    assert spool.append("k", {}) == 6
    assert seqs(spool) == [6]
    assert spool.status()["acked_seq"] == 5


def test_acknowledge_beyond_high_water_is_refused(tmp_path):
    spool = fill(tmp_path, 3)
    with pytest.raises(ValueError, match="cannot acknowledge seq 4: .* only handed out up to 3"):
        spool.acknowledge(4)
    with pytest.raises(ValueError):
        spool.acknowledge(-1)
    assert seqs(spool) == [1, 2, 3]


def test_size_cap_drops_oldest_and_records_the_gap(tmp_path, caplog):
    spool = Spool(tmp_path, max_bytes=1000)
    appended = []
    with caplog.at_level(logging.WARNING):
        for i in range(30):
            appended.append(spool.append("outcome", {"i": i, "pad": "x" * 40}))
    status = spool.status()
    assert status["bytes"] <= 1000
    records = spool.read_since(0)
    kept = [r["seq"] for r in records if r["kind"] == "outcome"]
    gaps = [r for r in records if r["kind"] == "gap"]
    lost = [seq for seq in appended if seq not in kept]
    assert kept == appended[-len(kept) :]  # the newest survive
    assert status["dropped_total"] >= len(lost) > 0
    # every lost report is named by a surviving gap record: which seqs, when, why
    assert gaps and sum(g["payload"]["count"] for g in gaps) == len(lost)
    for seq in lost:
        assert any(g["payload"]["first"] <= seq <= g["payload"]["last"] for g in gaps), seq
    assert all(g["payload"]["reason"] == "spool over its cap of 1000 bytes" for g in gaps)
    assert all(g["time"] > 0 for g in gaps)
    assert status["records"] == len(records)
    assert "over its cap" in caplog.text
    assert (tmp_path / "spool.log").stat().st_size == status["bytes"]
    spool.close()

    reopened = Spool(tmp_path, max_bytes=1000)
    assert reopened.status() == status
    assert reopened.append("k", {}) == status["last_seq"] + 1


def test_spool_with_lost_state_hands_over_under_a_new_epoch(tmp_path):
    spool = fill(tmp_path, 3)
    first = spool.epoch
    assert spool.hand_over(0, None, 10)[0] == first
    assert spool.hand_over(2, first, 10) == (first, spool.read_since(2))
    assert spool.status()["acked_seq"] == 2
    spool.close()
    for name in ("spool.log", "spool.meta"):
        (tmp_path / name).unlink()  # a wiped state directory
    again = fill(tmp_path, 2)
    assert again.epoch != first
    # the hub's cursor names the old epoch at seq 2: nothing is acknowledged, all is sent
    epoch, records = again.hand_over(2, first, 10)
    assert epoch == again.epoch and [r["seq"] for r in records] == [1, 2]
    assert again.status()["acked_seq"] == 0
    # a hub from before epochs asking past this spool's numbering gets everything too
    assert [r["seq"] for r in again.hand_over(7, None, 10)[1]] == [1, 2]


def test_status_fields(tmp_path):
    spool = fill(tmp_path, 2, max_bytes=4096)
    spool.acknowledge(1)
    status = spool.status()
    assert status == {
        "epoch": spool.epoch,
        "last_seq": 2,
        "acked_seq": 1,
        "records": 1,
        "bytes": (tmp_path / "spool.log").stat().st_size,
        "max_bytes": 4096,
        "dropped_total": 0,
    }


def test_two_handles_see_each_others_changes(tmp_path):
    writer = fill(tmp_path, 3)
    reader = Spool(tmp_path)
    assert seqs(reader) == [1, 2, 3]
    assert reader.acknowledge(2) == 2
    assert writer.append("k", {}) == 4
    assert seqs(writer) == [3, 4]
    assert seqs(reader) == [3, 4]


def _append_many_times(directory: str, tag: str, count: int, go) -> None:
    spool = Spool(Path(directory))
    go.wait(30)  # both writers start together, so their appends interleave
    for i in range(count):
        spool.append("outcome", {"writer": tag, "i": i})
    spool.close()


def test_concurrent_appends_from_two_processes(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    workers = [
        ctx.Process(target=_append_many_times, args=(str(tmp_path), tag, 40, go)) for tag in "ab"
    ]
    for worker in workers:
        worker.start()
    go.set()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0

    records = Spool(tmp_path).read_since(0)
    assert [r["seq"] for r in records] == list(range(1, 81))
    for tag in "ab":
        mine = [r["payload"]["i"] for r in records if r["payload"]["writer"] == tag]
        assert mine == list(range(40))
