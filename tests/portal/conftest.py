"""A lab (three hubd with their portals, a stand-in set, two clients) shared per module."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from hubctl.lab.cluster import LabCluster
from hubctl.lab.lab_hubs import LabHub
from tests.conftest import wait_until
from tests.readpath.real_fleet import RealFleet, start_real_fleet


@pytest.fixture(scope="module")
def portal_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    cluster = LabCluster(
        tmp_path_factory.mktemp("portal-lab"),
        clients=2,
        election_timeout=1.0,
        collect_interval=1.0,
        sync_interval=1.0,
        state_interval=1.0,
    )
    try:
        cluster.up()
        for hub in cluster.hubs:
            wait_until(lambda h=hub: answer(h, "health") is not None, 30, 0.1, "the portals")
        yield cluster
    finally:
        cluster.down()


def answer(hub: LabHub, path: str) -> httpx.Response | None:
    """GET a hub's portal over real HTTP; None when nothing listens there."""
    try:
        return httpx.get(f"{hub.portal_url}{path}", timeout=3.0)
    except httpx.TransportError:
        return None


def status_of(hub: LabHub, path: str) -> int | None:
    got = answer(hub, path)
    return None if got is None else got.status_code


@pytest.fixture(scope="package")
def portal_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealFleet]:
    """The real writer's data (published policy, agent runs, the collector), shared by the
    login, pages and browser tests. Only the revoke tests change it (client003, revoked);
    the throttle test locks 127.0.0.2 and admin out of hub3's portal for 5 minutes."""
    fleet = start_real_fleet(tmp_path_factory.mktemp("portal-fleet"), clients=3, runs=1)
    try:
        for hub in fleet.lab.hubs:
            wait_until(lambda h=hub: answer(h, "health") is not None, 30, 0.1, "the portals")
        yield fleet
    finally:
        fleet.lab.down()


def browser(hub: LabHub, source: str = "127.0.0.1") -> httpx.Client:
    """An HTTP client with cookies, from loopback address `source` (127.0.0.0/8)."""
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=hub.portal_url, timeout=10.0, transport=transport)


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, "no CSRF field in the form"
    return found.group(1)


def log_in(client: httpx.Client, name: str, password: str) -> httpx.Response:
    form = client.get("/login")
    return client.post("/login", data={"csrf": csrf_of(form), "name": name, "password": password})
