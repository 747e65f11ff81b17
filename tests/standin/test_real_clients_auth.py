"""mongosh and the Node.js driver log in to the default stand-in (access control, TLS) as to mongod:
SCRAM-SHA-256 with no mechanism configured (the stand-in refuses any other), the certificate
checked against the private CA, mongod's codes for what a user may not do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pymongo
import pytest
from typer.testing import CliRunner

from hub.mongo import use_access
from hub.mongo_access import ENV_PASSWORD_FILE, ENV_TLS_CA_FILE, ENV_USER
from hubctl.app import app
from hubctl.lab.standin import StandinCluster
from hubctl.lab.standin.tls import TlsFiles
from tests.replset.test_standin_auth import init_args, write_passwords
from tests.standin.node_clients import NodeClients

ELECTION_TIMEOUT = 1.0


@pytest.fixture
def secure_set(tmp_path: Path) -> Iterator[tuple[StandinCluster, TlsFiles]]:
    passwords = write_passwords(tmp_path / "passwords")
    cluster = StandinCluster(election_timeout=ELECTION_TIMEOUT)  # access control + TLS
    files = cluster.credentials.tls_files
    assert files is not None
    try:
        with cluster:
            result = CliRunner().invoke(
                app,
                [*init_args(cluster), "--create-users", str(passwords)],
                env={ENV_TLS_CA_FILE: str(files.ca_file), ENV_USER: None, ENV_PASSWORD_FILE: None},
            )
            assert result.exit_code == 0, result.output
            with pymongo.MongoClient(
                cluster.uri,
                username="hubd",
                password="pw-of-hubd",
                authSource="admin",
                authMechanism="SCRAM-SHA-256",
                tls=True,
                tlsCAFile=str(files.ca_file),
            ) as hubd:
                hubd.cfreport.probe.insert_one({"by": "hubd"})
            yield cluster, files
    finally:
        use_access(None)


def uri(cluster: StandinCluster, files: TlsFiles, user: str, password: str) -> str:
    hosts = ",".join(cluster.hosts)
    return (
        f"mongodb://{user}:{quote(password)}@{hosts}/?replicaSet={cluster.set_name}"
        f"&authSource=admin&tls=true&tlsCAFile={quote(str(files.ca_file))}"
    )


def test_mongosh_logs_in_over_tls_and_the_reader_may_only_read(clients: NodeClients, secure_set):
    cluster, files = secure_set
    seen = clients.shell(uri(cluster, files, "reader", "pw-of-reader"), "shell_auth.js")
    assert seen["users"] == ["reader"]
    assert seen["found"] == [{"by": "hubd"}]
    assert seen["insert"] == 13 and seen["status"] == 13


def test_node_driver_logs_in_over_tls_and_a_wrong_password_is_refused(
    clients: NodeClients, secure_set
):
    cluster, files = secure_set
    seen = clients.run_driver(
        "driver_auth.js",
        URI=uri(cluster, files, "operator", "pw-of-operator"),
        BAD_URI=uri(cluster, files, "operator", "wrong"),
    )
    assert seen["users"] == ["operator"]
    assert seen["inserted"] is True and seen["set"] == cluster.set_name
    assert seen["badPassword"] == 18
