"""The Ansible deployment (ansible/), run for real on this machine.

Three hubs and two clients, all `connection: local`, each under its own staging root in
tmp_path, with packages and services switched off: the playbook renders every file it would
put on the hosts, and these tests read them back. A second run must change nothing. The
hubs install the plain wheel (tests/install, no extras) into their staged virtualenvs, and
their programs are run from there. The replset role runs against the wire-level stand-in
with that same plain install's hubctl, so its idempotence is real too.
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.config import load_hub_config

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
ROLES = ("hubcluster", "mongodb_member", "hub", "replset", "client")


def _tool(name: str) -> str | None:
    """A console script of this venv (even when it is not on PATH), else one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


PLAYBOOK = _tool("ansible-playbook")
LINT = _tool("ansible-lint")

pytestmark = [
    pytest.mark.skipif(
        PLAYBOOK is None,
        reason="ansible-playbook is not installed; pip install -e '.[deploy]' to run these",
    ),
    # Two full playbook runs happen in the first test's setup.
    pytest.mark.timeout(300),
]

HUBS = {"hub1": "10.0.0.1", "hub2": "10.0.0.2", "hub3": "10.0.0.3"}
CLIENTS = {"client1": "10.0.1.1", "client2": "10.0.1.2"}
CONFIG = "/etc/hubcluster/hub.toml"
AGENT_CONFIG = "/etc/hubcluster/agent.toml"
VENV = "/opt/hubcluster/venv"


def ansible_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_HOME=str(home),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_PIPELINING="1",
        ANSIBLE_FORKS="8",
        ANSIBLE_GATHERING="explicit",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def write_inventory(path: Path, hubs: dict, clients: dict, common: dict) -> Path:
    """A YAML (here: JSON) inventory; `hubs`/`clients` map host name -> host variables."""
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_become": False,
                "ansible_python_interpreter": sys.executable,
                **common,
            },
            "children": {"hubs": {"hosts": hubs}, "clients": {"hosts": clients}},
        }
    }
    path.write_text(json.dumps(inventory, indent=2))
    return path


