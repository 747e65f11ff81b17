"""Whole agent runs: promises with classes and locks, the spool, exit codes, the CLI line."""

from __future__ import annotations

import asyncio
import datetime as dt

from typer.testing import CliRunner

from client_agent.agent_run import run_agent
from client_agent.bootstrap import bootstrap
from client_agent.cli import app
from client_agent.spool import Spool
from client_agent.state import ClientState
from hubcluster.keys import key_sha
from tests.sshsvc.harness import client_config

# A Tuesday, 05:07: Tuesday.Hr05_Q1 holds, Monday does not.
TUESDAY_0507 = dt.datetime(2024, 6, 4, 5, 7)


def promises(marker) -> str:
    return f"""
[[promise]]
name = "kept"
check = "true"

[[promise]]
name = "repaired"
check = "test -f {marker}"
repair = "touch {marker}"

[[promise]]
name = "broken"
check = "false"

[[promise]]
name = "tuesday-early"
check = "true"
if = "Tuesday.Hr05_Q1"

[[promise]]
name = "monday-only"
check = "true"
if = "Monday|(Friday.Min30_35)"
"""


def bootstrapped(hubs, tmp_path):
    config = client_config(tmp_path)
    asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
    return config, ClientState(config.workdir)


def test_full_run_with_promises_and_spool(make_hubs, tmp_path):
    hubs = make_hubs()
    marker = tmp_path / "repaired.flag"
    rid = hubs.publish({"promises.toml": promises(marker)})
    config, state = bootstrapped(hubs, tmp_path)

    result = asyncio.run(run_agent(config, now=TUESDAY_0507))
    statuses = {o.name: o.status for o in result.outcomes}
    assert statuses == {
        "kept": "kept",
        "repaired": "repaired",
        "broken": "not_kept",
        "tuesday-early": "kept",
        "monday-only": "skipped",
    }
    assert marker.exists()
    assert result.exit_code == 1  # a promise not kept
    line = result.summary()
    assert f"hub {hubs.addresses[0]}" in line and f"policy {rid}" in line
    assert "2 kept, 1 repaired, 1 not_kept, 1 skipped" in line

    with Spool(state.spool_dir) as spool:
        records = spool.read_since(0)
    assert [(r["seq"], r["kind"]) for r in records] == [(1, "outcome"), (2, "inventory")]
    outcome, facts = records[0]["payload"], records[1]["payload"]
    assert outcome["release"] == rid and outcome["server"] == hubs.addresses[0]
    assert {p["name"]: p["status"] for p in outcome["promises"]} == statuses
    assert facts["hostname"] == "client1" and facts["policy_release"] == rid
    assert facts["policy_server"] == hubs.addresses[0] and "127.0.0.1" in facts["addresses"]
    assert facts["agent_version"] and facts["kernel"] and facts["os"]

    again = asyncio.run(run_agent(config, now=TUESDAY_0507))
    assert {o.status for o in again.outcomes} == {"skipped"}  # ifelapsed locks hold
    assert again.exit_code == 0 and again.seqs == [3, 4]


def test_no_hub_reachable_still_runs_and_spools(make_hubs, tmp_path):
    hubs = make_hubs(count=2)
    hubs.publish({"a.txt": "a"})
    config, state = bootstrapped(hubs, tmp_path)
    hubs.close()
    result = asyncio.run(run_agent(config))
    assert result.exit_code == 3  # no hub could be reached
    assert result.summary().startswith("agent run: no hub reachable;")
    assert "no hub answered" in result.summary() and "connection refused" in result.summary()
    assert [o.status for o in result.outcomes] == ["kept"]
    assert result.seqs == [1, 2]
    with Spool(state.spool_dir) as spool:
        assert spool.read_since(0)[0]["payload"]["server"] is None


def test_hub_key_mismatch_during_a_run_is_loud_and_fails_over(make_hubs, tmp_path):
    real = make_hubs(name="real")
    mitm = make_hubs(name="mitm")
    real.publish({"a.txt": "a"})
    config, state = bootstrapped(real, tmp_path)
    state.write_policy_server(mitm.addresses[0])
    result = asyncio.run(run_agent(config))
    assert result.server == real.addresses[0] and result.exit_code == 0
    assert mitm.fingerprint in result.summary() and real.fingerprint in result.summary()
    assert mitm.contacts == [] and mitm.registered == []


def test_revoked_client_is_refused_everywhere(make_hubs, tmp_path):
    hubs = make_hubs()
    hubs.publish({"a.txt": "a"})
    config, state = bootstrapped(hubs, tmp_path)
    contacts = len(hubs.contacts)
    hubs.keystore().revoke(key_sha(state.client_key()), "decommissioned")
    result = asyncio.run(run_agent(config))
    assert result.exit_code == 3 and result.server is None
    assert "refused this client's key" in result.summary()
    assert len(hubs.contacts) == contacts
    assert [o.status for o in result.outcomes] == ["kept"]  # the policy in force still ran


def test_not_bootstrapped_is_exit_2(tmp_path):
    result = asyncio.run(run_agent(client_config(tmp_path)))
    assert result.exit_code == 2 and "run client-agent bootstrap" in result.summary()
    cli = CliRunner().invoke(app, ["run", "--workdir", str(tmp_path / "nothing")])
    assert cli.exit_code == 2 and "not bootstrapped" in cli.output


def test_cli_run_prints_one_summary_line(make_hubs, tmp_path):
    hubs = make_hubs()
    hubs.publish({"a.txt": "a"})
    config, _ = bootstrapped(hubs, tmp_path)
    cli = CliRunner().invoke(app, ["run", "--workdir", str(config.workdir)])
    assert cli.exit_code == 0, cli.output
    lines = cli.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agent run: hub ")
