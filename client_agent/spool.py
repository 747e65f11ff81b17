"""The crash-safe report spool: numbered records waiting for the hub's collector to take them.

`spool.log` is append-only: frames of a 4-byte big-endian length, a 4-byte CRC32 of the body,
then the body (UTF-8 JSON `{"seq", "time", "kind", "payload"}`). `spool.meta` holds the
spool's epoch, the sequence high-water mark, the acknowledged seq and the count of records
dropped by the size cap, so sequence numbers are never reused, not even after the spool was
pruned empty.

The epoch is chosen when the spool (its meta) is created and goes with every report handed
to the collector: a spool whose state was lost starts at seq 1 again under a new epoch, and
the hub keys reports by (host, epoch, seq), so the new numbering never collides with the old.
Reports dropped by the size cap leave a `gap` record (which seqs, when, why) in their place.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from hubcluster.atomic import atomic_write_bytes, atomic_write_text, fsync_dir
from hubcluster.report_kinds import GAP, GAP_COUNT, GAP_FIRST, GAP_LAST, GAP_REASON
from hubcluster.reports_protocol import EPOCH

_log = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")
# Reports carry inventory: owner and group only. The group is the report service's (the
# deployed spool directory is setgid to it), so the root agent run and the service, which
# runs as its own user, share the files; set explicitly on creation, whatever the umask.
_MODE = 0o660
# The hub stores seqs as BSON int64; a spool never numbers past it (it would start a new epoch).
MAX_SEQ = (1 << 63) - 1
# Room kept under the cap for the gap record itself (about 200 bytes in practice).
_GAP_RESERVE = 400
_GAP_MARK = f'"kind":"{GAP}"'.encode()


class _Frame(NamedTuple):
    seq: int
    start: int
    end: int


class _Meta(NamedTuple):
    # "" only for a spool created before epochs existed: its hub cursor has none either.
    epoch: str = ""
    last_seq: int = 0
    acked_seq: int = 0
    dropped_total: int = 0
    # Bumped on every rewrite, so a cached scan of a replaced file is never trusted.
    generation: int = 0


def new_epoch() -> str:
    """A fresh spool identity: readable creation time plus randomness against a reused clock."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


