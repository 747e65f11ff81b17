"""Loading promises.toml and running promises under ifelapsed/expireafter locks."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

import pytest

from client_agent.promises import Outcome, run_promises
from hubcluster.promises_grammar import Promise, PromisesError, load_promises, parse_promises

ANY = {"any", "linux"}


def one(promise: Promise, state: Path, classes: set[str] = ANY, **kw) -> Outcome:
    [outcome] = run_promises([promise], state, classes, **kw)
    return outcome


def test_load_promises_with_defaults(tmp_path):
    path = tmp_path / "promises.toml"
    path.write_text(
        """
[[promise]]
name = "motd"
check = "test -f /etc/motd"
repair = "touch /etc/motd"
ifelapsed = 5
expireafter = 0.5
if = "linux&!Hr00"

[[promise]]
name = "tmp"
check = "test -d /tmp"
"""
    )
    motd, tmp = load_promises(path)
    assert motd == Promise("motd", "test -f /etc/motd", "touch /etc/motd", 5.0, 0.5, "linux&!Hr00")
    assert tmp == Promise("tmp", "test -d /tmp", None, 1.0, 120.0, "any")


BAD_FILES = [
    ('[[promise]]\nname = "a"\ncheck = "true"\n\n[[promise]]\ncheck = "true"\n', 5, "'name'"),
    ('[[promise]]\nname = "a"\n', 1, "missing required key 'check'"),
    (
        '[[promise]]\nname = "a"\ncheck = "true"\n[[promise]]\nname = "a"\ncheck = "x"\n',
        5,
        "duplicate promise name 'a' (first defined at line 2)",
    ),
    ('[[promise]]\nname = "a"\ncheck = "true"\nifelapsd = 3\n', 4, "unknown key 'ifelapsd'"),
    ('[[promise]]\nname = "a"\ncheck = 3\n', 3, "'check' must be a string, got int"),
    ('[[promise]]\nname = "a"\ncheck = "x"\nifelapsed = "5"\n', 4, "number of minutes"),
    ('[[promise]]\nname = "a"\ncheck = "x"\n\nexpireafter = -1\n', 5, "negative minutes"),
    (
        '[[promise]]\nname = "a"\ncheck = "x"\nif = "(Monday|Friday"\n',
        4,
        "unbalanced parenthesis at 0 in '(Monday|Friday'",
    ),
    ('[[promise]]\nname = "a"\ncheck = "x\n', 3, "invalid TOML"),
    ('[[promise]]\nname = "a"\ncheck = "x"\n[settings]\nx = 1\n', 4, "unknown top-level key"),
]


@pytest.mark.parametrize(("text", "line", "problem"), BAD_FILES)
def test_bad_promises_file_names_file_line_and_problem(tmp_path, text, line, problem):
    path = tmp_path / "promises.toml"
    path.write_text(text)
    with pytest.raises(PromisesError) as info:
        load_promises(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert problem in message


def test_parse_promises_names_the_source():
    with pytest.raises(PromisesError, match=r"^masterfiles/promises.toml:1: "):
        parse_promises('[[promise]]\nname = "a"\n', "masterfiles/promises.toml")


def test_missing_file_is_a_promises_error(tmp_path):
    with pytest.raises(PromisesError, match="no such promises file"):
        load_promises(tmp_path / "nope.toml")


def test_kept_repaired_not_kept(tmp_path):
    target = tmp_path / "flag"
    state = tmp_path / "state"
    promises = [
        Promise("kept", "true"),
        Promise("repaired", f"test -f {target}", f"echo fixing; touch {target}"),
        Promise("no-repair", "echo nope; exit 3"),
        Promise("repair-fails", "false", "exit 1"),
        Promise("still-broken", "false", "true"),
    ]
    outcomes = {o.name: o for o in run_promises(promises, state, ANY)}
    assert [o.name for o in outcomes.values()] == [p.name for p in promises]

    assert (outcomes["kept"].status, outcomes["kept"].reason) == ("kept", "check passed")
    assert outcomes["repaired"].status == "repaired"
    assert outcomes["repaired"].reason == "repaired: check passed after repair"
    assert "fixing" in outcomes["repaired"].output
    assert target.exists()
    assert outcomes["no-repair"].status == "not_kept"
    assert "exit 3" in outcomes["no-repair"].reason
    assert "nope" in outcomes["no-repair"].output
    assert outcomes["repair-fails"].status == "not_kept"
    assert outcomes["repair-fails"].reason == "repair failed (exit 1)"
    assert outcomes["still-broken"].status == "not_kept"
    assert "after repair" in outcomes["still-broken"].reason
    assert all(o.seconds >= 0 for o in outcomes.values())

    record = outcomes["kept"].to_dict()
    assert record["name"] == "kept" and record["status"] == "kept"
    assert set(record) >= {"name", "status", "reason", "seconds", "output"}
    json.dumps(record)


def test_output_is_truncated(tmp_path):
    outcome = one(Promise("loud", "head -c 100000 /dev/zero | tr '\\0' x"), tmp_path)
    assert outcome.status == "kept"
    assert len(outcome.output) < 5000
    assert "cut" in outcome.output


def test_ifelapsed_lock_persists_across_runs(tmp_path):
    counter = tmp_path / "count"
    promise = Promise("count", f"echo x >> {counter}", ifelapsed=0.01)  # 0.6 s
    assert one(promise, tmp_path / "state").status == "kept"
    second = one(promise, tmp_path / "state")
    assert second.status == "skipped"
    assert second.reason.startswith("locked: ran ")
    assert second.reason.endswith("min ago, ifelapsed 0.01 min")
    assert counter.read_text().count("x") == 1
    assert "count" in json.loads((tmp_path / "state" / "locks.json").read_text())

    time.sleep(0.7)
    assert one(promise, tmp_path / "state").status == "kept"
    assert counter.read_text().count("x") == 2


def test_ifelapsed_judged_by_the_given_clock(tmp_path):
    promise = Promise("p", "true", ifelapsed=1)
    assert one(promise, tmp_path, now=1000.0).status == "kept"
    assert one(promise, tmp_path, now=1030.0).reason.startswith("locked: ran 0.5 min ago")
    assert one(promise, tmp_path, now=1061.0).status == "kept"


def test_out_of_context_is_skipped_without_running(tmp_path):
    marker = tmp_path / "ran"
    outcome = one(Promise("p", f"touch {marker}", condition="Tuesday.Hr05_Q1"), tmp_path)
    assert outcome.status == "skipped"
    assert outcome.reason == "out of context: Tuesday.Hr05_Q1 is false"
    assert not marker.exists()
    assert one(Promise("p", f"touch {marker}", condition="linux&!Hr00"), tmp_path).status == "kept"


def _alive(pid: int) -> bool:
    """Running, not merely an unreaped zombie (PID 1 in a container may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_expireafter_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "sleeper.pid"
    # The sleep runs as a child of the shell, so killing only the shell would leave it behind.
    promise = Promise("slow", f"sleep 30 & echo $! > {pidfile}; wait", expireafter=0.01)
    started = time.monotonic()
    outcome = one(promise, tmp_path / "state")
    elapsed = time.monotonic() - started

    assert outcome.status == "not_kept"
    assert outcome.reason.startswith("killed after expireafter 0.01 min")
    assert elapsed < 5
    sleeper = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while _alive(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert not _alive(sleeper)
    finally:
        if _alive(sleeper):  # a failing run must not leave the sleeper behind
            os.kill(sleeper, signal.SIGKILL)
    locks = json.loads((tmp_path / "state" / "locks.json").read_text())
    assert "running" not in locks["slow"]


def test_expireafter_kills_a_plain_sleep_check(tmp_path):
    pidfile = tmp_path / "sleep.pid"
    started = time.monotonic()
    outcome = one(
        Promise("sleepy", f"echo $$ > {pidfile}; exec sleep 30", expireafter=0.01), tmp_path
    )
    assert time.monotonic() - started < 5
    assert outcome.status == "not_kept"
    assert outcome.reason == "killed after expireafter 0.01 min during check"
    assert not _alive(int(pidfile.read_text()))


def test_concurrent_agent_in_progress_is_skipped_and_stale_lock_broken(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    now = time.time()
    # Another live agent (our parent process stands in for it) started 0.1 min ago.
    running = {"p": {"running": {"pid": os.getppid(), "start": now - 6}}}
    (state / "locks.json").write_text(json.dumps(running))
    outcome = one(Promise("p", "true", expireafter=1), state, now=now)
    assert outcome.status == "skipped"
    assert outcome.reason.startswith(f"locked: running in pid {os.getppid()}")

    # The same record is stale once it is older than expireafter.
    outcome = one(Promise("p", "true", expireafter=0.05), state, now=now)
    assert outcome.status == "kept"
    assert "running" not in json.loads((state / "locks.json").read_text())["p"]


def test_lock_of_a_dead_agent_is_broken(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    (state / "locks.json").write_text(json.dumps({"p": {"running": {"pid": dead, "start": 0}}}))
    assert one(Promise("p", "true"), state, now=60.0).status == "kept"


def test_garbage_locks_file_is_reported_not_fatal(tmp_path, caplog):
    state = tmp_path / "state"
    state.mkdir()
    (state / "locks.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        outcome = one(Promise("p", "true"), state)
    assert outcome.status == "kept"
    assert "garbage" in caplog.text
    assert "p" in json.loads((state / "locks.json").read_text())
