"""The rolling upgrade (issue 19 s3): the shipped hub play upgrades a running three-hub
cluster from one build to another while collection runs.

Everything is real on this machine: the stand-in replica set with access control and TLS,
three `hubd run` processes from the virtualenvs the play installs, clients whose agent runs
and report services are real, and the collector storing their reports. The play gets one
thing a real hub would not: its restart action is tests/deploy/hubd_process.py instead of
systemd (hubcluster_hubd_restart_command). The first build is the plain wheel; the second is
built by the play itself from a copy of this tree with another version.

While the upgrade runs a sampler records, every 0.1 s, how many members are up and which
hubd processes do not accept connections. The upgrade also changes mongod.conf, so every
mongod restarts too (the restart action kills and revives the stand-in member). Afterwards:
no report lost or stored twice (the collector's sequence numbers and its gap records), never
fewer than two members up, never more than one hubd down at once, the primary's hub changed
last (after handing the primary over), and every hub running the new build.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hub.mongo import DB_NAME, access_as, connect
from hub.mongo_access import MongoAccess, read_password_file
from hubcluster.keys import key_fingerprint, load_private_key
from hubctl.lab.cluster import LabCluster
from hubctl.lab.lab_hubs import LabHub
from hubctl.lab.ports import free_port
from hubctl.lab.sample_policy import SAMPLE_PROMISES
from hubctl.lab.standin import StandinCluster
from hubctl.lab.standin.control import serve_control
from tests.deploy.playbook import ANSIBLE_DIR, NEEDS_ANSIBLE, run_playbook, wheel_version
from tests.deploy.playbook import write_inventory as write_inventory_file
from tests.install.plain_install import BUILD_FILES, PACKAGES, REPO

pytestmark = [
    NEEDS_ANSIBLE,
    # Two real deployments of three virtualenvs and a serial play: minutes, not seconds
    # (README "Rolling changes"; run with -m slow).
    pytest.mark.slow,
    pytest.mark.timeout(2400),
]

HUBD_PROCESS = Path(__file__).with_name("hubd_process.py")
STANDIN_MEMBER = Path(__file__).with_name("standin_member.py")
CLIENTS = 3
SAMPLE_EVERY = 0.1
LIVE_STATES = ("PRIMARY", "SECONDARY")


def copy_with_version(target: Path, version: str) -> Path:
    """This tree's build inputs in `target`, saying `version` (pyproject and __version__)."""
    for name in (*BUILD_FILES, "MANIFEST.in"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, target / name)
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, target / package, ignore=shutil.ignore_patterns("__pycache__", ".*")
        )
    pyproject = target / "pyproject.toml"
    text = pyproject.read_text()
    old = next(line for line in text.splitlines() if line.startswith("version = "))
    pyproject.write_text(text.replace(old, f'version = "{version}"', 1))
    init = target / "hubcluster" / "__init__.py"
    old = next(line for line in init.read_text().splitlines() if line.startswith("__version__"))
    init.write_text(init.read_text().replace(old, f'__version__ = "{version}"', 1))
    return target


@dataclass
class Hub:
    name: str
    member: str
    port: int
    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def config(self) -> Path:
        return self.root / "etc" / "hub.toml"

    @property
    def pidfile(self) -> Path:
        return self.root / "hubd.pid"

    @property
    def log(self) -> Path:
        return self.root / "hubd.log"

    @property
    def hubctl(self) -> Path:
        return self.root / "bin" / "hubctl"

    def host_vars(self, mongo_port: int, control: str) -> dict:
        root = self.root
        return {
            "hubcluster_address": "127.0.0.1",
            "hubcluster_mongodb_port": mongo_port,
            "hubcluster_hub_port": self.port,
            "hubcluster_venv": str(self.venv),
            "hubcluster_config_dir": str(root / "etc"),
            "hubcluster_systemd_dir": str(root / "systemd"),
            "hubcluster_nftables_dir": str(root / "nftables.d"),
            "hubcluster_hubctl": str(self.hubctl),
            "hub_workdir": str(root / "work"),
            "mongodb_member_config": str(root / "mongod.conf"),
            "mongodb_member_keyfile": str(root / "mongod.keyfile"),
            "mongodb_member_db_path": str(root / "db"),
            "mongodb_member_log_path": str(root / "log" / "mongod.log"),
            "mongodb_member_tls_dir": str(root / "mongod-tls"),
            "hubcluster_mongod_restart_command": [
                sys.executable,
                str(STANDIN_MEMBER),
                "restart",
                "--control",
                control,
                "--member",
                self.member,
            ],
            "hubcluster_hubd_restart_command": [
                sys.executable,
                str(HUBD_PROCESS),
                "restart",
                "--venv",
                str(self.venv),
                "--config",
                str(self.config),
                "--pidfile",
                str(self.pidfile),
                "--log",
                str(self.log),
                "--port",
                str(self.port),
            ],
        }

    def serving(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        from tests.deploy.hubd_process import stop

        stop(self.pidfile)


@dataclass
class Sampler:
    """Members up and hubd processes down, every SAMPLE_EVERY seconds, in a thread."""

    cluster: StandinCluster
    hubs: list[Hub]
    min_members_up: int = 99
    max_hubd_down: int = 0
    samples: int = 0
    # hub (member) name -> first time seen down, in the order they went down
    went_down: dict[str, float] = field(default_factory=dict)
    members_went_down: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            members = self.cluster.status()["members"]
            up = [m["name"] for m in members if m["alive"] and m["state"] in LIVE_STATES]
            down = [h.name for h in self.hubs if not h.serving()]
            now = time.monotonic()
            for name in down:
                self.went_down.setdefault(name, now)
            for m in members:
                if m["name"] not in up:
                    self.members_went_down.setdefault(m["name"], now)
            self.min_members_up = min(self.min_members_up, len(up))
            self.max_hubd_down = max(self.max_hubd_down, len(down))
            self.samples += 1
            self._stop.wait(SAMPLE_EVERY)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)


