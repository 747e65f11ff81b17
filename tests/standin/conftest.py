"""The real-client tier: mongosh and the Node.js driver against the stand-in (and mongod)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from hubctl.lab.mongod_cluster import MongodCluster
from hubctl.lab.standin import StandinCluster
from tests.conftest import DBA_PASSWORD, DBA_USER, make_dba
from tests.standin.node_clients import ClientsUnavailable, NodeClients, install

# The Node driver's own election test in issue 13 used 2 s; a shorter one keeps tests fast
# while leaving the driver's monitors time to see each step.
ELECTION_TIMEOUT = 1.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/standin/" in item.nodeid:
            item.add_marker(pytest.mark.realclients)


@pytest.fixture(scope="session")
def clients() -> NodeClients:
    try:
        return install()
    except ClientsUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=["standin", pytest.param("mongod", marks=pytest.mark.realmongo)])
def bare_set(request) -> Iterator:
    """Three members not yet initiated: the stand-in, and real mongods when on PATH."""
    if request.param == "mongod":
        if shutil.which("mongod") is None:
            pytest.skip("mongod is not on PATH; the real-mongod tier needs MongoDB installed")
        cluster = MongodCluster(request.getfixturevalue("tmp_path")).start()
    else:
        cluster = StandinCluster(election_timeout=ELECTION_TIMEOUT).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def live_set(bare_set):
    """An initiated set with a primary, initiated as hubctl init-replset --create-users does,
    and the administrator the real clients log in as (tests.conftest.make_dba)."""
    from hub.replset import ReplicaSet

    bare_set.initiate(election_timeout_ms=int(ELECTION_TIMEOUT * 1000), hub_names={})
    rs = ReplicaSet(bare_set.uri)
    try:
        rs.wait_for_primary(30)
    finally:
        rs.close()
    make_dba(bare_set)
    return bare_set


def login_uri(cluster, member: str | None = None, login: bool = True) -> str:
    """A URI for mongosh or the Node driver: the administrator (SCRAM-SHA-256), TLS checked
    against the cluster's CA; `member`: straight to it; login=False: no user (the localhost
    exception)."""
    where = (
        f"{member}/?directConnection=true"
        if member
        else (f"{','.join(cluster.hosts)}/?replicaSet={cluster.set_name}")
    )
    user = f"{DBA_USER}:{quote(DBA_PASSWORD)}@" if login else ""
    return f"mongodb://{user}{where}&{tls_options(cluster)}"


def tls_options(cluster) -> str:
    # mongosh selects a server within 2 s by default: short for TLS and SCRAM on a busy box.
    ca = quote(str(cluster.ca_file))
    return f"authSource=admin&tls=true&tlsCAFile={ca}&serverSelectionTimeoutMS=20000"
