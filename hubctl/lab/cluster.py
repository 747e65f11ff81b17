"""A whole hubcluster on this machine: three hubd processes on a replica set, and clients.

The replica set is the wire-level stand-in (in this process) unless a real `mongod` is
wanted; each hub gets a config, a workdir sharing one hub key pair, and its own `hubd run`
process; each client gets a workdir, a config, a bootstrap through a hub's SSH service and
its own `client-agent serve` process. Agent runs are started by the lab on an interval.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from client_agent.spool import Spool
from hub.keystore import KeyStore
from hub.mongo import DB_NAME, connect
from hub.replset import ReplicaSet
from hubcluster.keys import ensure_key_pair, key_fingerprint
from hubctl.lab.mongod_cluster import MongodCluster
from hubctl.lab.ports import free_port, wait_port
from hubctl.lab.standin import StandinCluster

SAMPLE_PROMISES = """\
# The lab's sample policy: one promise kept, one repaired once, one out of context.
[[promise]]
name = "lab_marker"
check = "test -f lab-marker"
repair = "touch lab-marker"

[[promise]]
name = "always_true"
check = "true"

[[promise]]
name = "sunday_only"
check = "true"
if = "Sunday"
"""


def _python_entry(module: str) -> list[str]:
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


HUBD = _python_entry("hub.daemon")
CLIENT_AGENT = _python_entry("client_agent.cli")
HUBCTL = _python_entry("hubctl.app")


@dataclass
class LabHub:
    name: str
    member: str
    service_port: int
    config: Path
    workdir: Path
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def service(self) -> str:
        return f"127.0.0.1:{self.service_port}"


@dataclass
class LabClient:
    name: str
    workdir: Path
    config: Path
    port: int
    log: Path
    proc: subprocess.Popen | None = None


@dataclass
class LabCluster:
    directory: Path
    clients: int = 10
    election_timeout: float = 2.0
    collect_interval: float = 10.0
    sync_interval: float = 5.0
    hubs: list[LabHub] = field(default_factory=list)
    fleet: list[LabClient] = field(default_factory=list)
    standin: StandinCluster | MongodCluster | None = None
    last_kill: float | None = None

    # ----- the replica set and the hubs ---------------------------------------------------
    @property
    def uri(self) -> str:
        assert self.standin is not None
        return self.standin.uri

    @property
    def replset_kind(self) -> str:
        return "real mongod processes" if shutil.which("mongod") else "the wire-level stand-in"

    def start_replset(self) -> None:
        if shutil.which("mongod"):
            self.standin = MongodCluster(self.directory / "mongod").start()
        else:
            self.standin = StandinCluster(election_timeout=self.election_timeout).start()
        rs = ReplicaSet(self.standin.uri)
        try:
            rs.initiate(
                self.standin.hosts,
                self.standin.set_name,
                election_timeout_ms=int(self.election_timeout * 1000),
            )
        finally:
            rs.close()

    def write_hubs(self) -> None:
        assert self.standin is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        for i, member in enumerate(self.standin.hosts, 1):
            name = f"hub{i}"
            self.hubs.append(
                LabHub(
                    name,
                    member,
                    free_port(),
                    self.directory / f"{name}.toml",
                    self.directory / name,
                    self.directory / f"{name}.log",
                )
            )
        entries = "".join(
            f'[[hubs]]\nname = "{h.name}"\nmongo = "{h.member}"\nservice = "{h.service}"\n\n'
            for h in self.hubs
        )
        for h in self.hubs:
            h.config.write_text(
                f'[hub]\nname = "{h.name}"\nworkdir = "{h.workdir}"\nlisten = "{h.service}"\n'
                'trust_keys_from = ["127.0.0.0/8"]\n\n'
                f'[replset]\nuri = "{self.uri}"\n\n'
                f'[collector]\ninterval = "{self.collect_interval}s"\nifelapsed = "0s"\n'
                'connect_timeout = "2s"\nhost_timeout = "5s"\nexpireafter = "30s"\n\n'
                f'[sync]\ninterval = "{self.sync_interval}s"\n\n{entries}'
            )
        # One hub key pair for all hubs, as the deploy does.
        first = KeyStore(self.hubs[0].workdir / "ppkeys").hub_private_key_path
        key, _ = ensure_key_pair(first)
        for h in self.hubs[1:]:
            target = KeyStore(h.workdir / "ppkeys").hub_private_key_path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(first, target)
            shutil.copy2(first.with_suffix(".pub"), target.with_suffix(".pub"))
        self.fingerprint = key_fingerprint(key)
        for h in self.hubs:
            subprocess.run(
                HUBD + ["init", "--config", str(h.config)],
                check=True,
                capture_output=True,
                timeout=60,
            )

    def start_hub(self, hub: LabHub) -> None:
        log = open(hub.log, "ab")  # noqa: SIM115 - the child owns it
        hub.proc = subprocess.Popen(
            HUBD + ["run", "--config", str(hub.config)], stdout=log, stderr=subprocess.STDOUT
        )
        wait_port(hub.service_port, 30, f"{hub.name}'s SSH service")

    def stop_hub(self, hub: LabHub, kill: bool = False) -> None:
        if hub.proc is None:
            return
        if kill:
            hub.proc.kill()
        else:
            hub.proc.terminate()
        try:
            hub.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            hub.proc.kill()
            hub.proc.wait(timeout=10)
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

    def publish_sample(self) -> str:
        source = self.directory / "sample-masterfiles"
        source.mkdir(parents=True, exist_ok=True)
        (source / "promises.toml").write_text(SAMPLE_PROMISES)
        (source / "README").write_text("hubcluster lab sample policy\n")
        master = self.master()
        assert master is not None
        out = subprocess.run(
            HUBCTL + ["masterfiles", "publish", str(source), "--config", str(master.config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode != 0:
            raise RuntimeError(f"publishing the sample policy failed: {out.stderr.strip()}")
        return out.stdout.strip().split()[-1]

    # ----- a whole hub host going down and coming back -------------------------------------
    def kill(self, name: str) -> str:
        hub = self.hub(name)
        assert self.standin is not None
        self.last_kill = time.time()
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
        for c in self.fleet:
            out = subprocess.run(
                CLIENT_AGENT
                + [
                    "bootstrap",
                    hub.service,
                    "--config",
                    str(c.config),
                    "--hub-fingerprint",
                    self.fingerprint,
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if out.returncode != 0:
                raise RuntimeError(f"bootstrap of {c.name} failed: {out.stderr.strip()}")
            log = open(c.log, "ab")  # noqa: SIM115 - the child owns it
            c.proc = subprocess.Popen(
                CLIENT_AGENT + ["serve", "--config", str(c.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        for c in self.fleet:
            wait_port(c.port, 30, f"{c.name}'s report service")

    async def agent_runs(self, concurrency: int = 8) -> list[int]:
        """One `client-agent run` on every client; returns their exit codes."""
        limit = asyncio.Semaphore(concurrency)

        async def one(c: LabClient) -> int:
            async with limit:
                proc = await asyncio.create_subprocess_exec(
                    *CLIENT_AGENT,
                    "run",
                    "--config",
                    str(c.config),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                return await proc.wait()

        return list(await asyncio.gather(*(one(c) for c in self.fleet)))

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
        client = connect(self.uri, timeout=10)
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
        self.start_replset()
        self.write_hubs()
        for h in self.hubs:
            self.start_hub(h)
        self.publish_sample()
        self.write_clients()
        master = self.master()
        assert master is not None
        self.bootstrap_clients(master)

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
                    "hubd": "running"
                    if h.proc is not None and h.proc.poll() is None
                    else "stopped",
                    "mongod": members[h.member]["state"],
                    "isolated": members[h.member]["isolated"],
                }
                for h in self.hubs
            ],
            "clients": len(self.fleet),
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
        for h in self.hubs:
            self.stop_hub(h)
        if self.standin is not None:
            self.standin.stop()
