"""The Ansible deployment (ansible/), run for real on this machine.

Three hubs and two clients, all `connection: local`, each under its own staging root in
tmp_path, with packages and services switched off: the playbook renders every file it would
put on the hosts, and these tests read them back. A second run must change nothing. The
hubs install the plain wheel (tests/install, no extras) into their staged virtualenvs, and
their programs are run from there. The deployment is tests/deploy/deployment.py; the
replset role's own run against the stand-in is tests/deploy/test_replset_role.py.
"""

from __future__ import annotations

import base64
import configparser
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from hub.config import load_hub_config
from tests.deploy.deployment import (
    AGENT_CONFIG,
    CLIENTS,
    CONFIG,
    DB_USERS,
    HUBS,
    PORTAL_PASSWORD,
    VENV,
    Deployment,
)
from tests.deploy.playbook import (
    ANSIBLE_DIR,
    NEEDS_ANSIBLE,
    recap,
)

pytestmark = [
    NEEDS_ANSIBLE,
    # Two full playbook runs happen in the first test's setup.
    pytest.mark.timeout(2400),
]


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
        # Access control on, members by keyFile, never transitionToAuth.
        assert conf["security"] == {"authorization": "enabled", "keyFile": "/etc/mongod.keyfile"}
        assert "transitionToAuth" not in deployed.file(hub, "/etc/mongod.conf").read_text()
        assert conf["net"] == {
            "port": 27017,
            "bindIp": f"127.0.0.1,{address}",
            "tls": {
                "mode": "requireTLS",
                "certificateKeyFile": "/etc/mongod-tls/member.pem",
                "CAFile": "/etc/mongod-tls/ca.pem",
                "allowConnectionsWithoutCertificates": True,
            },
        }
        assert "tlsAllowInvalid" not in deployed.file(hub, "/etc/mongod.conf").read_text()
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


def staged_config_copy(deployed: Deployment, hub: str, tmp_path: Path) -> Path:
    """A copy of `hub`'s hub.toml whose /etc/hubcluster paths point into the staging root
    (hubd and hubctl read the password and CA files it names when they load it)."""
    text = deployed.file(hub, CONFIG).read_text()
    staged = str(deployed.file(hub, "/etc/hubcluster"))
    copy = tmp_path / f"{hub}.toml"
    copy.write_text(text.replace('"/etc/hubcluster/', f'"{staged}/'))
    return copy


def staged_hub_config(deployed: Deployment, hub: str, tmp_path: Path):
    """hubd's reading of `hub`'s hub.toml (staged_config_copy)."""
    return load_hub_config(staged_config_copy(deployed, hub, tmp_path))


def test_each_hub_toml_lists_all_three_hubs_in_inventory_order(deployed, tmp_path):
    members = [f"{ip}:27017" for ip in HUBS.values()]
    for hub, address in HUBS.items():
        config = staged_hub_config(deployed, hub, tmp_path)
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
        # hubd logs in as `hubd` (password in a 0600 file of its own) over TLS.
        replset = tomllib.loads(deployed.file(hub, CONFIG).read_text())["replset"]
        assert replset["username"] == "hubd"
        assert replset["password_file"] == "/etc/hubcluster/mongo-hubd.password"
        assert replset["tls_ca_file"] == "/etc/hubcluster/mongo-ca.pem"
        access = config.mongo_access
        assert access is not None and access.username == "hubd"
        assert access.password == (deployed.secrets / "db-users" / "hubd").read_text().strip()
        assert "@" not in config.mongo_uri  # no credentials in the URI


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
        # A hub's `run` ask reaches the root run service through the spool (serve.run_via).
        path = unit(units / "hubcluster-agent-run.path")
        assert path["Path"]["PathExists"] == "/var/lib/hubcluster-agent/spool/run-request.json"
        assert path["Path"]["Unit"] == "hubcluster-agent-run.service"
        assert path["Install"]["WantedBy"] == "paths.target"


def staged_program(deployed: Deployment, host: str, program: str, *args: str):
    """Run a program of the virtualenv the role installed on `host` (under its root)."""
    return subprocess.run(
        [str(deployed.file(host, f"{VENV}/bin/{program}")), *args],
        capture_output=True,
        text=True,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )


def test_hubs_get_the_plain_install_and_its_programs_run(deployed, plain, tmp_path):
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
    # The NRPE command of hub1 (its config staged, with the credential files it names):
    # an answer, here UNKNOWN, not a crash.
    config = str(staged_config_copy(deployed, "hub1", tmp_path))
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
            "serve": {"listen": "0.0.0.0:5309", "run_via": "systemd"},
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
        assert load_agent_config(path).run_via == "systemd"


def test_secrets_never_show_in_the_output(deployed):
    private_lines = (deployed.secrets / "hub_key").read_text().splitlines()[1:-1]
    keyfile_lines = (deployed.secrets / "mongod.keyfile").read_text().split()
    tls_key_lines = [
        line
        for key in (deployed.secrets / "tls").glob("*.key")
        for line in key.read_text().splitlines()[1:-1]
    ]
    assert len(tls_key_lines) >= 4  # the CA's and three hubs' keys
    for output in (deployed.first, deployed.second):
        for line in private_lines + keyfile_lines + tls_key_lines:
            assert line not in output