def _frame(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def _open_shared(path: Path, flags: int) -> int:
    """Open `path`, creating it with exactly `_MODE` (the umask would take the group's bits)."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, _MODE)
    except FileExistsError:
        return os.open(path, flags)
    os.fchmod(fd, _MODE)
    return fd


class Spool:
    """One spool directory, shared safely by the agent run and the report service."""

    def __init__(self, directory: Path, max_bytes: int = 10 * 1024 * 1024) -> None:
        if max_bytes <= _HEADER.size:
            raise ValueError(f"spool max_bytes must be more than {_HEADER.size}, got {max_bytes}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "spool.log"
        self.meta_path = self.directory / "spool.meta"
        self.max_bytes = max_bytes
        # flock excludes other open files, not other threads sharing this one; hence both.
        self._thread_lock = threading.RLock()
        self._lock_fd: int | None = _open_shared(self.directory / "spool.lock", os.O_RDWR)
        self._frames: list[_Frame] = []
        self._identity: tuple[int, int, int] | None = None
        self._scanned = 0
        self._meta = _Meta()
        with self._locked():
            pass  # opening recovers a torn or corrupt tail

    def close(self) -> None:
        with self._thread_lock:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public operations -------------------------------------------------------------------

    def append(self, kind: str, payload: Mapping[str, Any]) -> int:
        """Store one record durably and return its sequence number."""
        return self.append_many([(kind, payload)])[0]

    def append_many(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[int]:
        """Store records durably (one fsync for the batch); return their sequence numbers."""
        for kind, payload in items:
            if not isinstance(kind, str) or not kind:
                raise ValueError(f"a spool record kind must be a non-empty string, got {kind!r}")
            if not isinstance(payload, dict):
                raise TypeError(f"a spool payload must be a dict, got {type(payload).__name__}")
        if not items:
            return []
        with self._locked():
            first = self._meta.last_seq + 1
            if first + len(items) > MAX_SEQ:
                raise ValueError(f"spool {self.directory} has used up its sequence numbers")
            now = time.time()
            frames = [
                _frame({"seq": first + i, "time": now, "kind": kind, "payload": payload})
                for i, (kind, payload) in enumerate(items)
            ]
            seqs = list(range(first, first + len(items)))
            # The high-water mark is made durable before any frame carrying it: a crash in
            # between costs a gap in the numbering, never a number used twice.
            self._write_meta(self._meta._replace(last_seq=seqs[-1]))
            if self._scanned + sum(map(len, frames)) > self.max_bytes:
                self._append_over_cap(seqs, frames)
            else:
                self._append(seqs, frames)
            return seqs

    def read_since(self, seq: int, limit: int | None = None) -> list[dict]:
        """Records with a sequence number above `seq`, oldest first, at most `limit` of them."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        with self._locked():
            return self._read_since(seq, limit)

    def acknowledge(self, seq: int) -> int:
        """The collector has stored everything up to `seq`: prune it. Returns how many went."""
        with self._locked():
            return self._acknowledge(seq)

    def hand_over(self, since: int, epoch: str | None, limit: int) -> tuple[str, list[dict]]:
        """The collector's ask: (this spool's epoch, records after `since`), acknowledging it.

        `since` acknowledges only when it counts in this spool's numbering: the hub names
        this epoch, or names none (a cursor from before epochs) and a seq handed out here.
        Otherwise the spool was created again since the hub's cursor was set: everything is
        sent and nothing pruned, and the hub starts a cursor for the new epoch.
        """
        with self._locked():
            if epoch is None:
                ours = since <= self._meta.last_seq
            else:
                ours = epoch == self._meta.epoch
            if ours:
                self._acknowledge(since)
            return self._meta.epoch, self._read_since(since if ours else 0, limit)

    @property
    def epoch(self) -> str:
        with self._locked():
            return self._meta.epoch

    def status(self) -> dict[str, Any]:
        with self._locked():
            return {
                "epoch": self._meta.epoch,
                "last_seq": self._meta.last_seq,
                "acked_seq": self._meta.acked_seq,
                "records": len(self._frames),
                "bytes": self._scanned,
                "max_bytes": self.max_bytes,
                "dropped_total": self._meta.dropped_total,
            }

    def _read_since(self, seq: int, limit: int | None) -> list[dict]:
        wanted = [f for f in self._frames if f.seq > seq]
        if limit is not None:
            wanted = wanted[:limit]
        if not wanted:
            return []
        with open(self.path, "rb") as handle:
            handle.seek(wanted[0].start)
            blob = handle.read(wanted[-1].end - wanted[0].start)
        base = wanted[0].start
        return [json.loads(blob[f.start - base + _HEADER.size : f.end - base]) for f in wanted]

    def _acknowledge(self, seq: int) -> int:
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise ValueError(f"acknowledged seq must be a non-negative integer, got {seq!r}")
        if seq > self._meta.last_seq:
            raise ValueError(
                f"cannot acknowledge seq {seq}: this spool has only handed out up to "
                f"{self._meta.last_seq}; refusing, so that unsent reports are not dropped"
            )
        pruned = sum(1 for f in self._frames if f.seq <= seq)
        meta = self._meta._replace(acked_seq=max(self._meta.acked_seq, seq))
        if pruned:
            meta = meta._replace(generation=meta.generation + 1)
            self._rewrite(self._frames[pruned:], [])
        if meta != self._meta:
            self._write_meta(meta)
        return pruned

    # -- locking and recovery ----------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            if self._lock_fd is None:
                raise ValueError(f"spool {self.directory} is closed")
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                self._refresh()
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _refresh(self) -> None:
        """Catch up with what other processes did since we last held the lock."""
        self._meta, fresh = self._read_meta()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._frames, self._scanned, self._identity = [], 0, None
        else:
            identity = (st.st_dev, st.st_ino, self._meta.generation)
            if identity != self._identity or st.st_size < self._scanned:
                self._frames, self._scanned = [], 0
            self._identity = identity
            if st.st_size > self._scanned:
                self._scan()
        if self._frames and self._frames[-1].seq > self._meta.last_seq:
            # Only a lost or foreign meta file gets here; adopt the file's numbering.
            self._write_meta(self._meta._replace(last_seq=self._frames[-1].seq))
        elif fresh:
            self._write_meta(self._meta)

    def _scan(self) -> None:
        with open(self.path, "rb") as handle:
            handle.seek(self._scanned)
            data = handle.read()
        base, pos, size = self._scanned, 0, len(data)
        while pos < size:
            if size - pos < _HEADER.size:
                return self._cut_torn(base + pos, f"{size - pos} bytes of a frame header")
            length, crc = _HEADER.unpack_from(data, pos)
            end = pos + _HEADER.size + length
            if end > size:
                return self._cut_torn(
                    base + pos, f"a frame of {length} bytes with only {size - pos} bytes left"
                )
            body = data[pos + _HEADER.size : end]
            if zlib.crc32(body) != crc:
                if end == size:
                    return self._cut_torn(base + pos, "a last frame with a bad checksum")
                return self._move_corrupt_aside(base + pos, "a frame with a bad checksum")
            seq = self._seq_of(body)
            if seq is None:
                return self._move_corrupt_aside(base + pos, "a frame that is not a spool record")
            if self._frames and seq <= self._frames[-1].seq:
                return self._move_corrupt_aside(
                    base + pos, f"seq {seq} after seq {self._frames[-1].seq}"
                )
            self._frames.append(_Frame(seq, base + pos, base + end))
            pos = end
            self._scanned = base + end

    @staticmethod
    def _seq_of(body: bytes) -> int | None:
        try:
            record = json.loads(body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(record, dict):
            return None
        seq = record.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 < seq <= MAX_SEQ:
            return None
        if not isinstance(record.get("kind"), str) or not isinstance(record.get("payload"), dict):
            return None
        return seq

    def _cut_torn(self, offset: int, what: str) -> None:
        size = self.path.stat().st_size
        _log.warning(
            "spool %s: torn last write (%s) at byte %d; truncating %d bytes, keeping %d records",
            self.path,
            what,
            offset,
            size - offset,
            len(self._frames),
        )
        self._truncate(offset)

    def _move_corrupt_aside(self, offset: int, what: str) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.directory / f"spool.log.corrupt-{stamp}"
        n = 1
        while aside.exists():
            aside = self.directory / f"spool.log.corrupt-{stamp}-{n}"
            n += 1
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            tail = handle.read()
        atomic_write_bytes(aside, tail, _MODE)
        _log.error(
            "spool %s is CORRUPT: %s at byte %d; kept the %d records before it and moved the "
            "remaining %d bytes to %s for inspection",
            self.path,
            what,
            offset,
            len(self._frames),
            len(tail),
            aside,
        )
        self._truncate(offset)

    def _truncate(self, offset: int) -> None:
        with open(self.path, "r+b") as handle:
            handle.truncate(offset)
            handle.flush()
            os.fsync(handle.fileno())
        self._scanned = offset

    # -- writing -----------------------------------------------------------------------------

    def _append(self, seqs: list[int], frames: list[bytes]) -> None:
        created = not self.path.exists()
        fd = _open_shared(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            data = memoryview(b"".join(frames))
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.directory)
            st = os.stat(self.path)
            self._identity = (st.st_dev, st.st_ino, self._meta.generation)
        self._remember(seqs, frames, self._scanned)

    def _append_over_cap(self, seqs: list[int], frames: list[bytes]) -> None:
        """Make room by dropping the oldest records, and leave a gap record naming them."""
        candidates = [(f.seq, f.end - f.start) for f in self._frames]
        candidates += [(seq, len(frame)) for seq, frame in zip(seqs, frames, strict=True)]
        total, drop = sum(size for _, size in candidates) + _GAP_RESERVE, 0
        while total > self.max_bytes and drop < len(candidates):
            total -= candidates[drop][1]
            drop += 1
        dropped = [seq for seq, _ in candidates[:drop]]
        old_drop = min(drop, len(self._frames))
        new_drop = drop - old_drop
        gap_seq = seqs[-1] + 1
        gap = self._gap(self._frames[:old_drop], dropped)
        gap_frame = _frame({"seq": gap_seq, "time": time.time(), "kind": GAP, "payload": gap})
        meta = self._meta._replace(
            last_seq=gap_seq,
            dropped_total=self._meta.dropped_total + drop,
            generation=self._meta.generation + 1,
        )
        # Counted before the rewrite: after a crash the report may overstate a loss,
        # never hide one.
        self._write_meta(meta)
        self._rewrite(
            self._frames[old_drop:], frames[new_drop:] + [gap_frame], seqs[new_drop:] + [gap_seq]
        )
        _log.warning(
            "spool %s is over its cap of %d bytes: dropped the %d oldest unacknowledged "
            "records (seq %d..%d); %d dropped in total; gap recorded as seq %d",
            self.path,
            self.max_bytes,
            drop,
            dropped[0],
            dropped[-1],
            meta.dropped_total,
            gap_seq,
        )

    def _gap(self, old: list[_Frame], dropped: list[int]) -> dict[str, Any]:
        """The gap record's payload; an earlier gap record dropped now is folded into it."""
        first, count = dropped[0], len(dropped)
        if old:
            with open(self.path, "rb") as handle:
                handle.seek(old[0].start)
                blob = handle.read(old[-1].end - old[0].start)
            for f in old:
                body = blob[f.start - old[0].start + _HEADER.size : f.end - old[0].start]
                # json.dumps writes seq, time, kind first: a gap shows in the first bytes.
                if _GAP_MARK not in body[:96]:
                    continue
                earlier = json.loads(body).get("payload", {})
                first = min(first, int(earlier.get(GAP_FIRST, first)))
                count += int(earlier.get(GAP_COUNT, 0)) - 1
        return {
            GAP_FIRST: first,
            GAP_LAST: dropped[-1],
            GAP_COUNT: count,
            GAP_REASON: f"spool over its cap of {self.max_bytes} bytes",
        }

    def _rewrite(
        self, keep: list[_Frame], new: list[bytes], new_seqs: list[int] | None = None
    ) -> None:
        """Replace spool.log atomically with the kept frames followed by new ones."""
        if keep:
            with open(self.path, "rb") as handle:
                handle.seek(keep[0].start)
                old = handle.read(keep[-1].end - keep[0].start)
        else:
            old = b""
        atomic_write_bytes(self.path, old + b"".join(new), _MODE)
        base = keep[0].start if keep else 0
        self._frames = [_Frame(f.seq, f.start - base, f.end - base) for f in keep]
        self._scanned = len(old)
        self._remember(new_seqs or [], new, self._scanned)
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino, self._meta.generation)

    def _remember(self, seqs: list[int], frames: list[bytes], offset: int) -> None:
        for seq, frame in zip(seqs, frames, strict=True):
            self._frames.append(_Frame(seq, offset, offset + len(frame)))
            offset += len(frame)
        self._scanned = offset

    # -- meta --------------------------------------------------------------------------------

    def _read_meta(self) -> tuple[_Meta, bool]:
        """The meta file's content, and whether it is new (to be written: a new epoch)."""
        try:
            raw = self.meta_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _Meta(epoch=new_epoch()), True
        try:
            data = json.loads(raw)
            ints = {k: int(data.get(k, 0)) for k in _Meta._fields if k != "epoch"}
            epoch = data.get("epoch", "")
            if not isinstance(epoch, str) or (epoch and not EPOCH.match(epoch)):
                raise ValueError(f"bad epoch {epoch!r}")
            meta = _Meta(epoch=epoch, **ints)
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:
            _log.error(
                "spool meta %s is unreadable (%s); starting a new epoch, numbered on from the "
                "records left in the spool (the hub collects those again under it)",
                self.meta_path,
                exc,
            )
            return _Meta(epoch=new_epoch()), True
        return meta, False

    def _write_meta(self, meta: _Meta) -> None:
        atomic_write_text(self.meta_path, json.dumps(meta._asdict()), _MODE)
        self._meta = meta
        if self._identity is not None:
            self._identity = (self._identity[0], self._identity[1], meta.generation)
