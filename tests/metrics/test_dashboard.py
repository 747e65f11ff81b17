"""Issue 20: the shipped Grafana dashboard queries only metrics the hubs export."""

from __future__ import annotations

import json
from pathlib import Path

from hub.metrics import HubMetrics
from tests.metrics.promql_names import metric_names

DASHBOARD = Path(__file__).parents[2] / "ansible" / "monitoring" / "grafana-hubcluster.json"
# What the issue asks the dashboard to show, by the metric that shows it.
SHOWN = {
    "hubcluster_is_master",
    "hubcluster_member_up",
    "hubcluster_collection_round_duration_seconds_bucket",
    "hubcluster_collection_round_hosts",
    "hubcluster_fleet_clients",
    "hubcluster_fleet_compliance_ratio",
    "hubcluster_member_replication_lag_seconds",
}


def _expressions() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in doc["panels"] for t in panel.get("targets", [])]


def test_every_query_names_a_metric_the_hubs_export():
    exported = HubMetrics("hub1").names()
    exprs = _expressions()
    assert exprs
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, (expr, names - exported)


def test_the_dashboard_shows_what_operators_need():
    used = set().union(*(metric_names(e) for e in _expressions()))
    assert used >= SHOWN, SHOWN - used
