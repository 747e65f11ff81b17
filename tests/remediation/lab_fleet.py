"""A lab whose hubs carry remediation rules, and what the tests read back from it.

Everything is the product's own: three `hubd run` processes with the rules in their config,
`client-agent serve`/`run` processes, `hubctl masterfiles publish` for each policy, and the
master's collector and remediation engine. The tests read the history (events) and the
remediation records the master wrote, and each client's own spool.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymongo

from hub.mongo import DB_NAME
from hub.remediation.ledger import REMEDIATIONS
from hubctl.lab.child_commands import CLIENT_AGENT, HUBCTL
from hubctl.lab.cluster import LabCluster
from hubctl.lab.lab_hubs import LabHub
from tests.conftest import wait_until

# The lab's collection interval (the least a hub config takes): the tests' "a round later".
ROUND = 1.0


@dataclass
class RemediationLab:
    lab: LabCluster
    notes: Path | None = None  # where the allow-listed test command writes
    # One connection for every read the tests poll (a new one per poll is a TLS and SCRAM
    # handshake each time: CPU the lab's processes need on a 2-core runner).
    _client: pymongo.MongoClient | None = field(default=None, repr=False)

    def hubctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        env = {**os.environ, **self.lab.env(), "HUBCTL_MONGO_URI": self.lab.uri, "COLUMNS": "200"}
        return subprocess.run(
            HUBCTL + list(args), capture_output=True, text=True, timeout=timeout, env=env
        )

    def master(self) -> LabHub:
        return wait_until(self.lab.master, 30, 0.1, "a master hub")

    def publish(self, policy: str, name: str) -> str:
        source = self.lab.directory / name
        source.mkdir(parents=True, exist_ok=True)
        (source / "promises.toml").write_text(policy)
        out = self.hubctl(
            "masterfiles", "publish", str(source), "--config", str(self.master().config)
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().split()[-1]

    def run_agents(self) -> list[int]:
        return asyncio.run(self.lab.agent_runs())

    def run_agent(self, client: str) -> int:
        """One `client-agent run` on `client`, as its timer would start it."""
        config = next(c.config for c in self.lab.fleet if c.name == client)
        done = subprocess.run(
            CLIENT_AGENT + ["run", "--config", str(config)], capture_output=True, timeout=120
        )
        return done.returncode

    def read(self, fn):
        """`fn(database)` over the lab's one test connection."""
        if self._client is None:
            self._client = self.lab.client()
        return fn(self._client[DB_NAME])

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def wait_collected(self, client: str, timeout: float = 30) -> None:
        """Until the master stored `client`'s newest report (the round that stored it then
        ran its remediation decisions)."""
        newest = self.lab.produced()[client]

        def stored(db) -> bool:
            host = db.hosts.find_one({"hostname": client}, {"_id": 1})
            return (
                bool(host)
                and db.reports.count_documents({"host": host["_id"], "seq": newest}, limit=1) > 0
            )

        wait_until(lambda: self.read(stored), timeout, 0.1, f"{client}'s report {newest} stored")

    def events(self, rule: str | None = None) -> list[str]:
        """The remediation history, oldest first, as `hubctl history` shows it."""
        query: dict[str, Any] = {"kind": "remediation"}
        if rule:
            query["details.rule"] = rule
        return self.read(lambda db: [e["message"] for e in db.events.find(query).sort("time", 1)])

    def records(self, rule: str) -> list[dict[str, Any]]:
        return self.read(lambda db: list(db[REMEDIATIONS].find({"rule": rule}).sort("started", 1)))

    def runs_of(self, client: str) -> int:
        """Agent runs a client made: each adds an outcome and an inventory to its spool."""
        return self.lab.produced()[client] // 2

    def wait_for_event(self, text: str, rule: str, timeout: float = 60) -> list[str]:
        return wait_until(
            lambda: [e for e in self.events(rule) if text in e],
            timeout,
            0.3,
            f"a history line with {text!r}",
        )

    def save_history(self) -> None:
        """The history as written, beside the lab's logs (for a closing note's sample)."""
        (self.lab.directory / "remediation-history.txt").write_text(
            "".join(line + "\n" for line in self.events())
        )
        timed = self.read(
            lambda db: [
                f"{e['time']:%H:%M:%S.%f} {e['message']}"
                for e in db.events.find({"kind": "remediation"}).sort("time", 1)
            ]
        )
        (self.lab.directory / "remediation-history-timed.txt").write_text(
            "".join(line + "\n" for line in timed)
        )


def start_lab(directory: Path, rules_toml: str, clients: int = 3) -> RemediationLab:
    lab = LabCluster(
        directory,
        clients=clients,
        election_timeout=1.0,
        collect_interval=ROUND,
        sync_interval=1.0,
        hub_config_extra=rules_toml,
    )
    try:
        lab.up()
    except BaseException:
        lab.down()
        raise
    return RemediationLab(lab)
