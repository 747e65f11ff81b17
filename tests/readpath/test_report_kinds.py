"""The agent's reports, as a real run spools them, against the collector's checks and readers.

A field the agent writes under another name than hubcluster.report_kinds defines is refused
by the collector (so it never reaches a query); a field the summary reads that the agent
does not write fails here too.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from client_agent.agent_run import run_agent
from client_agent.bootstrap import bootstrap
from client_agent.spool import Spool
from client_agent.state import ClientState
from hub.outcome_summary import COUNTS, PROMISES, RELEASE, summary_of
from hub.report_records import parse_report_lines
from hubcluster import report_kinds as rk
from hubcluster.messages import report_line
from tests.sshsvc.harness import client_config

POLICY = """
[[promise]]
name = "kept"
check = "true"

[[promise]]
name = "repaired"
check = "test -f flag"
repair = "touch flag"

[[promise]]
name = "broken"
check = "false"

[[promise]]
name = "elsewhere"
check = "true"
if = "no_such_host"
"""
RUN_KINDS = (rk.OUTCOME, rk.INVENTORY)  # what every agent run writes (a gap only on overflow)


@pytest.fixture
def spooled(make_hubs, tmp_path):
    """The records one real agent run spooled, keyed by kind."""
    hubs = make_hubs()
    release = hubs.publish({"promises.toml": POLICY})
    config = client_config(tmp_path)
    asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
    asyncio.run(run_agent(config))
    with Spool(ClientState(config.workdir).spool_dir) as spool:
        records = spool.read_since(0)
    return release, {r["kind"]: r for r in records}


def test_the_collector_accepts_every_kind_the_agent_writes(spooled):
    _, records = spooled
    assert sorted(records) == sorted(RUN_KINDS)
    text = "\n".join(report_line(r) for r in records.values())  # as the report service sends
    parsed = parse_report_lines(text, since=0, max_bytes=1 << 20)
    assert parsed.rejected == [] and parsed.error is None
    assert [r["kind"] for r in parsed.records] == [rk.OUTCOME, rk.INVENTORY]


@pytest.mark.parametrize("kind", RUN_KINDS)
def test_a_field_renamed_by_the_writer_is_refused_by_the_collector(spooled, kind):
    payload = spooled[1][kind]["payload"]
    for name in payload:
        renamed = {(f"{k}_renamed" if k == name else k): v for k, v in payload.items()}
        problem = rk.payload_problem(kind, renamed)
        assert problem == f"{kind} payload: missing {name}", problem
    if kind == rk.OUTCOME:
        result = payload[rk.OUTCOME_PROMISES][0]
        for name in result:
            renamed = {(f"{k}_renamed" if k == name else k): v for k, v in result.items()}
            problem = rk.payload_problem(kind, dict(payload, promises=[renamed]))
            assert problem == f"outcome payload: promises[0]: missing {name}", problem


def test_the_summary_reads_what_the_agent_wrote(spooled):
    release, records = spooled
    summary = summary_of(records[rk.OUTCOME], dt.datetime.now(dt.UTC))
    assert summary[RELEASE] == release
    assert summary[COUNTS] == {"kept": 1, "repaired": 1, "not_kept": 1, "skipped": 1}
    assert [(p["name"], p["status"]) for p in summary[PROMISES]] == [
        ("kept", "kept"),
        ("repaired", "repaired"),
        ("broken", "not_kept"),
        ("elsewhere", "skipped"),
    ]
