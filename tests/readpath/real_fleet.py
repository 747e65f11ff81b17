"""A real fleet for the read paths: hubd processes, client-agent runs, the collector.

Every record the read-side tests look at is written by the product: three `hubd run`
processes on the stand-in set (hub state, last-seen, rounds, events), `client-agent
bootstrap`/`serve`/`run` processes running a policy whose promises are kept, repaired and
not kept, and the master's collector pulling their reports over SSH. `hubctl masterfiles
publish` publishes the policy. Nothing is written to the database by a test.
"""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from hub.mongo import connect
from hub.store import HubStore
from hubctl.lab.child_commands import HUBCTL
from hubctl.lab.cluster import LabCluster
from hubctl.lab.lab_hubs import LabHub
from tests.conftest import wait_until

LONG_PROMISE = "keeps_a_promise_whose_name_is_far_too_long_for_one_column_of_an_eighty_column_table"
NOT_KEPT_ON = "client001"
# Latest run of every client: always_true kept, flag_consumed repaired, broken_on_client001
# not kept on client001 and skipped (out of context) elsewhere, the long one kept.
READ_POLICY = f"""\
[[promise]]
name = "always_true"
check = "true"
ifelapsed = 0

# Repaired on every run: the check consumes the flag the repair leaves.
[[promise]]
name = "flag_consumed"
check = "test -f flag && rm flag"
repair = "touch flag"
ifelapsed = 0

[[promise]]
name = "broken_on_{NOT_KEPT_ON}"
check = "false"
if = "{NOT_KEPT_ON}"
ifelapsed = 0

[[promise]]
name = "{LONG_PROMISE}"
check = "true"
ifelapsed = 0
"""


def hubctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(HUBCTL + list(args), capture_output=True, text=True, timeout=60)


@dataclass
class RealFleet:
    lab: LabCluster
    release: str = ""
    exit_codes: list[int] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return self.lab.uri

    @property
    def clients(self) -> list[str]:
        return [c.name for c in self.lab.fleet]

    def master(self) -> LabHub:
        return wait_until(self.lab.master, 30, 0.1, "a master hub")

    def publish(self, policy: str, name: str, alone: bool = False) -> str:
        """`hubctl masterfiles publish` on the master hub, as an operator does.

        `alone`: the other hubs are down, so the publish cannot be durable; it is served by
        the master and says it is held by too few hubs (exit 1).
        """
        source = self.lab.directory / name
        source.mkdir(parents=True, exist_ok=True)
        (source / "promises.toml").write_text(policy)
        config = str(self.master().config)
        wait = ["--wait-timeout", "1s"] if alone else []
        out = hubctl("masterfiles", "publish", str(source), "--config", config, *wait)
        if alone:
            assert out.returncode == 1 and "fewer than the 2 needed" in out.stderr, out.stderr
        else:
            assert out.returncode == 0, out.stderr
        return out.stdout.strip().split()[-1]

    def hub_releases(self) -> dict[str, str | None]:
        """Each hub's release as hubd published its state (read from the primary)."""
        client = connect(self.uri, timeout=10)
        try:
            states = HubStore(client).db["hub_state"].find({}, {"release": 1})
            return {s["_id"]: s.get("release") for s in states}
        finally:
            client.close()

    def wait_in_sync(self, release: str) -> None:
        names = {h.name for h in self.lab.hubs}
        wait_until(
            lambda: self.hub_releases() == dict.fromkeys(names, release),
            30,
            0.2,
            f"every hub on release {release}",
        )

    def run_agents(self) -> list[int]:
        """`client-agent run` on every client, then wait until the collector stored it all."""
        self.exit_codes = asyncio.run(self.lab.agent_runs())
        wait_until(self.lab.all_collected, 30, 0.2, "the collector to store every report")
        return self.exit_codes

    def restart_hubs(self) -> None:
        for hub in self.lab.hubs:
            if hub.proc is None:
                self.lab.start_hub(hub)


def start_real_fleet(directory: Path, clients: int = 4, runs: int = 2) -> RealFleet:
    lab = LabCluster(
        directory, clients=clients, election_timeout=1.0, collect_interval=1.0, sync_interval=1.0
    )
    try:
        lab.up()
        fleet = RealFleet(lab)
        fleet.release = fleet.publish(READ_POLICY, "read-policy")
        fleet.wait_in_sync(fleet.release)
        for _ in range(runs):
            fleet.run_agents()
    except BaseException:
        lab.down()
        raise
    return fleet
