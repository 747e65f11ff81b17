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


def test_size_cap_drops_oldest_and_counts(tmp_path, caplog):
    spool = Spool(tmp_path, max_bytes=1000)
    with caplog.at_level(logging.WARNING):
        for i in range(30):
            spool.append("outcome", {"i": i, "pad": "x" * 40})
    status = spool.status()
    assert status["bytes"] <= 1000
    assert status["last_seq"] == 30
    kept = seqs(spool)
    assert kept == list(range(31 - len(kept), 31))  # the newest survive, contiguous
    assert status["dropped_total"] == 30 - len(kept) > 0
    assert status["records"] == len(kept)
    assert "over its cap" in caplog.text
    assert (tmp_path / "spool.log").stat().st_size == status["bytes"]
    spool.close()

    reopened = Spool(tmp_path, max_bytes=1000)
    assert reopened.status() == status
    assert reopened.append("k", {}) == 31


def test_status_fields(tmp_path):
    spool = fill(tmp_path, 2, max_bytes=4096)
    spool.acknowledge(1)
    status = spool.status()
    assert status == {
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
