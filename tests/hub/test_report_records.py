"""What the collector accepts from a report service, and what it refuses, line by line."""

from __future__ import annotations

import json

from hub.report_records import parse_report_lines


def line(seq, **extra):
    record = {"seq": seq, "kind": "compliance", "time": 1.5, "payload": {"ok": True}}
    record.update(extra)
    return json.dumps(record)


def test_good_lines_parse_in_order():
    parsed = parse_report_lines(
        "\n".join(line(i) for i in (4, 5, 7)) + "\n", since=3, max_bytes=1024
    )
    assert [r["seq"] for r in parsed.records] == [4, 5, 7]
    assert parsed.rejected == [] and parsed.error is None


def test_bad_record_with_a_seq_is_rejected_with_reason_and_passed():
    text = "\n".join(
        [line(1), line(2, payload="nope"), line(3, extra=1), line(4, kind=""), line(5)]
    )
    parsed = parse_report_lines(text, since=0, max_bytes=1024)
    assert [r["seq"] for r in parsed.records] == [1, 5]
    reasons = {r["seq"]: r["reason"] for r in parsed.rejected}
    assert reasons == {
        2: "payload must be an object",
        3: "unknown fields ['extra']",
        4: "kind must be a non-empty string",
    }
    assert all(r["raw"] for r in parsed.rejected)


def test_oversized_report_is_rejected():
    parsed = parse_report_lines(line(1, payload={"x": "y" * 5000}), since=0, max_bytes=1024)
    assert parsed.records == []
    assert "exceeds the limit of 1024" in parsed.rejected[0]["reason"]


def test_a_line_without_seq_stops_the_parse():
    text = "\n".join([line(1), "{not json", line(3)])
    parsed = parse_report_lines(text, since=0, max_bytes=1024)
    assert [r["seq"] for r in parsed.records] == [1]
    assert parsed.error.startswith("line 2: not JSON")


def test_seq_going_backwards_stops_the_parse():
    parsed = parse_report_lines("\n".join([line(5), line(5)]), since=4, max_bytes=1024)
    assert [r["seq"] for r in parsed.records] == [5]
    assert parsed.error == "line 2: seq 5 does not follow 5"
    assert (
        parse_report_lines(line(3), since=4, max_bytes=1024).error
        == "line 1: seq 3 does not follow 4"
    )
