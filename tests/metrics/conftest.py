"""A real fleet whose hubs serve /metrics, scraped over HTTP; promtool when it can be had."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hubctl.lab.lab_hubs import LabHub
from tests.conftest import wait_until
from tests.debian_tools import debian_tool
from tests.readpath.real_fleet import RealFleet, hubctl, start_real_fleet

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="package")
def metrics_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealFleet]:
    """Three hubd with portals, a published policy, one real agent run on three clients."""
    fleet = start_real_fleet(tmp_path_factory.mktemp("metrics-fleet"), clients=3, runs=1)
    try:
        # The first scrape reads the fleet figures (cached a minute): wait until hubd wrote
        # every client's last contact, as `hubctl status` counts it, before any scrape.
        wait_until(lambda: status(fleet)["clients"]["fresh"] == 3, 30, 0.2, "contacts")
        yield fleet
    finally:
        fleet.lab.down()


def status(fleet: RealFleet) -> dict[str, Any]:
    out = hubctl("status", "--mongo", fleet.uri, "--json")
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout)


def scrape_text(hub: LabHub) -> str | None:
    """GET a hub's /metrics over real HTTP; None when nothing answers."""
    try:
        got = httpx.get(f"{hub.portal_url}metrics", timeout=5.0)
    except httpx.TransportError:
        return None
    return got.text if got.status_code == 200 else None


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(hub: LabHub) -> Samples:
    text = scrape_text(hub)
    assert text is not None, f"{hub.name} served no /metrics"
    return parse(text)


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"no sample {name}{labels}"
    return samples[key]


@pytest.fixture(scope="session")
def promtool() -> Path:
    """Debian's promtool (package prometheus), installed when it can be, else skipped."""
    return Path(debian_tool("promtool", "prometheus", "promtool tier"))
