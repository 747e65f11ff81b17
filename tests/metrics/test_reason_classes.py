"""Issue 20: quarantine reasons, as the collector's parser words them, fall into a few
fixed classes (the label's only values), and failed pulls split into failed/unreachable."""

from __future__ import annotations

import json

from hub.metrics import REASON_CLASSES, HubMetrics, is_unreachable, reason_class
from hub.report_records import parse_report_lines

GOOD = {"kind": "outcome", "time": 1_700_000_000, "payload": {}}


def _reasons(*lines: str) -> list[str]:
    parsed = parse_report_lines(list(lines), 0, 200)
    return [r["reason"] for r in parsed.rejected]


def test_the_parsers_reasons_fall_into_their_classes():
    reasons = _reasons(
        '{"seq": 1, "kind": "outcome", "time": 1, "payload": {}, "pad": "' + "x" * 300 + '"}',
        '{"seq": 2, oops',
        json.dumps({"seq": 3, "kind": "", "time": 1, "payload": {}}),
        json.dumps({"seq": 4, "kind": "outcome", "time": "noon", "payload": {}}),
        json.dumps({"seq": 5, "kind": "what", "time": 1, "payload": {}}),
    )
    assert [reason_class(r) for r in reasons] == [
        "too_large",
        "not_json",
        "bad_shape",
        "bad_shape",
        "bad_shape",
    ], reasons
    assert reason_class("the database refused it: OverflowError: date value out of range") == (
        "unstorable"
    )
    assert reason_class("something new") == "other"
    assert set(map(reason_class, reasons)) <= set(REASON_CLASSES)


def test_quarantined_reports_are_counted_by_class_only():
    metrics = HubMetrics("hub1")
    metrics.quarantined_reports(["not JSON (Expecting value)", "not JSON (Extra data)"])
    text = metrics.exposition().decode()
    assert 'hubcluster_reports_quarantined_total{reason="not_json"} 2.0' in text
    assert "Expecting" not in text
    series = [ln for ln in text.splitlines() if ln.startswith("hubcluster_reports_quarantined_t")]
    assert len(series) == len(REASON_CLASSES)


def test_unreachable_hosts_are_told_from_failed_ones():
    assert is_unreachable("connection refused")
    assert is_unreachable("timed out")
    assert is_unreachable("OSError: [Errno 113] No route to host")
    assert not is_unreachable("host key does not match ppkeys/ (bad)")
    assert not is_unreachable("report service said: no such command")


def test_two_hubs_in_one_process_keep_their_own_figures():
    one, two = HubMetrics("hub1"), HubMetrics("hub2")
    one.gaps_recorded(3)
    assert "hubcluster_report_gaps_recorded_total 3.0" in one.exposition().decode()
    assert "hubcluster_report_gaps_recorded_total 0.0" in two.exposition().decode()
