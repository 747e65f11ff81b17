"""Checking what a client's report service sends, line by line, before any of it is stored."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hubcluster.messages import REPORT_FIELDS


@dataclass
class ParsedReports:
    records: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {seq, reason, raw}
    error: str | None = None  # a line whose seq cannot be read: stop there


def parse_report_lines(text: str, since: int, max_bytes: int) -> ParsedReports:
    """Split the service's JSON lines into good records and rejected ones, in seq order.

    A record that is malformed or too large but has a readable seq is rejected with a
    reason (and kept as evidence) so that the host's cursor can pass it; a line without a
    readable seq stops the parse, since nothing after it can be placed safely.
    """
    out = ParsedReports()
    last = since
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        seq, problem, record = _check_line(line, max_bytes)
        if seq is None:
            out.error = f"line {number}: {problem}"
            break
        if seq <= last:
            out.error = f"line {number}: seq {seq} does not follow {last}"
            break
        last = seq
        if problem:
            out.rejected.append({"seq": seq, "reason": problem, "raw": line[:4096]})
        else:
            out.records.append(record)
    return out


def _check_line(line: str, max_bytes: int) -> tuple[int | None, str | None, dict[str, Any]]:
    size = len(line.encode("utf-8", "replace"))
    try:
        record = json.loads(line)
    except ValueError as exc:
        if size > max_bytes:
            return None, f"report of {size} bytes exceeds {max_bytes} and is not JSON", {}
        return None, f"not JSON ({exc.msg})", {}
    if not isinstance(record, dict):
        return None, "not a JSON object", {}
    seq = record.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        return None, f"seq must be a positive integer, got {seq!r}", {}
    if size > max_bytes:
        return seq, f"report of {size} bytes exceeds the limit of {max_bytes}", record
    if not isinstance(record.get("kind"), str) or not record["kind"]:
        return seq, "kind must be a non-empty string", record
    if not isinstance(record.get("time"), int | float) or isinstance(record.get("time"), bool):
        return seq, "time must be a number", record
    if not isinstance(record.get("payload"), dict):
        return seq, "payload must be an object", record
    unknown = set(record) - set(REPORT_FIELDS)
    if unknown:
        return seq, f"unknown fields {sorted(unknown)}", record
    return seq, None, record