class AgentRuns:
    """Real `client-agent run`s on every client, round after round, in a thread."""

    def __init__(self, lab: LabCluster) -> None:
        self.lab = lab
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            asyncio.run(self.lab.agent_runs())
            self.rounds += 1
            self._stop.wait(0.5)

    def __enter__(self) -> AgentRuns:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def stored_reports(uri: str, access: MongoAccess) -> tuple[dict[str, list[int]], int]:
    """Each client's stored report seqs (as the collector keyed them), and the gap records."""
    with access_as(access), connect(uri, timeout=10) as client:
        db = client[DB_NAME]
        names = {d["_id"]: d["hostname"] for d in db.hosts.find()}
        seqs = {
            name: sorted(d["seq"] for d in db.reports.find({"host": sha}, {"seq": 1}))
            for sha, name in names.items()
        }
        return seqs, db.gaps.count_documents({})


def run_hubctl(hub: Hub, *args: str) -> subprocess.CompletedProcess[str]:
    """hubctl through the wrapper the play installed on `hub` (the operator's database
    user, from files) with that hub's config; nothing else in the environment."""
    return subprocess.run(
        [str(hub.hubctl), *args, "--config", str(hub.config)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "80"},
    )


def hubctl_status(hub: Hub) -> dict:
    done = run_hubctl(hub, "status", "--json")
    assert done.stdout.strip().startswith("{"), done.stderr
    return json.loads(done.stdout)


