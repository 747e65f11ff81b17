"""Fixtures: fleets whose every record was written by real hubd, client-agent and collector."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.readpath.real_fleet import RealFleet, start_real_fleet


@pytest.fixture(scope="package")
def real_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealFleet]:
    """Read-only tests share this one: nothing may change it."""
    fleet = start_real_fleet(tmp_path_factory.mktemp("real-fleet"))
    yield fleet
    fleet.lab.down()


@pytest.fixture(scope="package")
def breakable_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealFleet]:
    """For tests that kill, isolate or stop parts: each puts the fleet back before it ends."""
    fleet = start_real_fleet(tmp_path_factory.mktemp("breakable-fleet"), clients=3, runs=1)
    yield fleet
    fleet.lab.down()
