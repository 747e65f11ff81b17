"""Stand-in members serve connections concurrently: a waiting request blocks no one else.

Clients log in as the operator over TLS, as on every default stand-in."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pymongo
from pymongo import WriteConcern
from pymongo.errors import PyMongoError

from hub.mongo import access_as
from hub.replset import ReplicaSet
from hubctl.lab.standin import StandinCluster
from hubctl.lab.standin.control import control_request
from hubctl.lab.standin.credentials import ClusterCredentials
from tests.conftest import wait_until

HUBCTL = [sys.executable, "-c", "from hubctl.app import main; main()"]
# Long enough that an isolated primary keeps waiting for the whole test instead of stepping
# down, so the write under test is still waiting when the hello is sent.
SLOW_ELECTIONS_MS = 30_000


def _initiate_slow(creds: ClusterCredentials, uri: str, hosts: list[str]) -> str:
    creds.initiate(uri, hosts, "CFEngineNova", election_timeout_ms=SLOW_ELECTIONS_MS)
    with access_as(creds.access("operator")):
        rs = ReplicaSet(uri)
        try:
            return rs.wait_for_primary(10)
        finally:
            rs.close()


def _direct(creds: ClusterCredentials, host: str) -> pymongo.MongoClient:
    return creds.client("", "operator", host, serverSelectionTimeoutMS=3000, socketTimeoutMS=3000)


def _waiting_majority_write(
    creds: ClusterCredentials, host: str, outcome: dict
) -> threading.Thread:
    """A majority write on `host` in a thread; `outcome` gets its result when it ends."""

    def write() -> None:
        with _direct(creds, host) as client:
            coll = client.get_database("cfreport", write_concern=WriteConcern("majority")).c
            try:
                coll.insert_one({"waits": True})
                outcome["result"] = "acknowledged"
            except PyMongoError as exc:
                outcome["result"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_hello_answered_while_a_majority_write_waits_on_the_same_member():
    with StandinCluster(election_timeout=0.5) as cluster:
        primary = _initiate_slow(cluster.credentials, cluster.uri, cluster.hosts)
        cluster.isolate(primary)
        outcome: dict = {}
        writer = _waiting_majority_write(cluster.credentials, primary, outcome)
        wait_until(
            lambda: cluster.model.member(primary).oplog[-1].entries[0][3].get("waits"),
            what="the write applied on the primary",
        )
        with _direct(cluster.credentials, primary) as client:
            hello = client.admin.command("hello")
            count = client.cfreport.c.count_documents({"waits": True})
        # The write is still waiting (no secondary can acknowledge it) and yet this
        # member answered a fresh connection's hello and a read.
        assert writer.is_alive() and "result" not in outcome
        assert hello["isWritablePrimary"] is True and hello["me"] == primary
        assert count == 1
        cluster.heal(primary)
        writer.join(timeout=10)
        assert outcome["result"] == "acknowledged"


def test_replset_stepdown_waiting_for_a_secondary_blocks_no_one():
    with StandinCluster(election_timeout=0.5) as cluster:
        primary = _initiate_slow(cluster.credentials, cluster.uri, cluster.hosts)
        cluster.isolate(primary)
        answer: dict = {}

        def step_down() -> None:
            with _direct(cluster.credentials, primary) as client:
                try:
                    client.admin.command("replSetStepDown", 30, secondaryCatchUpPeriodSecs=2)
                except PyMongoError as exc:
                    answer["code"] = getattr(exc, "code", None)

        thread = threading.Thread(target=step_down, daemon=True)
        thread.start()
        time.sleep(0.3)
        with _direct(cluster.credentials, primary) as client:
            assert client.admin.command("ping")["ok"] == 1
            assert client.admin.command("replSetGetStatus")["myState"] == 1
        assert thread.is_alive()
        thread.join(timeout=10)
        assert answer["code"] == 262  # ExceededTimeLimit: no caught-up secondary in reach


def test_awaitable_hello_answers_at_once_on_a_topology_change():
    with StandinCluster(election_timeout=0.5) as cluster:
        primary = _initiate_slow(cluster.credentials, cluster.uri, cluster.hosts)
        secondary = next(h for h in cluster.hosts if h != primary)
        with _direct(cluster.credentials, secondary) as client:
            first = client.admin.command("hello")
            version = first["topologyVersion"]
            started = time.monotonic()
            quiet = client.admin.command("hello", topologyVersion=version, maxAwaitTimeMS=300)
            waited = time.monotonic() - started
            assert waited >= 0.25 and quiet["topologyVersion"] == version
            threading.Timer(0.3, cluster.kill, args=(primary,)).start()
            changed = client.admin.command("hello", topologyVersion=version, maxAwaitTimeMS=20_000)
        assert changed["topologyVersion"]["counter"] > version["counter"]
        assert changed["topologyVersion"]["processId"] == version["processId"]
        assert changed.get("primary") != primary


def test_lab_mongo_stops_on_sigterm_while_a_write_waits():
    proc = subprocess.Popen(
        HUBCTL + ["lab", "mongo", "--election-timeout", "30s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        uri = proc.stdout.readline().strip()
        control = proc.stdout.readline().strip()
        # line 3: the operator's env file, beside the password files and the CA
        creds = ClusterCredentials(Path(proc.stdout.readline().strip()).parent)
        hosts = uri.split("//", 1)[1].split("/", 1)[0].split(",")
        primary = _initiate_slow(creds, uri, hosts)
        control_request(control, "isolate", primary)
        outcome: dict = {}
        writer = _waiting_majority_write(creds, primary, outcome)
        time.sleep(0.5)
        assert writer.is_alive()
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
        stopped_after = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and "stand-in stopped" in err
    # "Within a second" plus interpreter teardown on a loaded 2-core machine; the bug this
    # guards against is a process that never stops.
    assert stopped_after < 3.0, f"SIGTERM took {stopped_after:.2f}s"
    writer.join(timeout=5)
    assert outcome["result"] != "acknowledged"


def test_concurrent_majority_writers_all_acknowledged(standin_set):
    clients = 10
    errors: list[str] = []

    def writer(n: int) -> None:
        with standin_set.client(serverSelectionTimeoutMS=5000) as client:
            coll = client.get_database("cfreport", write_concern=WriteConcern("majority")).c
            try:
                coll.insert_many([{"writer": n, "i": i} for i in range(20)], ordered=False)
            except PyMongoError as exc:
                errors.append(str(exc))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    with standin_set.client() as client:
        assert client.cfreport.c.count_documents({}) == clients * 20
