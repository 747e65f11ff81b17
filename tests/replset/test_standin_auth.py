"""Access control over the wire on the default stand-in (access control and requireTLS, as
production runs mongod), its users and roles made by the real `hubctl init-replset
--create-users`, pymongo's SCRAM-SHA-256 over TLS as the client."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest
from pymongo.errors import OperationFailure
from typer.testing import CliRunner

from hub.db_roles import ADMIN_USER, USERS
from hub.mongo import use_access
from hub.mongo_access import ENV_PASSWORD_FILE, ENV_TLS_CA_FILE, ENV_USER
from hubctl.app import app
from hubctl.lab.standin import StandinCluster
from tests.conftest import ELECTION_TIMEOUT, wait_until

runner = CliRunner()
HUBD = [str(Path(sys.executable).with_name("hubd"))]


def hubctl(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


@pytest.fixture(autouse=True)
def no_leftover_access() -> Iterator[None]:
    # hubctl runs in this process here: its access must not follow other tests.
    yield
    use_access(None)


def write_passwords(directory: Path) -> Path:
    directory.mkdir()
    for name in [ADMIN_USER.name] + [u.name for u in USERS]:
        path = directory / name
        path.write_text(f"pw-of-{name}\n")
        path.chmod(0o600)
    return directory


def init_args(cluster: StandinCluster) -> list[str]:
    members = [a for i, h in enumerate(cluster.hosts, 1) for a in ("--member", f"hub{i}={h}")]
    return ["init-replset", *members, "--election-timeout", f"{ELECTION_TIMEOUT}s"]


@pytest.fixture
def auth_set(tmp_path: Path) -> Iterator[tuple[StandinCluster, Path]]:
    """An initiated default stand-in (access control, TLS) with hub.db_roles' users."""
    passwords = write_passwords(tmp_path / "passwords")
    with StandinCluster(election_timeout=ELECTION_TIMEOUT) as cluster:
        result = hubctl(*init_args(cluster), "--create-users", str(passwords), env=ca_env(cluster))
        assert result.exit_code == 0, result.output
        yield cluster, passwords


def ca_env(cluster: StandinCluster) -> dict:
    """No user (none exists before --create-users), the cluster's CA."""
    return {ENV_USER: None, ENV_PASSWORD_FILE: None, ENV_TLS_CA_FILE: str(cluster.ca_file)}


def client(
    cluster: StandinCluster,
    user: str | None = None,
    password: str | None = None,
    tls_ca_file: str | None = None,
):
    creds: dict = {"tls": True, "tlsCAFile": tls_ca_file or str(cluster.ca_file)}
    if user:
        creds |= dict(
            username=user,
            password=password or f"pw-of-{user}",
            authSource="admin",
            authMechanism="SCRAM-SHA-256",
        )
    return pymongo.MongoClient(cluster.uri, serverSelectionTimeoutMS=5000, **creds)


def refusal(action) -> OperationFailure:
    with pytest.raises(OperationFailure) as info:
        action()
    return info.value


def operator_env(passwords: Path, cluster: StandinCluster) -> dict[str, str]:
    return {
        ENV_USER: "operator",
        ENV_PASSWORD_FILE: str(passwords / "operator"),
        ENV_TLS_CA_FILE: str(cluster.ca_file),
    }


def test_init_replset_creates_the_users_and_a_rerun_keeps_them(auth_set):
    cluster, passwords = auth_set
    with client(cluster, ADMIN_USER.name) as admin:
        users = admin.admin.command("usersInfo", 1)["users"]
        roles = {r["role"]: r for r in admin.admin.command("rolesInfo", 1)["roles"]}
    assert {u["user"]: [r["role"] for r in u["roles"]] for u in users} == {
        "hubcluster-admin": ["userAdminAnyDatabase"],
        "hubd": ["hubclusterHubd"],
        "operator": ["hubclusterOperator"],
        "reader": ["hubclusterReader"],
    }
    assert roles["hubclusterOperator"]["roles"] == [{"role": "hubclusterHubd", "db": "admin"}]
    again = hubctl(*init_args(cluster), "--create-users", str(passwords), env=ca_env(cluster))
    assert again.exit_code == 0, again.output
    assert "already initiated" in again.stdout and "user hubd updated" in again.stdout
    # the initiate event was written once the users existed, by the operator
    with client(cluster, "reader") as reader:
        kinds = [e["kind"] for e in reader.cfreport.events.find()]
    assert kinds.count("initiate") == 1


