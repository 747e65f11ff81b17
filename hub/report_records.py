"""Checking what a client's report service sends, line by line, before any of it is stored.

Each payload must have its kind's shape (hubcluster.report_kinds), so what is stored is what
the queries read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hub.bson_limits import plain_json
from hubcluster.messages import REPORT_EPOCH, REPORT_FIELDS
from hubcluster.report_kinds import payload_problem
from hubcluster.reports_protocol import EPOCH


@dataclass
class ParsedReports:
    records: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {seq, reason, raw}
    error: str | None = None  # a line whose seq cannot be read: stop there
    epoch: str = ""  # the spool's epoch the answer came from ("" from a spool without one)
    # Seqs of records whose text needs no walk for BSON's key and depth limits (plain_json).
    plain: set[int] = field(default_factory=set)


# Seqs are stored as BSON int64: a larger one is refused and stored (as evidence) as this.
MAX_SEQ = (1 << 63) - 1
# The report times a hub can store and show as dates (datetime's range, in Unix seconds).
MIN_TIME = 0
MAX_TIME = 253402300799
_KNOWN_FIELDS = frozenset({*REPORT_FIELDS, REPORT_EPOCH})
# The report service writes seq first: enough to place a line that cannot be parsed whole.
_SEQ_HEAD = re.compile(r'^\s*\{\s*"seq"\s*:\s*([1-9][0-9]{0,29})\s*[,}]')


@dataclass(frozen=True)
class Oversized:
    """A line the reader stopped holding once past the size limit: its head and full size."""

    head: str
    size: int
    whole: bool = True  # False: the reader stopped inside it, so it is larger still


def parse_report_lines(
    text: str | Iterable[str | Oversized], since: int, max_bytes: int, epoch: str = ""
) -> ParsedReports:
    """Split the service's JSON lines into good records and rejected ones, in seq order.

    A record that is malformed or too large but has a readable seq is rejected with a
    reason (and kept as evidence) so that the host's cursor can pass it; a line without a
    readable seq stops the parse, since nothing after it can be placed safely. An answer
    from another epoch than the cursor's (`epoch`) comes from a spool created anew: its
    seqs start again, counted from 0.
    """
    out = ParsedReports(epoch=epoch)
    last = since
    lines = text.splitlines() if isinstance(text, str) else text
    for number, line in enumerate(lines, 1):
        problem: str | None
        if isinstance(line, Oversized):
            seq, problem, record = _check_oversized(line, max_bytes)
            raw = line.head
        elif not line.strip():
            continue
        else:
            seq, problem, record = _check_line(line, max_bytes)
            raw = line[:4096]
        if seq is None:
            out.error = f"line {number}: {problem}"
            break
        line_epoch = record.get(REPORT_EPOCH, out.epoch)
        if not isinstance(line_epoch, str) or (line_epoch and not EPOCH.match(line_epoch)):
            out.error = f"line {number}: epoch must be a short word, got {line_epoch!r:.80}"
            break
        if line_epoch != out.epoch:
            if out.records or out.rejected:
                out.error = f"line {number}: epoch {line_epoch} after {out.epoch}"
                break
            out.epoch, last = line_epoch, 0
        if seq <= last:
            out.error = f"line {number}: seq {seq} does not follow {last}"
            break
        last = seq
        if problem:
            out.rejected.append({"seq": min(seq, MAX_SEQ), "reason": problem, "raw": raw})
        else:
            out.records.append(record)
            if not isinstance(line, Oversized) and plain_json(line):
                out.plain.add(seq)
    return out


def _seq_of_head(line: str) -> int | None:
    found = _SEQ_HEAD.match(line[:64])
    return int(found.group(1)) if found else None


def _check_oversized(line: Oversized, max_bytes: int) -> tuple[int | None, str, dict[str, Any]]:
    more = "" if line.whole else " or more"
    problem = f"report of {line.size} bytes{more} exceeds the limit of {max_bytes}"
    seq = _seq_of_head(line.head)
    return seq, problem if seq else f"{problem}, with no readable seq", {}


def _check_line(line: str, max_bytes: int) -> tuple[int | None, str | None, dict[str, Any]]:
    size = len(line) if line.isascii() else len(line.encode("utf-8", "replace"))
    try:
        record = json.loads(line)
    except RecursionError:
        return _seq_of_head(line), "nested too deeply to read", {}
    except ValueError as exc:
        if size > max_bytes:
            return _seq_of_head(line), f"report of {size} bytes exceeds {max_bytes}, not JSON", {}
        # Not every ValueError is a JSONDecodeError: an integer of over 4300 digits is refused
        # by int() itself, and that error has no `.msg`.
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        return _seq_of_head(line), f"not JSON ({why})", {}
    if not isinstance(record, dict):
        return None, "not a JSON object", {}
    seq = record.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        return None, f"seq must be a positive integer, got {seq!r:.40}", {}
    if seq > MAX_SEQ:
        return seq, f"seq {seq} is beyond the 64-bit range a hub stores", record
    if size > max_bytes:
        return seq, f"report of {size} bytes exceeds the limit of {max_bytes}", record
    if not isinstance(record.get("kind"), str) or not record["kind"]:
        return seq, "kind must be a non-empty string", record
    if not isinstance(record.get("time"), int | float) or isinstance(record.get("time"), bool):
        return seq, "time must be a number", record
    if not MIN_TIME <= record["time"] <= MAX_TIME:
        # A time a hub cannot turn into a date would fail the whole group write later.
        return seq, f"time {record['time']!r:.40} is not a Unix time between 1970 and 9999", record
    if not isinstance(record.get("payload"), dict):
        return seq, "payload must be an object", record
    if not record.keys() <= _KNOWN_FIELDS:
        return seq, f"unknown fields {sorted(set(record) - _KNOWN_FIELDS)}", record
    return seq, payload_problem(record["kind"], record["payload"]), record
