"""A running lab (three hubd processes, a stand-in set, five clients) for end-to-end tests."""

from __future__ import annotations

import pytest

from hubctl.lab.cluster import LabCluster


@pytest.fixture
def lab(tmp_path):
    cluster = LabCluster(
        tmp_path / "lab", clients=5, election_timeout=1.0, collect_interval=1.0, sync_interval=1.0
    )
    cluster.up()
    yield cluster
    cluster.down()
