"""Shared fixtures: a replica set to test against (the stand-in, or real mongods when present)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pymongo
import pytest

from hub.replset import ReplicaSet
from hubctl.lab.mongod_cluster import MongodCluster
from hubctl.lab.standin import StandinCluster

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


@pytest.fixture
def standin() -> Iterator[StandinCluster]:
    """Three uninitiated stand-in members."""
    with StandinCluster(election_timeout=ELECTION_TIMEOUT) as cluster:
        yield cluster


def _initiate(cluster) -> None:
    rs = ReplicaSet(cluster.uri)
    try:
        rs.initiate(
            cluster.hosts,
            cluster.set_name,
            election_timeout_ms=int(ELECTION_TIMEOUT * 1000),
            hub_names={host: f"hub{i}" for i, host in enumerate(cluster.hosts, 1)},
        )
    finally:
        rs.close()


@pytest.fixture(
    params=["standin", pytest.param("mongod", marks=pytest.mark.realmongo)],
)
def replset(request):
    """An initiated three-member set: the stand-in, and real mongods when `mongod` is on PATH."""
    if request.param == "mongod":
        if shutil.which("mongod") is None:
            pytest.skip("mongod is not on PATH; the real-mongod tier needs MongoDB installed")
        cluster = MongodCluster(request.getfixturevalue("tmp_path")).start()
    else:
        cluster = StandinCluster(election_timeout=ELECTION_TIMEOUT).start()
    try:
        _initiate(cluster)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def standin_set() -> Iterator[StandinCluster]:
    """An initiated stand-in set, for tests that isolate members (real mongods cannot here)."""
    with StandinCluster(election_timeout=ELECTION_TIMEOUT) as cluster:
        _initiate(cluster)
        yield cluster


@pytest.fixture
def set_client(replset) -> Iterator[pymongo.MongoClient]:
    client = pymongo.MongoClient(
        replset.uri, heartbeatFrequencyMS=500, serverSelectionTimeoutMS=10000
    )
    yield client
    client.close()
