"""A whole hubcluster on this machine: three hubd processes on a replica set, and clients.

The replica set is the wire-level stand-in (in this process) unless a real `mongod` is
wanted; each hub gets a config, a workdir sharing one hub key pair, and its own `hubd run`
process; each client gets a workdir, a config, a bootstrap through a hub's SSH service and
its own `client-agent serve` process. Agent runs are started by the lab on an interval.
How a hub is laid out and configured is in hubctl.lab.lab_hubs; the sample policy it
publishes in hubctl.lab.sample_policy; the children's command lines in
hubctl.lab.child_commands.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymongo

from client_agent.spool import Spool
from hub.keystore import KeyStore
from hub.mongo import DB_NAME, use_access
from hub.mongo_access import MongoAccess
from hubcluster.keys import ensure_key_pair, key_fingerprint
from hubctl.lab.agent_processes import AgentForker
from hubctl.lab.child_commands import CLIENT_AGENT, HUBD
from hubctl.lab.client_processes import LabClient, bootstrap_all, run_agents
from hubctl.lab.haproxy import LabHaproxy
from hubctl.lab.lab_hubs import LabHub, init_hubs, share_hub_key, write_hub_config
from hubctl.lab.mongod_cluster import MongodCluster
from hubctl.lab.portal_accounts import LabPortalAccounts, lab_portal_accounts
from hubctl.lab.ports import free_port, wait_port
from hubctl.lab.processes import stop_process
from hubctl.lab.sample_policy import publish_sample
from hubctl.lab.standin import StandinCluster
from hubctl.lab.standin.credentials import ClusterCredentials


@dataclass
class LabCluster:
    directory: Path
    clients: int = 10
    election_timeout: float = 2.0
    collect_interval: float = 10.0
    sync_interval: float = 5.0
    state_interval: float = 2.0
    bootstrap_concurrency: int = 4
    hub_config_extra: str = ""  # TOML appended to every hub config (e.g. [remediation])
    hubs: list[LabHub] = field(default_factory=list)
    fleet: list[LabClient] = field(default_factory=list)
    standin: StandinCluster | MongodCluster | None = None
    last_kill: float | None = None
    # hub name -> (what was done to it, when): what a failover away from it is timed from.
    disruptions: dict[str, tuple[str, float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    forker: AgentForker | None = None
    haproxy: LabHaproxy | None = None  # started by start_haproxy (hubctl lab up)
    credentials_dir: Path | None = None
    _credentials: ClusterCredentials | None = field(default=None, init=False, repr=False)
    # The portal's lab users, "admin" and "viewer", share this password (printed by lab up);
    # scripts use the viewer token "lab.<secret>".
    portal: LabPortalAccounts = field(default_factory=lab_portal_accounts, repr=False)

    # ----- the replica set and the hubs ---------------------------------------------------
    @property
    def uri(self) -> str:
        assert self.standin is not None
        return self.standin.uri

    @property
    def replset_kind(self) -> str:
        return "real mongod processes" if shutil.which("mongod") else "the wire-level stand-in"

    # ----- who connects: hub.db_roles' users over TLS, as in production ------------------
    @property
    def credentials(self) -> ClusterCredentials:
        """The lab's password files (0600) and private CA: in `credentials_dir` (lab up: the
        lab's directory), else the process's (every lab of a test session alike)."""
        if self._credentials is None:
            if self.credentials_dir is not None:
                self._credentials = ClusterCredentials(self.credentials_dir)
            else:
                self._credentials = ClusterCredentials.shared()
        return self._credentials

    def access(self, user: str | None = "operator") -> MongoAccess | None:
        return self.credentials.access(user)

    def env(self, user: str | None = "operator") -> dict[str, str]:
        """HUBCLUSTER_MONGO_* for a child that must be `user` (hubctl: the operator)."""
        return self.credentials.env(user)

    def child_env(self, user: str | None = "operator") -> dict[str, str]:
        """This process's environment with `user`'s credentials: for hubctl children."""
        return {**os.environ, **self.env(user)}

    def client(self, user: str | None = "operator", **kwargs: Any) -> pymongo.MongoClient:
        return self.credentials.client(self.uri, user, **kwargs)

    def operator_lines(self, shown: Path | None = None) -> list[str]:
        """How the person at the terminal runs hubctl as the operator (lab up prints it);
        paths under the lab's directory are shown under `shown` (the --dir as typed)."""

        def show(path: Path) -> Path:
            if shown is None or not path.is_relative_to(self.directory):
                return path
            return shown / path.relative_to(self.directory)

        env_file = self.credentials.env_file("operator")
        return [
            f"db users (SCRAM, TLS): password files in {show(self.credentials.passwords_dir)}",
            f"hubctl as the operator: . {show(env_file)}",
        ]

    def start_replset(self) -> None:
        """Start the members and initiate them as init-replset --create-users does; this
        process is the operator afterwards (hub.mongo's access)."""
        if shutil.which("mongod"):
            self.standin = MongodCluster(self.directory / "mongod", credentials=self.credentials)
            self.standin.start()
        else:
            self.standin = StandinCluster(
                election_timeout=self.election_timeout, credentials=self.credentials
            ).start()
        self.standin.initiate(election_timeout_ms=int(self.election_timeout * 1000))
        use_access(self.access("operator"))

    def write_hubs(self) -> None:
        """A hub per member, configured, sharing one key pair, `hubd init`-ed."""
        assert self.standin is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        for i, member in enumerate(self.standin.hosts, 1):
            self.hubs.append(LabHub.at(self.directory, f"hub{i}", member))
        for h in self.hubs:
            write_hub_config(self, h)
        # One hub key pair for all hubs, as the deploy does.
        key, _ = ensure_key_pair(KeyStore(self.hubs[0].workdir / "ppkeys").hub_private_key_path)
        for h in self.hubs[1:]:
            share_hub_key(self.hubs[0], h)
        self.fingerprint = key_fingerprint(key)
        init_hubs(self.hubs)

    def replace(self, name: str) -> str:
        """Replace hub `name` for good by a new hub on a new mongod (hubctl lab replace)."""
        from hubctl.lab.replacement import replace_hub

        return replace_hub(self, name)

    def _launch_hub(self, hub: LabHub) -> None:
        log = open(hub.log, "ab")  # noqa: SIM115 - the child owns it
        hub.proc = subprocess.Popen(
            HUBD + ["run", "--config", str(hub.config)], stdout=log, stderr=subprocess.STDOUT
        )

    def start_hub(self, hub: LabHub) -> None:
        self._launch_hub(hub)
        wait_port(hub.service_port, 30, f"{hub.name}'s SSH service")

    def stop_hub(self, hub: LabHub, kill: bool = False) -> None:
        if hub.proc is None:
            return
        stop_process(hub.proc, grace=20, kill=kill)
        hub.proc = None

    def hub(self, name: str) -> LabHub:
        for h in self.hubs:
            if name in (h.name, h.member):
                return h
        raise KeyError(f"no hub {name!r} (hubs: {', '.join(h.name for h in self.hubs)})")

    def master(self) -> LabHub | None:
        assert self.standin is not None
        primary = self.standin.primary()
        return next((h for h in self.hubs if h.member == primary), None)

    def member_state(self, name: str) -> str:
        """A hub's replica-set member state: PRIMARY, SECONDARY, STARTUP or DOWN."""
        hub = self.hub(name)
        assert self.standin is not None
        states = {m["name"]: m["state"] for m in self.standin.status()["members"]}
        return states.get(hub.member, "DOWN")

    # ----- a whole hub host going down and coming back -------------------------------------
    def kill(self, name: str) -> str:
        hub = self.hub(name)
        assert self.standin is not None
        self.last_kill = time.time()
        self.disruptions[hub.name] = ("kill", self.last_kill)
        self.standin.kill(hub.member)
        self.stop_hub(hub, kill=True)
        return f"{hub.name} killed (mongod {hub.member} and hubd)"

    def revive(self, name: str) -> str:
        hub = self.hub(name)
        assert self.standin is not None
        self.standin.revive(hub.member)
        if hub.proc is None:
            self.start_hub(hub)
        return f"{hub.name} revived"

    def isolate(self, name: str) -> str:
        hub = self.hub(name)
        assert self.standin is not None
        self.disruptions[hub.name] = ("isolate", time.time())
        self.standin.isolate(hub.member)
        return f"{hub.name}'s mongod cut off from its peers"

    def heal(self, name: str) -> str:
        hub = self.hub(name)
        assert self.standin is not None
        self.standin.heal(hub.member)
        return f"{hub.name} rejoined"

    # ----- clients ------------------------------------------------------------------------
    def write_clients(self) -> None:
        for i in range(self.clients):
            name = f"client{i + 1:03d}"
            workdir = self.directory / "clients" / name
            workdir.mkdir(parents=True, exist_ok=True)
            port = free_port()
            config = workdir / "agent.toml"
            config.write_text(
                f'[agent]\nworkdir = "{workdir}"\nhostname = "{name}"\nconnect_timeout = "1s"\n\n'
                f'[serve]\nlisten = "127.0.0.1:{port}"\n'
            )
            self.fleet.append(LabClient(name, workdir, config, port, workdir / "agent.log"))

    def bootstrap_clients(self, hub: LabHub) -> None:
        """Bootstrap every client to `hub` (`bootstrap_concurrency` at once), then start
        its report service."""
        if self.forker is None:
            self.forker = AgentForker()
        pin = ["--hub-fingerprint", self.fingerprint]
        asyncio.run(
            bootstrap_all(self.fleet, hub.service, pin, self.forker, self.bootstrap_concurrency)
        )
        for c in self.fleet:
            wait_port(c.port, 30, f"{c.name}'s report service")

    async def agent_runs(self, concurrency: int = 8) -> list[int]:
        """One `client-agent run` on every client; returns their exit codes."""
        return await run_agents(self.fleet, CLIENT_AGENT, concurrency)

    def policy_servers(self) -> dict[str, str]:
        return {
            c.name: (c.workdir / "policy_server.dat").read_text().strip()
            for c in self.fleet
            if (c.workdir / "policy_server.dat").exists()
        }

    def produced(self) -> dict[str, int]:
        """Each client's highest report sequence number, read from its spool."""
        out = {}
        for c in self.fleet:
            with Spool(c.workdir / "spool") as spool:
                out[c.name] = spool.status()["last_seq"]
        return out

    def stored(self) -> dict[str, list[int]]:
        """Each client's stored report sequence numbers, from the database (primary)."""
        client = self.client("reader", serverSelectionTimeoutMS=10_000)
        try:
            db = client[DB_NAME]
            names = {d["_id"]: d["hostname"] for d in db.hosts.find()}
            return {
                name: sorted(d["seq"] for d in db.reports.find({"host": sha}, {"seq": 1}))
                for sha, name in names.items()
            }
        finally:
            client.close()

    def all_collected(self) -> bool:
        """Every report every client produced is stored, exactly once."""
        want, have = self.produced(), self.stored()
        return all(have.get(name) == list(range(1, n + 1)) for name, n in want.items())

    # ----- whole lab ----------------------------------------------------------------------
    def up(self) -> None:
        """Start everything; `timings` then says how long each part took, in seconds."""
        started = time.monotonic()
        self.start_replset()
        self.timings["replica set"] = time.monotonic() - started
        mark = time.monotonic()
        self.write_hubs()
        for h in self.hubs:
            self._launch_hub(h)
        for h in self.hubs:
            wait_port(h.service_port, 30, f"{h.name}'s SSH service")
        publish_sample(self)
        self.timings["hubs"] = time.monotonic() - mark
        mark = time.monotonic()
        self.write_clients()
        master = self.master()
        assert master is not None
        self.bootstrap_clients(master)
        self.timings["clients"] = time.monotonic() - mark
        self.timings["total"] = time.monotonic() - started

    def ready_line(self) -> str:
        """One line saying how long start-up took, part by part."""
        t = self.timings
        return (
            f"lab ready in {t['total']:.1f}s: replica set {t['replica set']:.1f}s, "
            f"3 hubs {t['hubs']:.1f}s, {len(self.fleet)} clients {t['clients']:.1f}s"
        )

    def portal_lines(self) -> list[str]:
        """Where each hub's portal answers, one line per hub, and how to log in."""
        lines = [f"portal of {h.name}: {h.portal_url}" for h in self.hubs]
        lines += [f"metrics of {h.name}: {h.portal_url}metrics" for h in self.hubs]
        lines += self.haproxy.lines() if self.haproxy is not None else []
        return lines + [f"portal login: admin or viewer, password {self.portal.password}"]

    def start_haproxy(self) -> None:
        """Debian's HAProxy on loopback in front of the portals (HaproxyMissing if none)."""
        haproxy = LabHaproxy(self.directory, [(h.name, h.portal_port) for h in self.hubs])
        haproxy.start()
        self.haproxy = haproxy

    def status(self) -> dict:
        """Hubs, their processes and members, for the control API and the dashboard."""
        assert self.standin is not None
        members = {m["name"]: m for m in self.standin.status()["members"]}
        master = self.master()
        return {
            "uri": self.uri,
            "master": master.name if master else None,
            "hubs": [
                {
                    "name": h.name,
                    "member": h.member,
                    "service": h.service,
                    "portal": h.portal_url,
                    "hubd": "running"
                    if h.proc is not None and h.proc.poll() is None
                    else "stopped",
                    "mongod": members[h.member]["state"],
                    "isolated": members[h.member]["isolated"],
                }
                for h in self.hubs
            ],
            "clients": len(self.fleet),
            "haproxy": None
            if self.haproxy is None
            else {"read": self.haproxy.read_url, "master": self.haproxy.master_url},
        }

    def save_state(self, control: str | None = None) -> None:
        state = {
            "uri": self.uri,
            "hubs": [
                {"name": h.name, "member": h.member, "service": h.service, "config": str(h.config)}
                for h in self.hubs
            ],
            "clients": len(self.fleet),
            "control": control,
        }
        (self.directory / "lab.json").write_text(json.dumps(state, indent=2))

    def down(self) -> None:
        for c in self.fleet:
            if c.proc is not None:
                c.proc.terminate()
        for c in self.fleet:
            if c.proc is not None:
                try:
                    c.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    c.proc.kill()
                c.proc = None
        if self.forker is not None:
            self.forker.close()
            self.forker = None
        if self.haproxy is not None:
            self.haproxy.stop()
            self.haproxy = None
        for h in self.hubs:
            self.stop_hub(h)
        if self.standin is not None:
            self.standin.stop()
        use_access(None)
