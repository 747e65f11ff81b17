"""Shared fixtures: a replica set to test against (the stand-in, or real mongods when present).

Every cluster runs as production does: access control and requireTLS, with the process's
shared credentials (ClusterCredentials.shared(): one CA, one password file per user, each
cluster's users made by its own initiate). Every test starts as the operator: hub.mongo's
access and the HUBCLUSTER_MONGO_* environment that in-process and child hubctl read. Code
that plays hubd runs inside `with access_as(cluster.access("hubd")):`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pymongo
import pytest

from hub.db_roles import ADMIN_USER
from hub.mongo import use_access
from hub.mongo_access import ENV_PASSWORD, ENV_PASSWORD_FILE, ENV_TLS_CA_FILE, ENV_USER
from hubctl.lab.mongod_cluster import MongodCluster
from hubctl.lab.standin import StandinCluster
from hubctl.lab.standin.credentials import ClusterCredentials

# Short enough to keep tests quick, long enough that pymongo's 500 ms heartbeat is not
# outpaced by elections.
ELECTION_TIMEOUT = 0.5


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


SHARED = ClusterCredentials.shared()


@pytest.fixture(scope="session", autouse=True)
def _operator_environment() -> Iterator[None]:
    """hubctl, in-process or a child, is the operator of any cluster this session runs."""
    with pytest.MonkeyPatch.context() as patch:
        for name in (ENV_USER, ENV_PASSWORD, ENV_PASSWORD_FILE, ENV_TLS_CA_FILE):
            patch.delenv(name, raising=False)
        for name, value in SHARED.env("operator").items():
            patch.setenv(name, value)
        yield


@pytest.fixture(autouse=True)
def _operator_access() -> Iterator[None]:
    """Each test starts as the operator, whatever the one before left (an in-process hubctl
    sets the process's access from its environment)."""
    use_access(SHARED.access("operator"))
    yield
    use_access(SHARED.access("operator"))


def as_operator(cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this process and the hubctl it starts the cluster's operator (until the test's
    end: monkeypatch restores the environment, the fixture the access)."""
    for name in (ENV_USER, ENV_PASSWORD, ENV_PASSWORD_FILE, ENV_TLS_CA_FILE):
        monkeypatch.delenv(name, raising=False)
    for name, value in cluster.env("operator").items():
        monkeypatch.setenv(name, value)
    use_access(cluster.access("operator"))


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandinCluster]:
    """Three uninitiated stand-in members (no user yet: initiate() or init-replset
    --create-users standin.passwords_dir makes them)."""
    with StandinCluster(election_timeout=ELECTION_TIMEOUT) as cluster:
        as_operator(cluster, monkeypatch)
        yield cluster
    use_access(None)


def _initiate(cluster) -> None:
    cluster.initiate(election_timeout_ms=int(ELECTION_TIMEOUT * 1000))


@pytest.fixture(
    params=["standin", pytest.param("mongod", marks=pytest.mark.realmongo)],
)
def replset(request, monkeypatch):
    """An initiated three-member set: the stand-in, and real mongods when `mongod` is on PATH."""
    if request.param == "mongod":
        if shutil.which("mongod") is None:
            pytest.skip("mongod is not on PATH; the real-mongod tier needs MongoDB installed")
        cluster = MongodCluster(request.getfixturevalue("tmp_path")).start()
    else:
        cluster = StandinCluster(election_timeout=ELECTION_TIMEOUT).start()
    try:
        _initiate(cluster)
        as_operator(cluster, monkeypatch)
        yield cluster
    finally:
        use_access(None)
        cluster.stop()


@pytest.fixture
def standin_set(monkeypatch) -> Iterator[StandinCluster]:
    """An initiated stand-in set, for tests that isolate members (real mongods cannot here)."""
    with StandinCluster(election_timeout=ELECTION_TIMEOUT) as cluster:
        _initiate(cluster)
        as_operator(cluster, monkeypatch)
        yield cluster
    use_access(None)


def hubd_access(cluster) -> dict[str, str]:
    """A hub config's [replset] access keys (as a parsed table) for the hubd user."""
    return {
        "username": "hubd",
        "password_file": str(cluster.password_file("hubd")),
        "tls_ca_file": str(cluster.ca_file),
    }


DBA_USER, DBA_PASSWORD = "dba", "dba-password"


def make_dba(cluster, uri: str | None = None) -> None:
    """A database administrator (mongod's root role), made by the user administrator: for
    stand-in features hubcluster's own users may not use (drop, serverStatus, other
    databases), and for the real-client tier."""
    options = cluster.credentials.client_kwargs(ADMIN_USER.name)
    with pymongo.MongoClient(uri or cluster.uri, serverSelectionTimeoutMS=10_000, **options) as c:
        if not c.admin.command("usersInfo", DBA_USER)["users"]:
            c.admin.command("createUser", DBA_USER, pwd=DBA_PASSWORD, roles=["root"])


def dba_client(cluster, member: str | None = None, **kwargs) -> pymongo.MongoClient:
    """The administrator's client of the set (or straight to `member`), over TLS."""
    make_dba(cluster)
    tls = cluster.credentials.client_kwargs(None)
    login = dict(username=DBA_USER, password=DBA_PASSWORD, authSource="admin")
    if member is not None:
        kwargs["directConnection"] = True
    uri = f"mongodb://{member}/" if member else cluster.uri
    options = {"serverSelectionTimeoutMS": 10_000, **tls, **login, **kwargs}
    return pymongo.MongoClient(uri, **options)


@pytest.fixture
def set_client(replset) -> Iterator[pymongo.MongoClient]:
    """The operator's client of the set."""
    client = replset.client("operator", heartbeatFrequencyMS=500)
    yield client
    client.close()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the staged Ansible deployment now, in the background, when a test reads it."""
    if any("deployed" in getattr(item, "fixturenames", ()) for item in session.items):
        from tests.deploy import early
        from tests.deploy.playbook import PLAYBOOK

        if PLAYBOOK is not None:
            early.start()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from tests.deploy import early

    # Interrupted (Ctrl-C): do not hold the terminal for the rest of a playbook run.
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    early.finish(timeout=0 if interrupted else 1200)