def test_mongod_gets_the_private_ca_and_a_certificate_for_its_address(deployed):
    ca = deployed.secrets / "tls" / "ca.pem"
    for hub, address in HUBS.items():
        tls = deployed.file(hub, "/etc/mongod-tls")
        assert (tls / "ca.pem").read_bytes() == ca.read_bytes()
        member = tls / "member.pem"
        assert stat.S_IMODE(member.stat().st_mode) == 0o400
        assert b"PRIVATE KEY-----" in member.read_bytes()
        verify = subprocess.run(
            ["openssl", "verify", "-CAfile", str(ca), str(member)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        names = subprocess.run(
            ["openssl", "x509", "-in", str(member), "-noout", "-ext", "subjectAltName"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        assert f"IP Address:{address}" in names and "IP Address:127.0.0.1" in names
        # hubd and hubctl check mongod's certificate against the same CA.
        assert deployed.file(hub, "/etc/hubcluster/mongo-ca.pem").read_bytes() == ca.read_bytes()
    assert stat.S_IMODE((deployed.secrets / "tls" / "ca.key").stat().st_mode) == 0o600


def nft_rules(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if "dport" in line]


def test_the_firewall_lets_only_the_hubs_reach_mongod_and_the_report_service(deployed):
    hubs = ", ".join(HUBS.values())
    for hub in HUBS:
        rules = nft_rules(deployed.file(hub, "/etc/nftables.d/hubcluster-mongod.nft"))
        assert rules == [
            'iifname "lo" tcp dport 27017 accept',
            f"ip saddr {{ {hubs} }} tcp dport 27017 accept",
            "tcp dport 27017 drop",
        ]
        include = deployed.file(hub, "/etc/nftables.d/hubcluster.nft").read_text()
        assert 'include "/etc/nftables.d/hubcluster-*.nft"' in include
        # The hub's SSH service is for every client: no table restricts it.
        assert not deployed.file(hub, "/etc/nftables.d/hubcluster-hubd.nft").exists()
    for client in CLIENTS:
        rules = nft_rules(deployed.file(client, "/etc/nftables.d/hubcluster-agent.nft"))
        assert rules[1:] == [f"ip saddr {{ {hubs} }} tcp dport 5309 accept", "tcp dport 5309 drop"]


def test_database_credentials_are_private_files_never_command_lines(deployed):
    passwords = {u: (deployed.secrets / "db-users" / u).read_text().strip() for u in DB_USERS}
    assert all(len(pw) >= 40 for pw in passwords.values())
    for hub in HUBS:
        for user in ("hubd", "operator"):
            path = deployed.file(hub, f"/etc/hubcluster/mongo-{user}.password")
            assert path.read_text().strip() == passwords[user]
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        wrapper = deployed.file(hub, "/usr/local/sbin/hubctl")
        assert stat.S_IMODE(wrapper.stat().st_mode) == 0o755
        text = wrapper.read_text()
        assert "HUBCLUSTER_MONGO_USER=operator" in text
        assert "HUBCLUSTER_MONGO_PASSWORD_FILE=/etc/hubcluster/mongo-operator.password" in text
        assert f'exec {VENV}/bin/hubctl "$@"' in text
    # Every user's password is on the first hub only, for creating the users.
    users_dir = deployed.file("hub1", "/etc/hubcluster/db-users")
    assert stat.S_IMODE(users_dir.stat().st_mode) == 0o700
    assert not deployed.file("hub2", "/etc/hubcluster/db-users").exists()
    # No password in the playbook's output (-v shows every command line) nor in any file
    # others may read (the installed virtualenvs aside: they hold no deployment file).
    for output in (deployed.first, deployed.second):
        for password in passwords.values():
            assert password not in output
    for host in [*HUBS, *CLIENTS]:
        for path in deployed.root(host).rglob("*"):
            if path.is_file() and "venv" not in path.parts and "wheels" not in path.parts:
                if stat.S_IMODE(path.stat().st_mode) & 0o004:
                    text = path.read_text(errors="replace")
                    for user, password in passwords.items():
                        assert password not in text, f"{user}'s password in {path}"


def test_the_portal_table_is_written_only_where_enabled(deployed, tmp_path):
    from hub.portal.passwords import secret_matches

    assert "[portal]" not in deployed.file("hub1", CONFIG).read_text()
    assert staged_hub_config(deployed, "hub1", tmp_path).portal.enabled is False
    portal = staged_hub_config(deployed, "hub2", tmp_path).portal
    assert portal.enabled and portal.bind == "0.0.0.0" and portal.port == 5380
    written = tomllib.loads(deployed.file("hub2", CONFIG).read_text())["portal"]
    assert written["tls_cert"] == "/etc/hubcluster/portal.crt"
    assert written["tls_key"] == "/etc/hubcluster/portal.key"
    assert written["secret_file"] == "/var/lib/hubcluster/portal-secret"
    [alice] = portal.users
    assert (alice.name, alice.role) == ("alice", "admin")
    assert secret_matches(alice.secret_hash, PORTAL_PASSWORD)
    secret = deployed.file("hub2", "/var/lib/hubcluster/portal-secret")
    assert secret.read_bytes() == (deployed.secrets / "portal-secret").read_bytes()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
