"""The hub's Prometheus metrics: one registry per hub, filled by the parts that know the figures.

Counters and histograms are moved by small hooks where the figures arise (a finished round,
a pull, a quarantined report, a peer sync); gauges that describe a state (role, members,
fleet, keys) are set by hub.metrics_sources before a scrape, from what hubd already holds
or from summaries read at most every FLEET_CACHE_SECONDS. No metric has a label per client
host: labels are per member, per reason class and per outcome status only, so a fleet of
10,000 hosts costs the same series as one of ten.

The registry is the hub's own (not prometheus_client's global one): tests run several hubs
in one process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from hubcluster.report_kinds import STATUSES

if TYPE_CHECKING:
    from hub.collector import RoundFigures

PREFIX = "hubcluster"
CONTENT_TYPE = CONTENT_TYPE_LATEST
ROUND_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
PULL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
SYNC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

# Free-text quarantine reasons folded into a fixed set of classes (the label's only values).
REASON_CLASSES = ("too_large", "not_json", "bad_shape", "unstorable", "other")
_REASON_WORDS = (
    ("too_large", ("exceeds", "over the")),
    ("not_json", ("not json", "nested too deeply to read")),
    ("unstorable", ("bson", "database refused", "64-bit", "key holds", "key starts", "nested")),
    ("bad_shape", ("must be", "payload", "unknown", "missing", "kind", "time ")),
)
# Failed pulls whose reason says the host could not be reached at all (versus one that
# answered wrongly): the collector's own words (hub.collector._describe).
_UNREACHABLE_WORDS = (
    "connection refused",
    "timed out",
    "cancelled after expireafter",
    "OSError",
    "ConnectionResetError",
    "ConnectionLost",
    "gaierror",
    "No route to host",
    "Network is unreachable",
)


# The sample names each metric type writes (prometheus_client's text format).
_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def reason_class(reason: str) -> str:
    """The bounded label for a quarantine reason such as 'not JSON (Expecting value)'."""
    low = reason.lower()
    for name, words in _REASON_WORDS:
        if any(w in low for w in words):
            return name
    return "other"


def is_unreachable(why: str) -> bool:
    return any(w.lower() in why.lower() for w in _UNREACHABLE_WORDS)


class HubMetrics:
    """Every metric of one hub, in its own registry."""

    def __init__(self, hub: str) -> None:
        self.hub = hub
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)

        def counter(name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, list(labels), registry=self.registry)

        def gauge(name: str, doc: str, labels: Iterable[str] = ()) -> Gauge:
            return Gauge(f"{PREFIX}_{name}", doc, list(labels), registry=self.registry)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(f"{PREFIX}_{name}", doc, buckets=buckets, registry=self.registry)

        # role and replication
        self.is_master = gauge("is_master", "1 when this hub is master (collects), else 0.")
        self.election_term = gauge("election_term", "The replica set's election term.")
        self.member_up = gauge("member_up", "1 when the member answers the set.", ["member"])
        self.member_state = gauge(
            "member_state", "Each member's MongoDB state code (1 primary, 2 secondary).", ["member"]
        )
        self.member_lag = gauge(
            "member_replication_lag_seconds", "How far each member is behind.", ["member"]
        )
        self.probe_age = gauge(
            "master_watch_probe_age_seconds",
            "Seconds since this hub's own mongod last answered the master watch.",
        )
        # collection
        self.rounds = counter("collection_rounds", "Collection rounds run on this hub.")
        self.round_seconds = histogram(
            "collection_round_duration_seconds", "How long collection rounds took.", ROUND_BUCKETS
        )
        self.overruns = counter(
            "collection_round_overruns", "Rounds that took longer than the interval."
        )
        self.interval = gauge("collection_interval_seconds", "The configured round interval.")
        self.last_round = gauge(
            "collection_last_round_timestamp_seconds", "When this hub last finished a round."
        )
        self.round_hosts = gauge(
            "collection_round_hosts", "Hosts of the last round, by result.", ["result"]
        )
        self.stored = counter("reports_stored", "Reports stored.")
        self.quarantined = counter(
            "reports_quarantined", "Reports quarantined, by reason class.", ["reason"]
        )
        for reason in REASON_CLASSES:
            self.quarantined.labels(reason)
        self.gaps = counter("report_gaps_recorded", "Gap records (reports a spool dropped).")
        self.bytes_read = counter("collection_read_bytes", "Bytes read from report services.")
        self.pull_seconds = histogram(
            "collection_pull_duration_seconds", "How long pulls from one host took.", PULL_BUCKETS
        )
        # fleet
        self.clients = gauge(
            "fleet_clients", "Registered, unrevoked clients by freshness.", ["freshness"]
        )
        self.compliance = gauge(
            "fleet_compliance_ratio", "Share of reporting clients whose latest run was compliant."
        )
        self.promise_outcomes = gauge(
            "fleet_promise_outcomes", "Promise outcomes in clients' latest runs.", ["status"]
        )
        for status in STATUSES:
            self.promise_outcomes.labels(status)
        self.fleet_age = gauge(
            "fleet_figures_age_seconds", "Age of the cached fleet figures this scrape shows."
        )
        # sync
        self.keys = gauge("keys", "Client keys held in ppkeys/, by state.", ["state"])
        self.generation = gauge(
            "masterfiles_generation", "The masterfiles release generation served (0: none)."
        )
        self.publish_seconds = gauge(
            "masterfiles_publish_duration_seconds",
            "How long the publish of the served release took, from install until a majority "
            "of hubs held it (NaN until known).",
        )
        self.publish_seconds.set(float("nan"))
        self.last_sync = gauge(
            "peer_sync_last_success_timestamp_seconds", "When this hub's last peer sync finished."
        )
        self.syncs = counter("peer_syncs", "Peer syncs, by result.", ["result"])
        self.sync_seconds = histogram(
            "peer_sync_duration_seconds", "How long peer syncs took.", SYNC_BUCKETS
        )
        # remediation (hub.remediation): labels per rule, result and skip reason only
        self.remediation_runs = counter(
            "remediation_runs",
            "Remediations run (or decided in a dry run), by result.",
            ["rule", "result"],
        )
        self.remediation_skips = counter(
            "remediation_skips", "Triggered remediations not run, by reason.", ["rule", "reason"]
        )
        self.remediation_breaker_open = gauge(
            "remediation_breaker_open", "1 while a rule's fleet breaker is open.", ["rule"]
        )
        self.up_since = gauge("start_time_seconds", "When hubd started (Unix time).")
        self.up_since.set_to_current_time()

    # ----- hooks where the figures arise --------------------------------------------------
    def round_finished(self, figures: RoundFigures) -> None:
        """A round that ran (not one aborted because this hub is not master)."""
        reasons = list(figures.failed.values())
        unreachable = sum(1 for why in reasons if is_unreachable(why))
        self.rounds.inc()
        self.round_seconds.observe(figures.seconds)
        self.last_round.set_to_current_time()
        self.round_hosts.labels("known").set(figures.hosts)
        self.round_hosts.labels("skipped").set(figures.skipped)
        self.round_hosts.labels("collected").set(figures.pulled)
        self.round_hosts.labels("failed").set(len(reasons) - unreachable)
        self.round_hosts.labels("unreachable").set(unreachable)
        self.stored.inc(figures.stored)

    def round_overran(self) -> None:
        self.overruns.inc()

    def quarantined_reports(self, reasons: Iterable[str]) -> None:
        for reason in reasons:
            self.quarantined.labels(reason_class(reason)).inc()

    def gaps_recorded(self, count: int) -> None:
        self.gaps.inc(count)

    def peer_synced(self, seconds: float, ok: bool) -> None:
        self.syncs.labels("ok" if ok else "failed").inc()
        self.sync_seconds.observe(seconds)
        if ok:
            self.last_sync.set_to_current_time()

    def remediation_ran(self, rule: str, result: str) -> None:
        self.remediation_runs.labels(rule, result).inc()

    def remediation_skipped(self, rule: str, reason: str) -> None:
        self.remediation_skips.labels(rule, reason).inc()

    def remediation_breaker(self, rule: str, is_open: bool) -> None:
        self.remediation_breaker_open.labels(rule).set(1 if is_open else 0)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric, as the library writes it."""
        return generate_latest(self.registry)

    def names(self) -> set[str]:
        """Every sample name this hub exports, including those of labelled metrics with no
        series yet (for checking dashboards and rules)."""
        names: set[str] = set()
        for family in self.registry.collect():
            names.update(s.name for s in family.samples)
            suffixes = _SAMPLE_SUFFIXES.get(family.type, ("",))
            names.update(family.name + suffix for suffix in suffixes)
        return names