def run_playbook(playbook: Path, inventory: Path, home: Path, *args: str) -> str:
    result = subprocess.run(
        [PLAYBOOK, "-i", str(inventory), str(playbook), *args],
        cwd=ANSIBLE_DIR,
        env=ansible_env(home),
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


RECAP_LINE = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")


def recap(output: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP counters per host."""
    tail = output[output.rindex("PLAY RECAP") :]
    counts = {}
    for line in tail.splitlines()[1:]:
        match = RECAP_LINE.match(line.strip())
        if match:
            pairs = (item.split("=") for item in match.group(2).split())
            counts[match.group(1)] = {key: int(value) for key, value in pairs}
    return counts


def task_results(output: str, task: str) -> list[str]:
    """The per-host result lines (`ok: [...]`, `changed: [...]`) of the task named `task`."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"TASK [{task}"))
    results = []
    for line in lines[start + 1 :]:
        if line.startswith(("TASK [", "RUNNING HANDLER [", "PLAY RECAP")):
            break
        if re.match(r"^(ok|changed|skipping|failed|fatal): \[", line):
            results.append(line.split(" => ")[0].strip())
    return results


@dataclass
class Deployment:
    base: Path
    secrets: Path
    first: str
    second: str

    def root(self, host: str) -> Path:
        return self.base / host

    def file(self, host: str, path: str) -> Path:
        return self.root(host) / path.lstrip("/")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, plain) -> Deployment:
    base = tmp_path_factory.mktemp("deploy")
    secrets = base / "secrets"
    hubs = {
        name: {
            "hubcluster_address": ip,
            "hubcluster_root": str(base / name),
            "hubcluster_install_venv": True,
        }
        for name, ip in HUBS.items()
    }
    hubs["hub1"]["hub_nrpe"] = True
    hubs["hub1"]["hub_prometheus_rules_dir"] = "/etc/prometheus/rules"
    clients = {
        name: {"hubcluster_address": ip, "hubcluster_root": str(base / name)}
        for name, ip in CLIENTS.items()
    }
    clients["client2"]["client_hostname"] = "client2.example.com"
    inventory = write_inventory(
        base / "inventory.json",
        hubs,
        clients,
        {
            "hubcluster_install_packages": False,
            "hubcluster_manage_services": False,
            "hubcluster_secrets_dir": str(secrets),
            # The wheel tests/install built, and its dependencies, offline; bytecode is
            # compiled on first import instead, which keeps three installs cheap.
            "hubcluster_wheel": str(plain.wheel),
            "hubcluster_pip_extra_args": (
                f"--no-index --find-links {plain.wheelhouse} --no-compile"
            ),
            "hubcluster_python": sys.executable,
        },
    )
    # --diff -v: if a secret were not under no_log, its content would show in this output.
    first = run_playbook(ANSIBLE_DIR / "site.yml", inventory, base / "home", "--diff", "-v")
    second = run_playbook(ANSIBLE_DIR / "site.yml", inventory, base / "home", "--diff", "-v")
    return Deployment(base, secrets, first, second)


def test_syntax_check(tmp_path):
    result = subprocess.run(
        [PLAYBOOK, "--syntax-check", "-i", "inventory.example.ini", "site.yml"],
        cwd=ANSIBLE_DIR,
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(LINT is None, reason="ansible-lint is not installed (the deploy extra)")
def test_ansible_lint_production_profile_is_clean(tmp_path):
    env = ansible_env(tmp_path)
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    result = subprocess.run(
        [LINT, "--nocolor"],
        cwd=ANSIBLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "Profile 'production' was required, and it passed" in output


def test_every_host_converges_and_a_second_run_changes_nothing(deployed):
    hosts = [*HUBS, *CLIENTS]
    first, second = recap(deployed.first), recap(deployed.second)
    assert sorted(first) == sorted(hosts) == sorted(second)
    for host in hosts:
        assert first[host]["failed"] == 0 and first[host]["unreachable"] == 0
        assert first[host]["changed"] > 0, f"{host}: the first run wrote nothing"
        assert second[host]["failed"] == 0 and second[host]["unreachable"] == 0
        assert second[host]["changed"] == 0, f"{host} changed on the second run: {second[host]}"


def test_members_name_the_same_set_and_share_one_keyfile(deployed):
    import yaml

    shared = (deployed.secrets / "mongod.keyfile").read_bytes()
    # 756 random bytes in base64, within mongod's 6..1024 characters of the base64 alphabet.
    assert len(base64.b64decode(shared)) == 756
    assert 6 <= len(b"".join(shared.split())) <= 1024
    for hub, address in HUBS.items():
        conf = yaml.safe_load(deployed.file(hub, "/etc/mongod.conf").read_text())
        assert conf["replication"] == {"replSetName": "CFEngineNova"}
        assert conf["security"]["keyFile"] == "/etc/mongod.keyfile"
        assert conf["net"] == {"port": 27017, "bindIp": f"127.0.0.1,{address}"}
        assert conf["storage"]["dbPath"] == "/var/lib/mongodb"
        assert conf["systemLog"]["destination"] == "file"
        keyfile = deployed.file(hub, "/etc/mongod.keyfile")
        assert keyfile.read_bytes() == shared
        assert stat.S_IMODE(keyfile.stat().st_mode) == 0o400


def test_every_hub_holds_the_same_hub_key_pair(deployed):
    private = (deployed.secrets / "hub_key").read_bytes()
    public = (deployed.secrets / "hub_key.pub").read_bytes()
    assert private.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert public.startswith(b"ssh-ed25519 ")
    for hub in HUBS:
        ppkeys = deployed.file(hub, "/var/lib/hubcluster/ppkeys")
        assert (ppkeys / "localhost.priv").read_bytes() == private
        assert (ppkeys / "localhost.pub").read_bytes() == public
        assert stat.S_IMODE((ppkeys / "localhost.priv").stat().st_mode) == 0o600
        assert stat.S_IMODE(ppkeys.stat().st_mode) == 0o700


def test_each_hub_toml_lists_all_three_hubs_in_inventory_order(deployed):
    members = [f"{ip}:27017" for ip in HUBS.values()]
    for hub, address in HUBS.items():
        config = load_hub_config(deployed.file(hub, CONFIG))
        assert config.name == hub
        assert [(h.name, h.mongo, h.service) for h in config.hubs] == [
            (name, f"{ip}:27017", f"{ip}:5308") for name, ip in HUBS.items()
        ]
        assert config.me.service == f"{address}:5308"
        assert config.replset_name == "CFEngineNova"
        assert config.mongo_uri == f"mongodb://{','.join(members)}/?replicaSet=CFEngineNova"
        assert str(config.workdir) == "/var/lib/hubcluster"
        assert config.listen == "0.0.0.0:5308"
        # By default the hubs admit new keys from exactly the inventory's clients.
        assert [str(n) for n in config.trust_keys_from] == [f"{ip}/32" for ip in CLIENTS.values()]
        assert config.collector.interval == 300 and config.sync_interval == 60


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def test_units_run_the_right_binaries_with_the_right_config(deployed):
    for hub in HUBS:
        hubd = unit(deployed.file(hub, "/etc/systemd/system/hubd.service"))
        assert hubd["Service"]["ExecStart"] == f"{VENV}/bin/hubd run --config {CONFIG}"
        assert hubd["Service"]["Type"] == "simple"
        assert hubd["Service"]["Restart"] == "on-failure"
        assert hubd["Service"]["User"] == "hubcluster"
        assert hubd["Install"]["WantedBy"] == "multi-user.target"
    nrpe = deployed.file("hub1", "/etc/nagios/nrpe.d/hubcluster.cfg").read_text()
    assert f"command[check_hubcluster]={VENV}/bin/hubctl check --config {CONFIG}" in nrpe
    assert not deployed.file("hub2", "/etc/nagios/nrpe.d/hubcluster.cfg").exists()
    rules = deployed.file("hub1", "/etc/prometheus/rules/hubcluster-alerts.yml")
    assert rules.read_text() == (ANSIBLE_DIR / "monitoring" / "hubcluster-alerts.yml").read_text()
    assert not deployed.file("hub2", "/etc/prometheus/rules/hubcluster-alerts.yml").exists()
    for client in CLIENTS:
        units = deployed.file(client, "/etc/systemd/system")
        serve = unit(units / "hubcluster-agent-serve.service")
        assert (
            serve["Service"]["ExecStart"]
            == f"{VENV}/bin/client-agent serve --config {AGENT_CONFIG}"
        )
        assert serve["Service"]["Type"] == "simple"
        assert serve["Service"]["Restart"] == "on-failure"
        run = unit(units / "hubcluster-agent-run.service")
        assert run["Service"]["ExecStart"] == f"{VENV}/bin/client-agent run --config {AGENT_CONFIG}"
        assert run["Service"]["Type"] == "oneshot"
        timer = unit(units / "hubcluster-agent-run.timer")
        assert timer["Timer"]["OnUnitActiveSec"] == "5m"
        assert timer["Timer"]["Unit"] == "hubcluster-agent-run.service"
        assert timer["Install"]["WantedBy"] == "timers.target"


def staged_program(deployed: Deployment, host: str, program: str, *args: str):
    """Run a program of the virtualenv the role installed on `host` (under its root)."""
    return subprocess.run(
        [str(deployed.file(host, f"{VENV}/bin/{program}")), *args],
        capture_output=True,
        text=True,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )


def test_hubs_get_the_plain_install_and_its_programs_run(deployed, plain):
    for hub in HUBS:
        wheel = deployed.file(hub, f"{Path(VENV).parent}/wheels/{plain.wheel.name}")
        assert wheel.read_bytes() == plain.wheel.read_bytes()
        done = staged_program(deployed, hub, "hubctl", "--help")
        assert done.returncode == 0 and done.stdout.startswith("Usage: hubctl"), done
    # The three installs are alike; hub1's stands for them in the slower checks.
    for program in ("hubd", "client-agent"):
        done = staged_program(deployed, "hub1", program, "--help")
        assert done.returncode == 0 and done.stdout.startswith(f"Usage: {program}"), done
    extras = staged_program(deployed, "hub1", "python", "-c", "import mockupdb")
    assert extras.returncode != 0, "the role installed the lab extra"
    lab = staged_program(deployed, "hub1", "hubctl", "lab", "up")
    assert lab.returncode == 2 and "pip install 'hubcluster[lab]'" in lab.stderr
    # The NRPE command of hub1 (its config staged): an answer, here UNKNOWN, not a crash.
    config = str(deployed.file("hub1", CONFIG))
    nrpe = staged_program(deployed, "hub1", "hubctl", "check", "--config", config, "--timeout", "1")
    assert nrpe.returncode == 3 and nrpe.stdout.startswith("HUBCLUSTER UNKNOWN - "), nrpe
    assert "Traceback" not in nrpe.stderr
    for client in CLIENTS:  # only the hubs are given the install in this test
        assert not deployed.file(client, VENV).exists()


def test_clients_get_their_agent_toml_and_pin_the_hub_key(deployed):
    keygen = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(deployed.secrets / "hub_key.pub")],
        capture_output=True,
        text=True,
        check=True,
    )
    fingerprint = keygen.stdout.split()[1]
    for client in CLIENTS:
        path = deployed.file(client, AGENT_CONFIG)
        expected = {
            "agent": {
                "workdir": "/var/lib/hubcluster-agent",
                "connect_timeout": "3s",
                "run_interval": "5m",
            },
            "serve": {"listen": "0.0.0.0:5309"},
            "spool": {"max_bytes": 10485760},
        }
        if client == "client2":
            expected["agent"]["hostname"] = "client2.example.com"
        assert tomllib.loads(path.read_text()) == expected
        assert f"Bootstrapped against 10.0.0.1:5308, pinning hub key {fingerprint}" in (
            path.read_text()
        )
        workdir = deployed.file(client, "/var/lib/hubcluster-agent")
        # Root's; the report service's group may pass (to the hub key and the spool).
        assert stat.S_IMODE(workdir.stat().st_mode) == 0o710
        spool = deployed.file(client, "/var/lib/hubcluster-agent/spool")
        assert stat.S_IMODE(spool.stat().st_mode) == 0o2770  # setgid: files get its group
        try:
            from client_agent.config import load_agent_config
        except ImportError:  # the agent's config module is not there yet
            continue
        assert str(load_agent_config(path).workdir) == "/var/lib/hubcluster-agent"


def test_secrets_never_show_in_the_output(deployed):
    private_lines = (deployed.secrets / "hub_key").read_text().splitlines()[1:-1]
    keyfile_lines = (deployed.secrets / "mongod.keyfile").read_text().split()
    for output in (deployed.first, deployed.second):
        for line in private_lines + keyfile_lines:
            assert line not in output


def commented_settings(text: str) -> dict:
    """The `# key: value` settings of group_vars/all.yml (with `#   ...` block lines)."""
    import yaml

    settings, block = {}, None
    for line in text.splitlines():
        match = re.match(r"^# ([a-z][a-z0-9_]*):(.*)$", line)
        if match:
            key, rest = match.groups()
            if rest.strip() in ("", ">-", ">", "|-", "|"):  # a block follows
                block = [f"{key}:{rest}"]
                settings[key] = None
            else:
                settings.update(yaml.safe_load(f"{key}:{rest}"))
                block = None
            continue
        if block is not None and re.match(r"^#( {2,}| -)", line):
            block.append(line[2:])
            settings.update(yaml.safe_load("\n".join(block)))
        else:
            block = None
    return settings


def test_group_vars_and_readme_document_every_role_default():
    import yaml

    documented = commented_settings((ANSIBLE_DIR / "group_vars" / "all.yml").read_text())
    readme = (ANSIBLE_DIR / "README.md").read_text()
    for role in ROLES:
        defaults = yaml.safe_load(
            (ANSIBLE_DIR / "roles" / role / "defaults" / "main.yml").read_text()
        )
        for key, value in defaults.items():
            if key.endswith("_json") or key in ("hubcluster_hubs", "hubcluster_client_addresses"):
                continue  # derived, not settings
            assert f"`{key}`" in readme, f"README.md does not document {key}"
            if key in documented:
                assert documented[key] == value, f"group_vars/all.yml disagrees on {key}"
            else:
                assert f"{key} " in (ANSIBLE_DIR / "group_vars" / "all.yml").read_text(), (
                    f"group_vars/all.yml does not mention {key}"
                )


def test_no_secret_material_in_the_ansible_tree():
    for path in ANSIBLE_DIR.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert "PRIVATE KEY-----" not in text, path


def test_replset_role_initiates_once_from_the_first_hub(tmp_path, plain):
    from hub.replset import ReplicaSet
    from hubctl.lab.standin import StandinCluster

    playbook = tmp_path / "replset.yml"
    playbook.write_text(
        "- name: Replica set\n  hosts: hubs\n  gather_facts: false\n  roles:\n    - role: replset\n"
    )
    with StandinCluster(election_timeout=0.5) as cluster:
        hubs = {}
        for index, member in enumerate(cluster.hosts, start=1):
            host, port = member.rsplit(":", 1)
            hubs[f"hub{index}"] = {"hubcluster_address": host, "hubcluster_mongodb_port": int(port)}
        hubs["hub1"]["replset_priority"] = 2
        inventory = write_inventory(
            tmp_path / "inventory.json",
            hubs,
            {},
            {
                "hubcluster_install_packages": False,
                "hubcluster_manage_services": False,
                "hubcluster_secrets_dir": str(tmp_path / "secrets"),
                "hubcluster_venv": str(plain.venv),  # a hub's hubctl: the plain install
                "replset_initiate": True,
                "replset_election_timeout": "500ms",
                "replset_timeout": 30,
            },
        )
        first = run_playbook(playbook, inventory, tmp_path / "home")
        assert "CFEngineNova: initiated" in first
        # Once, on the first hub (run_once), and changed because it initiated.
        assert task_results(first, "replset : Initiate") == ["changed: [hub1]"]
        second = run_playbook(playbook, inventory, tmp_path / "home")
        assert "CFEngineNova: already initiated" in second
        assert task_results(second, "replset : Initiate") == ["ok: [hub1]"]
        assert all(counts["changed"] == 0 for counts in recap(second).values())
        rs = ReplicaSet(cluster.uri)
        try:
            topology = rs.topology()
        finally:
            rs.close()
        assert topology.set_name == "CFEngineNova"
        assert sorted(m.name for m in topology.members) == sorted(cluster.hosts)
        priorities = {m.name: m.priority for m in topology.members}
        names = {m.name: m.hub for m in topology.members}
        assert names == {h: f"hub{i}" for i, h in enumerate(cluster.hosts, start=1)}
        assert priorities[cluster.hosts[0]] == 2
        assert priorities[cluster.hosts[1]] == priorities[cluster.hosts[2]] == 1
