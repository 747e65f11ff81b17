"""Issue 10 s6: the lab dashboard fits 80x24 with the export and failover lines in view, and
a bigger terminal shows more of the fleet. Drawn from a real lab, as `hubctl lab up` does."""

from __future__ import annotations

import io
import re
import subprocess

import pytest
from rich.cells import cell_len
from rich.console import Console

from hubctl.lab.cluster import LabCluster
from hubctl.lab.dashboard import Timeline, render, snapshot
from hubctl.lab.dashboard_layout import shell_export
from tests.conftest import wait_until

CLIENTS = 12


@pytest.fixture(scope="module")
def crowded_lab(tmp_path_factory):
    lab = LabCluster(
        tmp_path_factory.mktemp("dashboard") / "lab",
        clients=CLIENTS,
        election_timeout=1.0,
        collect_interval=1.0,
        sync_interval=1.0,
        state_interval=1.0,
    )
    lab.up()
    yield lab
    lab.down()


def frame(snap: dict, width: int, height: int) -> list[str]:
    screen = Console(width=width, height=height, record=True, file=io.StringIO())
    screen.print(render(snap))
    return screen.export_text().splitlines()


def exported(lines: list[str]) -> str:
    """What a shell sets HUBCTL_MONGO_URI to from the export lines as shown."""
    start = next(i for i, line in enumerate(lines) if line.startswith("export HUBCTL_MONGO_URI="))
    end = next(i for i in range(start, len(lines)) if not lines[i].endswith("\\"))
    script = "\n".join(lines[start : end + 1]) + '\nprintf %s "$HUBCTL_MONGO_URI"\n'
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=10, check=True
    ).stdout


def clients_shown(lines: list[str]) -> int:
    return sum(len(re.findall(r"\S+ -> hub\d", line)) for line in lines)


def test_the_dashboard_fits_80x24_and_uses_a_bigger_terminal(crowded_lab):
    lab = crowded_lab
    timeline = Timeline()
    snap = snapshot(lab, timeline)
    small = frame(snap, 80, 24)
    assert len(small) <= 24, "\n".join(small)
    assert max(cell_len(line) for line in small) <= 80, "\n".join(small)
    assert exported(small) == lab.uri
    assert "last failover  none yet" in small
    big = frame(snap, 120, 40)
    assert len(big) <= 40 and max(cell_len(line) for line in big) <= 120
    assert exported(big) == lab.uri
    # wider: more columns (each hub's service, release, keys and age)
    assert any("Release" in line and "Service" in line for line in big), "\n".join(big)
    assert not any("Release" in line for line in small)
    # taller: more clients (a short one shows the rest as a count)
    short = frame(snap, 80, 16)
    assert len(short) <= 16 and exported(short) == lab.uri
    assert "last failover  none yet" in short
    assert clients_shown(short) < clients_shown(small) == clients_shown(big) == CLIENTS
    # after a failover (the dead hub now adds its own problem lines) the line still shows
    first = lab.master()
    lab.kill(first.name)
    wait_until(lambda: snapshot(lab, timeline) and timeline.failovers, 30, 0.2, "a failover")
    small = frame(snapshot(lab, timeline), 80, 24)
    assert len(small) <= 24 and max(cell_len(line) for line in small) <= 80, "\n".join(small)
    assert exported(small) == lab.uri
    failover = rf"last failover  {first.name} -> hub\d \(\d+\.\ds after the kill\)"
    assert any(re.fullmatch(failover, line.rstrip()) for line in small), "\n".join(small)


@pytest.mark.parametrize("width", [28, 29, 33, 40, 47, 60, 80, 100])
def test_a_long_export_is_cut_into_lines_the_shell_joins(width):
    uri = "mongodb://127.0.0.1:40001,127.0.0.1:40002,127.0.0.1:40003/?replicaSet=CFEngineNova"
    lines = shell_export("HUBCTL_MONGO_URI", uri, width)
    assert all(len(line) <= width for line in lines), lines
    assert (len(lines) == 1) == (width >= len(f"export HUBCTL_MONGO_URI='{uri}'"))
    assert exported(lines) == uri
