"""What the collector accepts from a report service, and what it refuses, line by line."""

from __future__ import annotations

import json

from hub.report_records import parse_report_lines
from hubcluster.report_kinds import OUTCOME, outcome_payload, promise_result

PAYLOAD = outcome_payload(
    release="0123456789abcdef",
    server="127.0.0.1:5308",
    exit_code=0,
    error=None,
    promises=[promise_result("motd", "kept", "check passed", 0.01)],
)


def line(seq, **extra):
    record = {"seq": seq, "kind": OUTCOME, "time": 1.5, "payload": PAYLOAD}
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
    big = dict(PAYLOAD, error="y" * 5000)
    parsed = parse_report_lines(line(1, payload=big), since=0, max_bytes=1024)
    assert parsed.records == []
    assert "exceeds the limit of 1024" in parsed.rejected[0]["reason"]


def test_a_number_too_long_for_python_is_rejected_and_passed():
    # json.loads refuses integers of over 4300 digits with a plain ValueError, not a
    # JSONDecodeError: once an AttributeError that failed the whole pull, every round.
    huge = line(2)[:-1] + ', "n": ' + "9" * 5000 + "}"
    parsed = parse_report_lines("\n".join([line(1), huge, line(3)]), since=0, max_bytes=1 << 20)
    assert [r["seq"] for r in parsed.records] == [1, 3]
    assert [r["seq"] for r in parsed.rejected] == [2]
    assert parsed.rejected[0]["reason"].startswith("not JSON (Exceeds the limit (4300 digits)")
    assert parsed.error is None


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


def promise(**changes):
    return dict(PAYLOAD["promises"][0], **changes)


def test_payloads_of_the_wrong_shape_are_rejected_naming_the_problem():
    renamed = {k if k != "promises" else "outcomes": v for k, v in PAYLOAD.items()}
    cases = [
        (
            line(1, kind="compliance"),
            "unknown report kind 'compliance' (known: outcome, inventory",
        ),
        (line(2, payload=renamed), "outcome payload: missing promises"),
        (line(3, payload=dict(PAYLOAD, extra=1)), "outcome payload: unknown fields extra"),
        (
            line(4, payload=dict(PAYLOAD, exit_code=True)),
            "outcome payload: exit_code must be an integer, got True",
        ),
        (
            line(5, payload=dict(PAYLOAD, release=5)),
            "outcome payload: release must be a string or null, got int",
        ),
        (
            line(6, payload=dict(PAYLOAD, promises=[promise(status="fine")])),
            "outcome payload: promises[0]: status 'fine' is none of "
            "kept, repaired, not_kept, skipped",
        ),
        (
            line(7, payload=dict(PAYLOAD, promises=[promise(seconds="1")])),
            "outcome payload: promises[0]: seconds must be a number, got str",
        ),
        (line(8, kind="inventory"), "inventory payload: missing hostname, os, kernel"),
    ]
    parsed = parse_report_lines("\n".join(text for text, _ in cases), since=0, max_bytes=4096)
    assert parsed.records == [] and parsed.error is None
    reasons = [r["reason"] for r in parsed.rejected]
    for (_, expected), reason in zip(cases, reasons, strict=True):
        assert reason.startswith(expected), reason


def test_a_time_no_date_can_hold_is_rejected_before_any_write():
    text = "\n".join([line(1, time=1e300), line(2, time=-5), line(3, time=float("nan")), line(4)])
    parsed = parse_report_lines(text, since=0, max_bytes=1024)
    assert [r["seq"] for r in parsed.records] == [4]
    assert [r["seq"] for r in parsed.rejected] == [1, 2, 3]
    assert all("between 1970 and 9999" in r["reason"] for r in parsed.rejected)
