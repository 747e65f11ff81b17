"""TLS to the default stand-in (requireTLS with its private CA): hubctl checks mongod's
certificate against the CA it is given, and a client without TLS or without the CA fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest
from pymongo.errors import ServerSelectionTimeoutError
from typer.testing import CliRunner

from hub.mongo import use_access
from hub.mongo_access import ENV_PASSWORD_FILE, ENV_TLS_CA_FILE, ENV_USER
from hubctl.app import app
from hubctl.lab.standin import StandinCluster
from hubctl.lab.standin.tls import TlsFiles, make_private_ca
from tests.conftest import ELECTION_TIMEOUT
from tests.replset.test_standin_auth import init_args, write_passwords

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_leftover_access() -> Iterator[None]:
    yield
    use_access(None)


@pytest.fixture
def tls_set(tmp_path: Path) -> Iterator[tuple[StandinCluster, TlsFiles, Path]]:
    passwords = write_passwords(tmp_path / "passwords")
    with StandinCluster(election_timeout=ELECTION_TIMEOUT) as cluster:
        files = cluster.credentials.tls_files
        assert files is not None
        result = runner.invoke(
            app,
            [*init_args(cluster), "--create-users", str(passwords)],
            env={ENV_TLS_CA_FILE: str(files.ca_file), ENV_USER: None, ENV_PASSWORD_FILE: None},
        )
        assert result.exit_code == 0, result.output
        yield cluster, files, passwords


def operator(cluster: StandinCluster, passwords: Path, **tls) -> pymongo.MongoClient:
    return pymongo.MongoClient(
        cluster.uri,
        username="operator",
        password=(passwords / "operator").read_text().strip(),
        authSource="admin",
        authMechanism="SCRAM-SHA-256",
        serverSelectionTimeoutMS=1500,
        **tls,
    )


def test_clients_must_speak_tls_and_trust_the_private_ca(tls_set):
    cluster, files, passwords = tls_set
    with operator(cluster, passwords, tls=True, tlsCAFile=str(files.ca_file)) as good:
        assert good.admin.command("replSetGetStatus")["set"] == cluster.set_name
    with operator(cluster, passwords) as plain, pytest.raises(ServerSelectionTimeoutError):
        plain.admin.command("ping")
    with (
        operator(cluster, passwords, tls=True) as untrusting,
        pytest.raises(ServerSelectionTimeoutError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        untrusting.admin.command("ping")


def test_hubctl_checks_the_certificate_with_the_ca_it_is_given(tls_set):
    cluster, files, passwords = tls_set
    env = {ENV_USER: "operator", ENV_PASSWORD_FILE: str(passwords / "operator")}
    result = runner.invoke(
        app,
        ["status", "--json", "--mongo", cluster.uri],
        env={**env, ENV_TLS_CA_FILE: str(files.ca_file)},
    )
    assert result.exit_code == 0, result.output
    assert '"primary": "127.0.0.1:' in result.stdout
    other_ca = make_private_ca(files.ca_file.parent.parent / "other")
    refused = runner.invoke(
        app,
        ["status", "--mongo", cluster.uri, "--timeout", "2s"],
        env={**env, ENV_TLS_CA_FILE: str(other_ca.ca_file)},
    )
    assert refused.exit_code == 3, refused.output
    assert len(refused.stderr.strip().splitlines()) == 1
