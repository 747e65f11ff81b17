"""The hub's TOML config, validated at start so that a mistake names its key.

Example (every key but hub.name, [[hubs]] and replset.uri has a default):

    [hub]
    name = "hub1"                       # this hub; must be one of [[hubs]]
    workdir = "/var/lib/hubcluster"     # ppkeys/, masterfiles/, state
    listen = "0.0.0.0:5308"             # the hub's SSH service
    trust_keys_from = ["10.0.0.0/8"]    # networks allowed to register new client keys
    state_interval = "15s"              # how often it writes its state for `hubctl status`
    log_format = "text"                 # or "json": one JSON object per log line

    [replset]
    name = "CFEngineNova"
    uri = "mongodb://h1:27017,h2:27017,h3:27017/?replicaSet=CFEngineNova"
    max_staleness = "90s"               # bound for secondary reads
    username = "hubd"                   # optional: log in (SCRAM-SHA-256, authSource admin)
    password_file = "/etc/hubcluster/mongo-password"  # mode 0600; or $HUBCLUSTER_MONGO_PASSWORD
    tls_ca_file = "/etc/hubcluster/mongo-ca.pem"      # optional: TLS, mongod's cert checked

    [[hubs]]                            # one per hub, in failover order
    name = "hub1"
    mongo = "h1:27017"                  # its replica-set member, as in the set's config
    service = "h1:5308"                 # its SSH service, as clients reach it

    [collector]
    interval = "5m"
    concurrency = 200                   # pulls in flight, shared by the workers
    connect_timeout = "5s"
    host_timeout = "30s"
    ifelapsed = "1m"                    # minimum time between two pulls of one host
    expireafter = "10m"                 # a pull running longer is cancelled and counted failed
    batch_size = 500                    # reports asked of one client per command
    max_report_bytes = 1048576          # a larger report is rejected
    workers = 1                         # collector processes; default: cores - 1, at least 1

    [sync]
    interval = "1m"

    [portal]                            # the web console, on when this table is given;
    bind = "127.0.0.1"                  # see hub/portal/settings.py
    port = 5380

    [[remediation.rules]]               # self-healing under limits: hub/remediation/rules.py
    name = "sshd"
    trigger = "promise_not_kept"
    promise = "sshd_running"
    action = "run_agent"
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from hub.mongo_access import AccessError, MongoAccess, access_from, redact
from hub.portal.settings import PortalSettings, parse_portal
from hub.remediation.rules import RemediationSettings, parse_remediation
from hubcluster.config_check import ConfigError, Section, load_toml
from hubcluster.log_format import FORMATS

DEFAULT_SERVICE_PORT = 5308
MAX_WORKERS = 256


def default_workers() -> int:
    """Collector processes by default: every core this process may run on but one (left to
    hubd's own loop, the SSH service and the database client), and at least one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max((cores or 1) - 1, 1)


DEFAULT_CONCURRENCY = 200


@dataclass(frozen=True)
class HubEntry:
    name: str
    mongo: str
    service: str


@dataclass(frozen=True)
class CollectorSettings:
    interval: float = 300.0
    # 200 rather than 50: more pulls per turn of a worker's event loop and larger group
    # writes cost 10-15% less CPU per client (benchmarks/RESULTS.md, issue 15, session 6).
    concurrency: int = DEFAULT_CONCURRENCY
    connect_timeout: float = 5.0
    host_timeout: float = 30.0
    ifelapsed: float = 60.0
    expireafter: float = 600.0
    batch_size: int = 500
    max_report_bytes: int = 1 << 20
    # Processes the master's collector spreads hosts over (hub.collector_pool).
    workers: int = field(default_factory=lambda: default_workers())


@dataclass(frozen=True)
class HubConfig:
    name: str
    workdir: Path
    listen: str
    trust_keys_from: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    replset_name: str
    mongo_uri: str
    max_staleness: float
    hubs: list[HubEntry]
    collector: CollectorSettings = field(default_factory=CollectorSettings)
    sync_interval: float = 60.0
    state_interval: float = 15.0
    mongo_access: MongoAccess | None = None
    portal: PortalSettings = field(default_factory=PortalSettings)
    log_format: str = "text"  # hubcluster.log_format.FORMATS
    remediation: RemediationSettings = field(default_factory=RemediationSettings)

    @property
    def me(self) -> HubEntry:
        return next(h for h in self.hubs if h.name == self.name)

    def hub_for_member(self, member: str) -> HubEntry | None:
        """The hub whose mongod is `member` (host:port as the replica set names it)."""
        return next((h for h in self.hubs if h.mongo == member), None)

    @property
    def ppkeys(self) -> Path:
        return self.workdir / "ppkeys"

    @property
    def masterfiles(self) -> Path:
        return self.workdir / "masterfiles"


def load_hub_config(path: str | Path) -> HubConfig:
    """Read and validate a hub config; raises ConfigError naming the first bad key."""
    data = load_toml(path)
    try:
        return parse_hub_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_hub_config(data: dict) -> HubConfig:
    root = Section(data, "")
    hub = root.table("hub", required=True)
    replset = root.table("replset", required=True)
    collector = root.table("collector")
    sync = root.table("sync")
    portal = root.table("portal")
    remediation = parse_remediation(root.table("remediation"))
    hubs = []
    for entry in root.tables("hubs"):
        hubs.append(
            HubEntry(
                name=entry.str("name", required=True),
                mongo=entry.address("mongo", required=True),
                service=entry.address("service", required=True),
            )
        )
        entry.reject_unknown()
    if not hubs:
        raise ConfigError("hubs: at least one [[hubs]] entry is required")
    for attr in ("name", "mongo", "service"):
        seen = [getattr(h, attr) for h in hubs]
        dupes = sorted({v for v in seen if seen.count(v) > 1})
        if dupes:
            raise ConfigError(f"hubs: duplicate {attr} {', '.join(dupes)}")
    name = hub.str("name", required=True)
    if name not in {h.name for h in hubs}:
        raise ConfigError(f"hub.name: {name!r} is not one of the [[hubs]] names")
    uri = replset.str("uri", required=True)
    if not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(redact(f"replset.uri: must start with mongodb:// , got {uri!r}"))
    try:
        access = access_from(
            replset.str("username"),
            replset.str("password_file"),
            replset.str("tls_ca_file"),
            where="replset: ",
        )
    except AccessError as exc:
        raise ConfigError(str(exc)) from None
    settings = CollectorSettings(
        interval=collector.duration("interval", 300.0, minimum=1.0),
        concurrency=collector.int("concurrency", DEFAULT_CONCURRENCY, minimum=1, maximum=10_000),
        connect_timeout=collector.duration("connect_timeout", 5.0, minimum=0.1),
        host_timeout=collector.duration("host_timeout", 30.0, minimum=0.1),
        ifelapsed=collector.duration("ifelapsed", 60.0),
        expireafter=collector.duration("expireafter", 600.0, minimum=0.1),
        batch_size=collector.int("batch_size", 500, minimum=1),
        max_report_bytes=collector.int("max_report_bytes", 1 << 20, minimum=1024),
        workers=collector.int("workers", default_workers(), minimum=1, maximum=MAX_WORKERS),
    )
    config = HubConfig(
        name=name,
        workdir=Path(hub.str("workdir", "/var/lib/hubcluster")),
        listen=hub.address("listen", f"0.0.0.0:{DEFAULT_SERVICE_PORT}"),
        trust_keys_from=hub.networks("trust_keys_from", []),
        replset_name=replset.str("name", "CFEngineNova"),
        mongo_uri=uri,
        max_staleness=replset.duration("max_staleness", 90.0, minimum=90.0),
        hubs=hubs,
        collector=settings,
        sync_interval=sync.duration("interval", 60.0, minimum=1.0),
        state_interval=hub.duration("state_interval", 15.0, minimum=0.5),
        mongo_access=access,
        portal=parse_portal(portal, present="portal" in data),
        log_format=hub.str("log_format", "text"),
        remediation=remediation,
    )
    if config.log_format not in FORMATS:
        raise ConfigError(f"hub.log_format: must be text or json, got {config.log_format!r:.40}")
    for section in (root, hub, replset, collector, sync):
        section.reject_unknown()
    return config