def test_rolling_upgrade_keeps_collecting_and_two_members_up(tmp_path, plain):
    old_version = wheel_version(plain.wheel)
    new_version = f"{old_version}.post1"
    secrets = tmp_path / "secrets"
    (tmp_path / "src-new").mkdir()
    source = copy_with_version(tmp_path / "src-new", new_version)
    cluster = StandinCluster(election_timeout=1.0).start()  # auth and TLS on, not initiated
    hubs = [
        Hub(f"hub{i}", member, free_port(), tmp_path / f"hub{i}")
        for i, member in enumerate(cluster.hosts, start=1)
    ]
    for h in hubs:  # what every machine has before the play: its systemd unit directory
        (h.root / "systemd").mkdir(parents=True)
    lab = LabCluster(tmp_path / "lab", clients=CLIENTS)
    control = serve_control(cluster)
    try:
        tls = cluster.credentials.tls_files
        assert tls is not None
        member_pem = tmp_path / "member.pem"
        member_pem.write_text(tls.cert_file.read_text() + tls.key_file.read_text())
        inventory = write_inventory_file(
            tmp_path / "inventory.json",
            {
                h.name: {
                    **h.host_vars(
                        int(h.member.rsplit(":", 1)[1]), f"127.0.0.1:{control.server_port}"
                    ),
                    "mongodb_member_tls_certificate_key_file": str(member_pem),
                }
                for h in hubs
            },
            {},
            {
                "hubcluster_install_packages": False,
                "hubcluster_manage_services": False,
                "hubcluster_install_venv": True,
                "hubcluster_rolling_checks": True,
                "hubcluster_rolling_timeout": 60,
                "hubcluster_secrets_dir": str(secrets),
                "hubcluster_tls_ca_file": str(cluster.ca_file),
                "hubcluster_version": old_version,
                "hubcluster_wheel": str(plain.wheel),
                "hubcluster_pip_extra_args": (
                    f"--no-index --find-links {plain.wheelhouse} --no-compile"
                ),
                "hubcluster_python": sys.executable,
                "hub_user": "",
                "hub_trust_keys_from": ["127.0.0.0/8"],
                "hub_state_interval": "1s",
                "hub_sync_interval": "5s",
                "hub_collector": {
                    "interval": "1s",
                    "ifelapsed": "0s",
                    "connect_timeout": "2s",
                    "host_timeout": "5s",
                    "expireafter": "30s",
                },
                "replset_initiate": True,
                "replset_election_timeout": "1s",
                "replset_timeout": 30,
            },
        )
        home = tmp_path / "ansible-home"
        # First install: all three hubs, the set and its users, then hubd (old build).
        run_playbook(ANSIBLE_DIR / "site.yml", inventory, home, timeout=900)
        operator = MongoAccess(
            "operator",
            read_password_file(secrets / "db-users" / "operator"),
            tls_ca_file=cluster.ca_file,
        )
        assert all(h.serving() for h in hubs), "the first install did not start every hubd"

        # A policy, published by the operator through the master hub's hubctl wrapper.
        policy = tmp_path / "policy"
        policy.mkdir()
        (policy / "promises.toml").write_text(SAMPLE_PROMISES)
        master = next(h for h in hubs if h.member == cluster.primary())
        published = run_hubctl(master, "masterfiles", "publish", str(policy))
        assert published.returncode == 0, published.stderr

        # Clients, bootstrapped against hub1 with the hub key the play distributed.
        lab.standin = cluster
        lab.hubs = [
            LabHub(h.name, h.member, h.port, h.config, h.root / "work", h.log) for h in hubs
        ]
        lab.fingerprint = key_fingerprint(load_private_key(secrets / "hub_key"))
        lab.write_clients()
        lab.bootstrap_clients(lab.hubs[0])

        before = hubctl_status(hubs[0])
        assert {h["name"]: h["version"] for h in before["hubs"]} == {
            h.name: old_version for h in hubs
        }
        primary_hub = next(m["hub"] for m in before["members"] if m["name"] == before["primary"])

        with AgentRuns(lab) as runs, Sampler(cluster, hubs) as sampler:
            time.sleep(2)  # collection under way before the change starts
            started = time.monotonic()
            upgrade = run_playbook(
                ANSIBLE_DIR / "hubs.yml",
                inventory,
                home,
                "-e",
                json.dumps(
                    {
                        "hubcluster_version": new_version,
                        "hubcluster_wheel": "",
                        "hubcluster_build_source": str(source),
                        "hubcluster_build_dir": str(tmp_path / "wheels"),
                        # A mongod.conf change too (mongod then listens on loopback only):
                        # each member restarts, one at a time.
                        "mongodb_member_bind_ip": "127.0.0.1",
                    }
                ),
                timeout=900,
            )
            took = time.monotonic() - started
            (tmp_path / "upgrade.log").write_text(upgrade)
            time.sleep(2)
        assert runs.rounds >= 3, f"only {runs.rounds} agent rounds ran during the upgrade"

        # Every report every client made is stored exactly once, and none was given up.
        deadline = time.monotonic() + 30
        while True:
            produced = lab.produced()
            stored, gaps = stored_reports(cluster.uri, operator)
            want = {name: list(range(1, n + 1)) for name, n in produced.items()}
            if stored == want or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert all(n > 0 for n in produced.values()), produced
        assert stored == want, f"stored {stored}, produced {produced}"
        assert gaps == 0

        print(
            f"\nrolling upgrade {old_version} -> {new_version}: {took:.1f}s, "
            f"{sampler.samples} samples, min members up {sampler.min_members_up}, "
            f"max hubd down at once {sampler.max_hubd_down}, "
            f"{sum(produced.values())} reports from {CLIENTS} clients"
        )
        assert sampler.min_members_up == 2  # one member restarted at a time, never two
        assert sorted(sampler.members_went_down) == sorted(h.member for h in hubs)
        assert sampler.max_hubd_down == 1  # each hubd did go down, one at a time
        assert sorted(sampler.went_down) == [h.name for h in hubs]
        order = sorted(sampler.went_down, key=sampler.went_down.__getitem__)
        assert order[-1] == primary_hub, f"order {order}, the primary's hub was {primary_hub}"
        # Only the primary's hub handed the primary over (hubctl stepdown --to ... --yes): the
        # handler's included task is shown as a handler too. Its member may hand over twice,
        # before mongod's restart and again before hubd's: a restarted mongod forgets its
        # stepdown and may be elected again at once, and the play checks before each restart.
        handed = [
            line.split(" => ")[0].strip()
            for block in upgrade.split("HANDLER [hubcluster : Hand the primary to a caught-up")[1:]
            for line in block.split("\n\n")[0].splitlines()
            if line.startswith("changed: [")
        ]
        assert handed and set(handed) == {f"changed: [{primary_hub}]"}, handed

        after = hubctl_status(hubs[0])
        assert {h["name"]: h["version"] for h in after["hubs"]} == {
            h.name: new_version for h in hubs
        }
        assert after["primary"] != before["primary"]
        assert (tmp_path / "wheels" / f"hubcluster-{new_version}-py3-none-any.whl").is_file()
    finally:
        control.shutdown()
        for h in hubs:
            h.stop()
        lab.hubs = []
        lab.standin = cluster
        lab.down()  # the clients' processes and the stand-in