def test_no_credentials_are_refused_with_code_13(auth_set):
    cluster, _ = auth_set
    with client(cluster) as anonymous:
        exc = refusal(lambda: anonymous.cfreport.reports.find_one())
        assert exc.code == 13 and exc.details["codeName"] == "Unauthorized"
        assert "requires authentication" in exc.details["errmsg"]
        assert refusal(lambda: anonymous.admin.command("replSetGetStatus")).code == 13
        # the localhost exception closed with the first user
        exc = refusal(lambda: anonymous.admin.command("createUser", "x", pwd="y", roles=[]))
        assert exc.code == 13


def test_a_wrong_password_is_refused_with_code_18(auth_set):
    cluster, _ = auth_set
    with client(cluster, "operator", "not-the-password") as wrong:
        exc = refusal(lambda: wrong.cfreport.reports.find_one())
    assert exc.code == 18 and exc.details["errmsg"] == "Authentication failed."
    with client(cluster, "nobody") as unknown:
        assert refusal(lambda: unknown.admin.command("ping")).code == 18


def test_the_reader_reads_but_may_not_write(auth_set):
    cluster, _ = auth_set
    with client(cluster, "hubd") as hubd:
        hubd.cfreport.probe.insert_one({"_id": "x", "by": "hubd"})
    with client(cluster, "reader") as reader:
        assert reader.cfreport.probe.find_one() == {"_id": "x", "by": "hubd"}
        exc = refusal(lambda: reader.cfreport.probe.insert_one({"_id": "y"}))
        assert exc.code == 13 and "not authorized on cfreport" in exc.details["errmsg"]
        assert refusal(lambda: reader.admin.command("replSetGetStatus")).code == 13


def reconfig(c: pymongo.MongoClient) -> dict:
    config = c.admin.command("replSetGetConfig")["config"]
    config["version"] += 1
    return c.admin.command("replSetReconfig", config)


def test_hubd_may_not_reconfigure_the_operator_may(auth_set):
    cluster, _ = auth_set
    with client(cluster, "hubd") as hubd:
        assert hubd.admin.command("replSetGetStatus")["set"] == cluster.set_name
        exc = refusal(lambda: reconfig(hubd))
        assert exc.code == 13 and "replSetConfigure" in exc.details["errmsg"]
        assert refusal(lambda: hubd.admin.command("replSetStepDown", 10)).code == 13
    with client(cluster, "operator") as operator:
        assert reconfig(operator)["ok"] == 1


def test_hubctl_status_runs_as_the_operator_and_says_no_credentials_in_one_line(auth_set):
    cluster, passwords = auth_set
    result = hubctl(
        "status", "--json", "--mongo", cluster.uri, env=operator_env(passwords, cluster)
    )
    assert result.exit_code == 0, result.output
    assert '"primary": "127.0.0.1:' in result.stdout
    refused = hubctl("status", "--mongo", cluster.uri, env=ca_env(cluster))
    assert refused.exit_code != 0
    assert "requires authentication" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def write_hub_config(
    cluster: StandinCluster, password_file: Path, tmp_path: Path
) -> tuple[str, Path]:
    """The primary's hub config, logging in as hubd with `password_file`, checking mongod's
    certificate with the cluster's CA; returns the hub's name and the config."""
    primary = wait_until(cluster.primary, 10, what="a primary")
    entries = "".join(
        f'[[hubs]]\nname = "hub{i}"\nmongo = "{h}"\nservice = "127.0.0.1:{free_port()}"\n\n'
        for i, h in enumerate(cluster.hosts, 1)
    )
    me = f"hub{cluster.hosts.index(primary) + 1}"
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\nname = "{me}"\nworkdir = "{tmp_path / "work"}"\n'
        f'listen = "127.0.0.1:{free_port()}"\nstate_interval = "0.5s"\n\n'
        f'[replset]\nuri = "{cluster.uri}"\nusername = "hubd"\n'
        f'password_file = "{password_file}"\ntls_ca_file = "{cluster.ca_file}"\n\n'
        '[collector]\ninterval = "1s"\n\n' + entries
    )
    return me, config


