"""Issue 14, high availability: the portal through a real HAProxy (Debian's) on loopback,
configured by the haproxy role's template, while the master hub is killed.

Speed is measured in benchmarks/portal_changeover.py; here only what must hold: reads
answer through HAProxy after the kill, and its master port moves to the new master.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import httpx
import pytest
from rich.console import Console

from hubctl.lab.cluster import LabCluster
from hubctl.lab.dashboard import Timeline, render, snapshot
from tests.conftest import wait_until
from tests.debian_tools import debian_tool

# Election (1 s in this lab), the master watch, HAProxy's rise, and room for a slow CI.
MOVES_WITHIN = 30.0


def get(url: str, token: str | None = None) -> httpx.Response | None:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(timeout=3.0, headers=headers) as client:
            return client.get(url)
    except httpx.HTTPError:
        return None


def master_via(lab: LabCluster) -> str | None:
    """The hub that answers /master with 200 through HAProxy's master port."""
    assert lab.haproxy is not None
    got = get(f"{lab.haproxy.master_url}master")
    return got.json()["hub"] if got is not None and got.status_code == 200 else None


def master_steadily(lab: LabCluster, times: int = 6) -> str | None:
    """The hub `times` consecutive /master requests through HAProxy all reached; None if
    any answered otherwise (a backend not steered by /master would spread them)."""
    seen = {master_via(lab) for _ in range(times)}
    return seen.pop() if len(seen) == 1 else None


def read_via(lab: LabCluster) -> dict | None:
    """The overview's JSON through HAProxy's read port, with the lab's viewer token."""
    assert lab.haproxy is not None
    got = get(f"{lab.haproxy.read_url}api/overview", lab.portal.token)
    return got.json() if got is not None and got.status_code == 200 else None


@pytest.fixture(scope="module")
def haproxy_tool() -> str:
    return debian_tool("haproxy", "haproxy", "HAProxy tier")


@pytest.fixture(scope="module")
def balanced_lab(haproxy_tool: str, portal_lab: LabCluster) -> Iterator[LabCluster]:
    """The module's lab (tests/portal/conftest.py) with HAProxy in front; skipped before the
    lab starts when there is no haproxy to be had."""
    portal_lab.start_haproxy()
    try:
        yield portal_lab
    finally:
        assert portal_lab.haproxy is not None
        portal_lab.haproxy.stop()
        portal_lab.haproxy = None


def test_haproxy_runs_the_roles_config_and_the_lab_prints_its_urls(balanced_lab):
    haproxy = balanced_lab.haproxy
    assert haproxy is not None
    config = haproxy.config_file.read_text()
    for hub in balanced_lab.hubs:
        assert f"server {hub.name} 127.0.0.1:{hub.portal_port} check" in config
    lines = balanced_lab.portal_lines()
    assert f"portal via haproxy (any hub passing /read): {haproxy.read_url}" in lines
    assert f"portal via haproxy (the master, /master): {haproxy.master_url}" in lines
    assert balanced_lab.status()["haproxy"] == {
        "read": haproxy.read_url,
        "master": haproxy.master_url,
    }
    screen = Console(width=100, height=40, record=True, file=io.StringIO())
    screen.print(render(snapshot(balanced_lab, Timeline())))
    shown = screen.export_text()
    assert f"portal via haproxy  {haproxy.read_url}  master {haproxy.master_url}" in shown


def test_reads_answer_and_master_moves_through_haproxy_when_the_master_dies(balanced_lab):
    lab = balanced_lab
    old = wait_until(lab.master, 30, 0.1, "a master")
    wait_until(lambda: master_steadily(lab) == old.name, 30, 0.2, "haproxy's master on it")
    before = wait_until(lambda: read_via(lab), 15, 0.2, "a read through haproxy")
    assert before["master"] == old.name
    lab.kill(old.name)
    killed = time.monotonic()
    try:
        # The killed hub's own URL is gone; the balanced one still reads.
        assert get(f"{old.portal_url}health") is None
        after = wait_until(lambda: read_via(lab), MOVES_WITHIN, 0.1, "a read after the kill")
        assert after["hubs"] and after["clients"] == before["clients"]
        moved = wait_until(
            lambda: (m := master_steadily(lab)) not in (None, old.name) and m,
            MOVES_WITHIN,
            0.1,
            "haproxy's master port on another hub",
        )
        print(f"/master via haproxy {old.name} -> {moved} in {time.monotonic() - killed:.1f}s")
        primary = lab.master()
        assert primary is not None and moved == primary.name
        # The read side agrees once the hub states caught up.
        wait_until(
            lambda: (r := read_via(lab)) is not None and r["master"] == moved,
            MOVES_WITHIN,
            0.2,
            "the overview through haproxy naming the new master",
        )
    finally:
        lab.revive(old.name)
