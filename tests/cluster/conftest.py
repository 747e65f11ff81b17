"""Fixtures: a hub store on the stand-in set, a fleet of clients, a running lab."""

from __future__ import annotations

import pytest

from hub.mongo import connect
from hub.store import HubStore
from hubctl.lab.cluster import LabCluster
from tests.cluster.fleet import Fleet


@pytest.fixture
def store(standin_set):
    client = connect(standin_set.uri, timeout=10)
    hub_store = HubStore(client)
    hub_store.ensure_indexes()
    yield hub_store
    client.close()


@pytest.fixture
def fleet(tmp_path):
    return Fleet(tmp_path / "clients", tmp_path / "hub")


@pytest.fixture
def lab(tmp_path):
    """Three hubd processes, a stand-in set, five clients, for end-to-end tests."""
    cluster = LabCluster(
        tmp_path / "lab",
        clients=5,
        election_timeout=1.0,
        collect_interval=1.0,
        sync_interval=1.0,
        state_interval=1.0,
    )
    cluster.up()
    yield cluster
    cluster.down()
