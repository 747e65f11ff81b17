"""`hubctl lab scenario failover`: a scripted story with a check and a timing at every step."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hubctl.lab.child_commands import HUBCTL
from hubctl.lab.cluster import LabCluster


class Step:
    def __init__(self) -> None:
        self.rows: list[tuple[str, bool, float]] = []
        self._t0 = time.monotonic()

    def check(self, what: str, ok: bool) -> bool:
        self.rows.append((what, ok, time.monotonic() - self._t0))
        return ok

    def wait(self, what: str, predicate: Callable[[], object], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return self.check(what, True)
            time.sleep(0.1)
        return self.check(what + f" (gave up after {timeout:g}s)", False)


def failover(clients: int = 6, directory: Path | None = None) -> list[tuple[str, bool, float]]:
    """Collect, kill the master, wait for the new one, check re-pointing and every report.

    A lab directory of its own is removed when every step held and kept (named in the last
    row) when one failed, for its hub logs.
    """
    if directory is not None:
        return _failover(clients, directory)
    where = Path(tempfile.mkdtemp(prefix="hubcluster-scenario-"))
    rows = _failover(clients, where)
    if rows and all(ok for _, ok, _ in rows):
        shutil.rmtree(where, ignore_errors=True)
    else:
        rows.append((f"hub logs kept in {where}", False, rows[-1][2] if rows else 0.0))
    return rows


def _failover(clients: int, where: Path) -> list[tuple[str, bool, float]]:
    lab = LabCluster(where, clients, election_timeout=2.0, collect_interval=1.0, sync_interval=1.0)
    step = Step()
    try:
        lab.up()
        first = lab.master()
        step.check(
            f"lab up: {clients} clients bootstrapped to {first.name if first else '?'}",
            first is not None,
        )
        if first is None:
            return step.rows  # nothing to fail over from
        step.check("agent run on every client", asyncio.run(lab.agent_runs()) == [0] * clients)
        step.wait("every report collected once", lab.all_collected, 30)
        killed_at = time.monotonic()
        lab.kill(first.name)
        step.wait("a new master elected", lambda: lab.master() not in (None, first), 30)
        second = lab.master()
        step.check(
            f"new master is {second.name if second else 'none'} "
            f"({time.monotonic() - killed_at:.2f}s after the kill)",
            second is not None,
        )
        if second is None:
            return step.rows  # nothing to check the clients against
        asyncio.run(lab.agent_runs())
        servers = set(lab.policy_servers().values())
        step.check(f"every client re-pointed to {second.name}", servers == {second.service})
        step.wait("no report lost or duplicated", lab.all_collected, 30)
        became = f"{second.name} became master"
        step.wait("history tells the failover", lambda: _history_has(lab, became), 15)
    except Exception as exc:  # noqa: BLE001 - the scenario reports, it does not crash
        step.check(f"scenario stopped: {exc}", False)
    finally:
        lab.down()
    return step.rows


def _history_has(lab: LabCluster, text: str) -> bool:
    # Hubs buffer events and flush them every few seconds, so the story arrives shortly after.
    out = subprocess.run(
        HUBCTL + ["history", "--json", "--mongo", lab.uri],
        capture_output=True,
        text=True,
        timeout=60,
        env=lab.child_env("operator"),
    )
    return text in out.stdout
