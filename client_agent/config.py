"""The client's TOML config, validated at start so that a mistake names its key.

Example (every key has a default; a bare `--workdir DIR` gives the same defaults):

    [agent]
    workdir = "/var/lib/hubcluster-agent"   # keys, policy, spool, locks
    hostname = "web1.example.com"           # default: this host's name
    connect_timeout = "3s"                  # per hub tried during a run
    run_interval = "5m"                     # how often the timer runs the agent

    [serve]
    listen = "0.0.0.0:5309"                 # the report service the collector pulls from
    run_via = "spawn"                       # how a hub's `run` ask runs the agent (below)

    [spool]
    max_bytes = 10485760                    # the oldest unacknowledged reports go past this
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from hubcluster.config_check import ConfigError, Section, load_toml, split_address
from hubcluster.messages import host_name_problem

DEFAULT_CONFIG = Path("/etc/hubcluster/agent.toml")
DEFAULT_WORKDIR = Path("/var/lib/hubcluster-agent")
DEFAULT_LISTEN = "0.0.0.0:5309"
DEFAULT_SPOOL_BYTES = 10 * 1024 * 1024
# How the report service runs the agent when a hub asks (`run`). "spawn": as a child of the
# service, as the service's own user; the default, because the lab and the tests run the
# service and the agent as one user with no systemd. "systemd": through the root run
# service (hubcluster.run_handoff and hubcluster-agent-run.path), for a deployed client
# whose report service is unprivileged; the ansible client role sets it.
RUN_VIA = ("spawn", "systemd")


@dataclass(frozen=True)
class AgentConfig:
    workdir: Path
    hostname: str | None = None
    connect_timeout: float = 3.0
    run_interval: float = 300.0
    listen: str = DEFAULT_LISTEN
    spool_max_bytes: int = DEFAULT_SPOOL_BYTES
    run_via: str = "spawn"

    @property
    def host_name(self) -> str:
        """The configured name, or this host's own."""
        return self.hostname or socket.gethostname()

    @property
    def report_port(self) -> int:
        return split_address(self.listen)[1]

    @classmethod
    def for_workdir(cls, workdir: str | Path) -> AgentConfig:
        return cls(workdir=Path(workdir))


def load_agent_config(path: str | Path) -> AgentConfig:
    """Read and validate a client config; raises ConfigError naming the first bad key."""
    data = load_toml(path)
    try:
        return parse_agent_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_agent_config(data: dict) -> AgentConfig:
    root = Section(data, "")
    agent = root.table("agent")
    serve = root.table("serve")
    spool = root.table("spool")
    hostname = agent.str("hostname")
    problem = host_name_problem(hostname) if hostname is not None else None
    if problem:
        raise ConfigError(f"agent.hostname: {problem}")
    run_via = serve.str("run_via", "spawn")
    if run_via not in RUN_VIA:
        choices = " or ".join(RUN_VIA)
        raise ConfigError(f"serve.run_via: expected {choices}, got {run_via!r:.40}")
    config = AgentConfig(
        workdir=Path(agent.str("workdir", str(DEFAULT_WORKDIR))),
        hostname=hostname,
        connect_timeout=agent.duration("connect_timeout", 3.0, minimum=0.1),
        run_interval=agent.duration("run_interval", 300.0, minimum=1.0),
        listen=serve.address("listen", DEFAULT_LISTEN),
        spool_max_bytes=spool.int("max_bytes", DEFAULT_SPOOL_BYTES, minimum=4096),
        run_via=run_via,
    )
    for section in (root, agent, serve, spool):
        section.reject_unknown()
    return config


def resolve_config(config_file: Path | None, workdir: Path | None) -> AgentConfig:
    """The config the CLI options ask for: a file, a bare workdir, or the system default."""
    if config_file is not None and workdir is not None:
        raise ConfigError("give --config or --workdir, not both")
    if config_file is not None:
        return load_agent_config(config_file)
    if workdir is not None:
        return AgentConfig.for_workdir(workdir)
    if DEFAULT_CONFIG.exists():
        return load_agent_config(DEFAULT_CONFIG)
    return AgentConfig.for_workdir(DEFAULT_WORKDIR)
