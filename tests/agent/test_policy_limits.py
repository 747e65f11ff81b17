"""Every policy `masterfiles publish` accepts is one an agent can run; what it refuses, it
refuses in one line; an agent given a bad promise anyway skips it and runs the rest."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from client_agent.agent_run import run_agent
from client_agent.bootstrap import bootstrap
from client_agent.promises import run_promises
from client_agent.state import ClientState
from hub.masterfiles import MasterfilesError, publish_release
from hubcluster.class_expressions import MAX_EXPRESSION_DEPTH
from hubcluster.promises_grammar import MAX_EXPIREAFTER, MAX_IFELAPSED, Promise
from tests.sshsvc.harness import client_config

DEEP_PARENS = "(" * 3000 + "any" + ")" * 3000
DEEP_NOTS = "!" * 3000 + "any"


def promise(name: str, **fields: object) -> str:
    """A [[promise]] table; strings as TOML basic strings (JSON's escapes), so \u0000 is a NUL."""
    values = {"name": name, "check": "true", **fields}
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "[[promise]]\n" + "\n".join(lines) + "\n"


def publish(tmp_path: Path, text: str) -> str:
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    (source / "promises.toml").write_text(text)
    return publish_release(tmp_path / "masterfiles", source)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"expireafter": 1e9}, "'expireafter' must be at most 10080 minutes (a week), got 1e+09"),
        ({"ifelapsed": 10**12}, "'ifelapsed' must be at most 525600 minutes (a year), got 1e+12"),
        ({"if": DEEP_PARENS}, "class expression longer than 4096 characters"),
        ({"if": "(" * 2000 + "a" + ")" * 2000}, "nested more than 64 levels of parentheses"),
        ({"if": DEEP_NOTS}, "nested more than 64 levels of parentheses and negations"),
        ({"if": "a|" * 3000 + "a"}, "class expression longer than 4096 characters"),
        ({"repair": "echo \u0000"}, "'repair' must not contain a NUL character"),
        ({"check": "x" * 70_000}, "'check' must be at most 65536 bytes, got 70000"),
    ],
)
def test_publish_refuses_what_no_agent_could_run_in_one_line(tmp_path, fields, problem):
    with pytest.raises(MasterfilesError) as info:
        publish(tmp_path, promise("ok") + promise("bad", **fields))
    message = str(info.value)
    assert "\n" not in message and len(message) < 300, message
    assert message.startswith("refusing to publish: ") and problem in message
    assert "promises.toml:" in message  # names the line to edit


def test_publish_takes_the_limits_themselves_and_an_agent_runs_them(make_hubs, tmp_path):
    half = MAX_EXPRESSION_DEPTH // 2
    at_depth = "(" * half + "!" * half + "any" + ")" * half
    hubs = make_hubs()
    policy = promise("longest", ifelapsed=MAX_IFELAPSED, expireafter=MAX_EXPIREAFTER) + promise(
        "deepest", **{"if": at_depth}
    )
    rid = hubs.publish({"promises.toml": policy})
    config = client_config(tmp_path)
    asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
    result = asyncio.run(run_agent(config))
    assert result.release == rid
    statuses = {o.name: (o.status, o.reason) for o in result.outcomes}
    assert statuses["longest"] == ("kept", "check passed")
    # an even number of negations around `any`: it holds
    assert statuses["deepest"] == ("kept", "check passed")
    assert result.exit_code == 0, result.summary()


def test_agent_skips_a_bad_promise_in_force_and_runs_the_rest(make_hubs, tmp_path, caplog):
    hubs = make_hubs()
    hubs.publish({"promises.toml": promise("good")})
    config = client_config(tmp_path)
    asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
    state = ClientState(config.workdir)
    # A policy in force that today's publish would refuse: published by an older hub.
    root = state.inputs_root()
    assert root is not None
    marker = tmp_path / "ran"
    (root / "promises.toml").write_text(
        promise("overflow", expireafter=1e9)
        + promise("deep", **{"if": DEEP_NOTS})
        + promise("nul", check="true\u0000")
        + promise("runs", check=f"touch {marker}")
        + promise("deep", check="true")
    )
    hubs.close()
    with caplog.at_level(logging.WARNING, logger="hubcluster.agent"):
        result = asyncio.run(run_agent(config))
    assert marker.exists()
    got = [(o.name, o.status) for o in result.outcomes]
    assert got == [
        ("overflow", "skipped"),
        ("deep", "skipped"),
        ("nul", "skipped"),
        ("runs", "kept"),
        ("promise #5", "skipped"),  # a second `deep`: a duplicate name is refused too
    ]
    reasons = {o.name: o.reason for o in result.outcomes}
    assert "at most 10080 minutes" in reasons["overflow"]
    assert "nested more than 64 levels" in reasons["deep"]
    assert "duplicate promise name 'deep'" in reasons["promise #5"]
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 4 and all("\n" not in line for line in refused)
    assert "Traceback" not in caplog.text
    assert result.seqs, "the run was reported"


def test_agent_checks_again_what_was_not_read_from_a_file(tmp_path):
    """The check before running is the agent's own, not only the file reader's."""
    [outcome, kept] = run_promises(
        [Promise("huge", "true", expireafter=1e9), Promise("fine", "true")],
        tmp_path,
        {"any"},
    )
    assert (outcome.status, kept.status) == ("skipped", "kept")
    assert outcome.reason.startswith("refused: 'expireafter' must be at most 10080 minutes")
