"""mongosh 2.x and the Node.js driver against the stand-in, and against mongod when on PATH.

One mongosh or node process per test runs a script from tests/standin/js and prints what it
saw as JSON; the assertions are here. What mongod does differently from the stand-in by
design (it runs transactions) is asserted per target.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from hubctl.lab.standin import StandinCluster
from tests.conftest import DBA_PASSWORD, DBA_USER, dba_client, make_dba, wait_until
from tests.standin.conftest import login_uri, tls_options
from tests.standin.node_clients import NodeClients, last_json


def _is_standin(cluster) -> bool:
    return isinstance(cluster, StandinCluster)


def _users_once_primary(cluster) -> None:
    """What init-replset --create-users does after mongosh's rs.initiate(): the users,
    through the localhost exception, once the first member is primary; then the
    administrator the shell logs in as."""
    first = f"mongodb://{cluster.hosts[0]}/?directConnection=true"
    with cluster.client(None, member=cluster.hosts[0], serverSelectionTimeoutMS=5000) as bare:
        wait_until(lambda: bare.admin.command("hello")["isWritablePrimary"], 30, 0.1, "primary")
    cluster.credentials.create_users(first)
    make_dba(cluster, first)


def test_mongosh_initiates_and_administers_the_set(clients: NodeClients, bare_set):
    hosts = bare_set.hosts
    users = threading.Thread(target=_users_once_primary, args=(bare_set,), daemon=True)
    users.start()
    seen = clients.shell(
        login_uri(bare_set, hosts[0], login=False),
        "shell_admin.js",
        HOSTS=",".join(hosts),
        LOGIN=f"{DBA_USER}:{DBA_PASSWORD}",
        OPTIONS=tls_options(bare_set),
    )
    users.join(10)
    assert seen["initiate"] == 1 and len(seen["singleMember"]) == 1
    added = seen["added"]
    if _is_standin(bare_set):
        # rs.initiate() names the member by its address; a peer may be given as localhost.
        assert seen["singleMember"] == [hosts[0]]
        assert added == ["localhost:" + hosts[1].split(":")[1], hosts[2]]
    assert seen["add1"] == 1 and seen["add2"] == 1
    assert seen["statusNames"] == seen["singleMember"] + added
    assert seen["statusStates"] == ["PRIMARY", "SECONDARY", "SECONDARY"]
    assert seen["confHosts"] == seen["singleMember"] + added and seen["confVersion"] == 3
    assert seen["tagReconfig"] == 1 and seen["tags"] == ["hub1", "hub2", "hub3"]
    # mongod's refusals: same version, two voters at once, a host that does not answer
    assert seen["sameVersion"] == 103 and seen["removeTwoVoters"] == 103
    assert seen["unknownHost"] == 74
    assert seen["stepDownOnSecondary"] == 10107
    assert seen["freezeSecondary"] == "ok" and seen["freezePrimary"] == 95
    assert seen["unfreeze"] == "ok"
    assert seen["replicationInfo"] == sorted(f"source: {h}" for h in added)
    assert seen["stepDown"] == "ok" and seen["newPrimary"] != seen["confHosts"][0]
    assert seen["topologyVersion"] == ["counter", "processId"]
    assert seen["remove"] == 1 and seen["afterRemove"] == seen["singleMember"] + added[:1]
    assert seen["removedSays"] in (93, 94)  # a removed member has no valid config


def test_mongosh_reads_from_a_secondary(clients: NodeClients, live_set):
    before = _secondary_queries(live_set)
    seen = clients.shell(login_uri(live_set), "shell_reads.js")
    assert seen["inserted"] == 450 and seen["index"] == "i_1"
    assert seen["readPref"] == "secondary"
    assert seen["found"] == 450 and seen["ordered"] is True  # 5 batches: 1 find + 4 getMore
    assert {g["_id"]: g["n"] for g in seen["grouped"]} == {False: 225, True: 225}
    assert seen["counted"] == 225
    assert seen["collections"] == ["items"] and seen["indexes"] == ["_id_", "i_1"]
    # The reads went to the secondaries: their query counters moved.
    assert _secondary_queries(live_set) > before


def _secondary_queries(cluster) -> int:
    total = 0
    for host in cluster.hosts:
        with dba_client(cluster, host) as client:
            status = client.admin.command("serverStatus")
            if status["repl"].get("secondary"):
                total += status["opcounters"]["query"]
    return total


def test_mongosh_reads_server_and_collection_state(clients: NodeClients, live_set):
    seen = clients.shell(login_uri(live_set), "shell_server.js")
    assert seen["serverStatus"] == [
        "host",
        "version",
        "uptime",
        "connections",
        "repl",
        "opcounters",
    ]
    assert seen["replSetName"] == live_set.set_name and seen["currentConnections"] >= 1
    assert seen["create"] == 1 and seen["createAgain"] == 48  # NamespaceExists
    duplicate = seen["duplicate"]
    assert duplicate["code"] == 11000
    assert duplicate["keyPattern"] == {"k": 1} and duplicate["keyValue"] == {"k": "a"}
    assert "index: k_unique dup key" in duplicate["message"]
    assert seen["dbStats"] == {"objects": 2, "collections": 1}
    assert seen["collStats"] == {"count": 2, "nindexes": 2, "ns": "shellserver.made"}
    assert seen["dropIndex"] == 1 and seen["dropMissing"] == 27  # IndexNotFound
    assert seen["indexesLeft"] == ["_id_"]


def test_node_driver_crud_errors_and_secondary_reads(clients: NodeClients, live_set):
    seen = clients.run_driver("driver_crud.js", URI=login_uri(live_set))
    assert seen["inserted"] == 300 and seen["index"] == "host_unique"
    duplicate = seen["duplicate"]
    assert duplicate["code"] == 11000 and "index: host_unique" in duplicate["message"]
    assert duplicate["keyPattern"] == {"host": 1} and duplicate["keyValue"] == {"host": "h7"}
    assert seen["found"] == 300 and seen["aggregated"] == 100 and seen["counted"] == 50
    assert seen["collections"] == ["items"] and seen["indexes"] == ["_id_", "host_unique"]
    assert seen["unacknowledgedApplied"] == 1  # w:0 is applied, only not answered
    assert seen["w5"]["code"] == 100 and seen["w5"]["codeName"] == "UnsatisfiableWriteConcern"
    if _is_standin(live_set):
        # Refused, clearly, and nothing of it applied.
        assert seen["transaction"]["code"] == 115
        assert "does not support multi-document transactions" in seen["transaction"]["message"]
        assert seen["transactionDocs"] == 0
    else:
        assert seen["transaction"] == "committed" and seen["transactionDocs"] == 1


def run_failover(clients: NodeClients, cluster, tmp_path: Path, action, idle: bool = False) -> dict:
    """Run driver_failover.js, break its primary by `action` (a cluster method's name, or a
    function of the primary's address), and return what it saw."""
    signal_file = tmp_path / "broken-at"
    proc = clients.driver(
        "driver_failover.js",
        URI=login_uri(cluster),
        SIGNAL_FILE=str(signal_file),
        IDLE="1" if idle else "0",
    )
    try:
        ready = proc.stdout.readline()
        assert ready.startswith("READY "), ready + proc.stderr.read()
        primary = ready.split()[1]
        broke_at = time.time()
        (getattr(cluster, action) if isinstance(action, str) else action)(primary)
        # Written whole, then renamed into place: the script never reads a half-written time.
        partial = tmp_path / "broken-at.partial"
        partial.write_text(str(int(broke_at * 1000)))
        partial.replace(signal_file)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    seen = last_json(out, err, proc.returncode)
    assert seen["primaryBefore"] == primary
    return seen


def _stored_seqs(cluster) -> list[int]:
    with dba_client(cluster, serverSelectionTimeoutMS=20000) as client:
        return sorted(d["seq"] for d in client.failover.writes.find({}, {"seq": 1}))


def test_node_driver_fails_over_with_retryable_writes(clients: NodeClients, live_set, tmp_path):
    seen = run_failover(clients, live_set, tmp_path, "kill")
    assert seen["errors"] == []
    assert seen["primaryAfter"] not in (None, seen["primaryBefore"])
    # Every acknowledged write is stored, once.
    assert _stored_seqs(live_set) == sorted(seen["acked"])
    # Without an awaitable hello the driver polls every 10 s; the stand-in elects in ~1 s.
    # The figure itself goes to benchmarks/RESULTS.md (benchmarks/standin_real_clients.py).
    assert seen["firstWriteAfterBreakMs"] < 8000


def test_idle_node_driver_sees_the_new_primary_from_its_monitors(
    clients: NodeClients, live_set, tmp_path
):
    # No failing operation tells this client; only its monitors can. Polling hello every
    # 10 s took 9.8-10 s here (issue 13); the awaitable hello answers on the election.
    seen = run_failover(clients, live_set, tmp_path, "kill", idle=True)
    assert seen["noticedAfterBreakMs"] is not None
    assert seen["noticedAfterBreakMs"] < 6000


def test_node_driver_with_the_primary_isolated(clients: NodeClients, live_set, tmp_path):
    if not _is_standin(live_set):
        pytest.skip("isolating a real mongod needs network namespaces; the stand-in only")
    seen = run_failover(clients, live_set, tmp_path, "isolate")
    assert seen["errors"] == []
    assert seen["primaryAfter"] not in (None, seen["primaryBefore"])
    # The isolated member still answers clients on loopback, as a secondary.
    with dba_client(live_set, seen["primaryBefore"]) as client:
        assert client.admin.command("hello")["isWritablePrimary"] is False
    live_set.heal(seen["primaryBefore"])
    assert _stored_seqs(live_set) == sorted(seen["acked"])