def hubd_env() -> dict[str, str]:
    """hubd takes its access from its config only: nothing from the test's environment."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HUBCLUSTER_MONGO")}


@contextlib.contextmanager
def running_hubd(
    cluster: StandinCluster, passwords: Path, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """A real `hubd run` on the primary's hub, logged in as hubd from its config; yields
    its hub name and config once a collector round is stored, then stops it and checks its
    log for refusals."""
    me, config = write_hub_config(cluster, passwords / "hubd", tmp_path)
    env = hubd_env()
    subprocess.run(HUBD + ["init", "--config", str(config)], check=True, env=env, timeout=60)
    log = tmp_path / "hubd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            HUBD + ["run", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        with client(cluster, "reader") as reader:
            wait_until(
                lambda: reader.cfreport.rounds.count_documents({}) > 0 or proc.poll() is not None,
                20,
                what="a collector round by hubd",
            )
        assert proc.poll() is None, log.read_text()[-2000:]
        yield me, config
    finally:
        proc.terminate()
        proc.wait(20)
    text = log.read_text()
    assert "Unauthorized" not in text and "requires authentication" not in text, text[-2000:]


def test_hubd_runs_with_its_user_from_the_config(auth_set, tmp_path):
    cluster, passwords = auth_set
    with running_hubd(cluster, passwords, tmp_path) as (me, config):
        result = hubctl(
            "status", "--json", "--mongo", cluster.uri, env=operator_env(passwords, cluster)
        )
        assert result.exit_code == 0, result.output
        assert f'"name": "{me}"' in result.stdout and '"role": "master"' in result.stdout
        # hubctl on a hub takes the hub's user from --config when the environment has none
        on_hub = hubctl(
            "status",
            "--config",
            str(config),
            env={ENV_USER: None, ENV_PASSWORD_FILE: None, ENV_TLS_CA_FILE: None},
        )
        assert on_hub.exit_code == 0, on_hub.output
        assert me in on_hub.stdout


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_password_file_others_can_read_is_refused_naming_it(tmp_path):
    passwords = write_passwords(tmp_path / "passwords")
    (passwords / "hubd").chmod(0o644)
    with StandinCluster(election_timeout=ELECTION_TIMEOUT) as cluster:
        started = time.monotonic()
        result = hubctl(*init_args(cluster), "--create-users", str(passwords), env=ca_env(cluster))
        assert time.monotonic() - started < 5
        assert cluster.model is not None and cluster.model.config is None  # not initiated
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: password file {passwords / 'hubd'} has mode 0644; it must be 0600 or stricter"
    )


def test_the_login_starts_inside_the_hello_as_drivers_expect(auth_set):
    """speculativeAuthenticate: mongod answers the client-first message in the hello."""
    cluster, _ = auth_set

    def hello(user: str) -> dict:
        start = {
            "saslStart": 1,
            "mechanism": "SCRAM-SHA-256",
            "payload": f"n,,n={user},r=clientnonce".encode(),
            "db": "admin",
            "options": {"skipEmptyExchange": True},
        }
        with client(cluster) as anonymous:
            return anonymous.admin.command("hello", speculativeAuthenticate=start)

    answer = hello("operator")["speculativeAuthenticate"]
    assert answer["done"] is False and bytes(answer["payload"]).startswith(b"r=clientnonce")
    assert b",i=15000" in bytes(answer["payload"])
    assert "speculativeAuthenticate" not in hello("nobody")


def run_hubd(config: Path) -> subprocess.CompletedProcess:
    subprocess.run(HUBD + ["init", "--config", str(config)], check=True, env=hubd_env())
    return subprocess.run(
        HUBD + ["run", "--config", str(config)],
        capture_output=True,
        text=True,
        env=hubd_env(),
        timeout=30,
    )


def test_hubd_with_a_wrong_password_says_so_in_one_line_and_exits(auth_set, tmp_path):
    cluster, _ = auth_set
    wrong = tmp_path / "hubd-password"
    wrong.touch(mode=0o600)
    wrong.write_text("not-the-password\n")
    _, config = write_hub_config(cluster, wrong, tmp_path)
    done = run_hubd(config)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"hubd: error: the database refuses hubd from {config}: Authentication failed. "
        "(is [replset] password_file the user's password?)"
    ]


def test_a_hub_config_with_a_password_file_others_can_read_is_refused_in_one_line(
    auth_set, tmp_path
):
    cluster, passwords = auth_set
    shared = tmp_path / "hubd-password"
    shared.write_text((passwords / "hubd").read_text())
    shared.chmod(0o644)
    _, config = write_hub_config(cluster, shared, tmp_path)
    done = subprocess.run(
        HUBD + ["run", "--config", str(config)],
        capture_output=True,
        text=True,
        env=hubd_env(),
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert f"password file {shared} has mode 0644; it must be 0600 or stricter" in lines[0]
