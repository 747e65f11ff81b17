"""Issue 20: the shipped alert rules pass `promtool check|test rules`, name only metrics the
hubs export, and each links to a README section that says what to do."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from hub.metrics import HubMetrics
from tests.metrics.promql_names import metric_names

MONITORING = Path(__file__).parents[2] / "ansible" / "monitoring"
RULES = MONITORING / "hubcluster-alerts.yml"
# Prometheus' own per-target series, which the hub-down alert reads.
PROMETHEUS_OWN = {"up"}
REQUIRED = {
    "HubclusterNoMaster",
    "HubclusterMasterNotCollecting",
    "HubclusterHubDown",
    "HubclusterMemberDown",
    "HubclusterReplicationLag",
    "HubclusterStaleClients",
    "HubclusterReportsQuarantined",
    "HubclusterReportGaps",
    "HubclusterMasterfilesDiffer",
    "HubclusterRoundsOverrunning",
    "HubclusterRemediationBreakerOpen",
}


def _rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for group in doc["groups"] for r in group["rules"]]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, spaces to dashes, punctuation dropped."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_promtool_checks_the_rules_and_their_unit_tests_pass(promtool):
    checked = subprocess.run(
        [str(promtool), "check", "rules", RULES.name],
        cwd=MONITORING,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [str(promtool), "test", "rules", "hubcluster-alerts.test.yml"],
        cwd=MONITORING,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_is_unit_tested():
    tests = (MONITORING / "hubcluster-alerts.test.yml").read_text()
    tested = set(re.findall(r"alertname:\s*(\w+)", tests))
    assert {r["alert"] for r in _rules()} == REQUIRED == tested


def test_every_rule_reads_metrics_the_hubs_export():
    exported = HubMetrics("hub1").names() | PROMETHEUS_OWN
    for rule in _rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exported, (rule["alert"], names - exported)


def test_every_alert_says_what_happened_and_links_its_readme_section():
    anchors = _anchors((MONITORING / "README.md").read_text())
    for rule in _rules():
        notes = rule["annotations"]
        assert notes["summary"] and len(notes["summary"]) <= 100, rule["alert"]
        path, _, anchor = notes["runbook_url"].partition("#")
        assert path == "ansible/monitoring/README.md"
        assert anchor == rule["alert"].lower() and anchor in anchors, rule["alert"]


def test_metric_names_are_read_from_promql():
    expr = (
        'max by (member) (rate(a_total{x="b_total"}[5m])) / ignoring (le) '
        "histogram_quantile(0.9, c_bucket) and on (instance) d == 1 or vector(0)"
    )
    assert metric_names(expr) == {"a_total", "c_bucket", "d"}
