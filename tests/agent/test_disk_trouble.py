"""A read-only or full disk under the agent: the policy still runs, the trouble is one line,
the exit status says so, and the spool takes reports again once it can write."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

from client_agent.agent_run import EXIT_NO_SPOOL
from client_agent.bootstrap import bootstrap
from client_agent.spool import Spool
from client_agent.state import ClientState
from tests.agent.disk_faults import fill, read_only, small_disk
from tests.sshsvc.harness import client_config

AGENT = str(Path(sys.executable).with_name("client-agent"))


def counting_policy(counter: Path) -> str:
    # ifelapsed = 0: every run runs it, so the counter shows each run really ran the policy.
    return f"""
[[promise]]
name = "count"
check = "echo run >> {counter}"
ifelapsed = 0
"""


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENT, *args], capture_output=True, text=True, timeout=60)


def runs(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def setup(make_hubs, tmp_path: Path, root: Path):
    hubs = make_hubs()
    counter = tmp_path / "runs.txt"
    hubs.publish({"promises.toml": counting_policy(counter)})
    config = client_config(root)
    asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
    first = agent("run", "--workdir", str(config.workdir))
    assert first.returncode == 0, first.stderr
    return config, ClientState(config.workdir), counter


def spooled(state: ClientState) -> list[tuple[int, str]]:
    with Spool(state.spool_dir) as spool:
        return [(r["seq"], r["kind"]) for r in spool.read_since(0)]


def test_read_only_spool_runs_the_policy_and_says_so_in_one_line(make_hubs, tmp_path):
    config, state, counter = setup(make_hubs, tmp_path, tmp_path)
    assert spooled(state) == [(1, "outcome"), (2, "inventory")]

    with read_only(state.spool_dir):
        done = agent("run", "--workdir", str(config.workdir))
    assert done.returncode == EXIT_NO_SPOOL, done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"cannot spool reports in {state.spool_dir}: Read-only file system" in line
    assert runs(counter) == 2  # the policy ran anyway

    again = agent("run", "--workdir", str(config.workdir))
    assert again.returncode == 0, again.stderr
    assert runs(counter) == 3
    kept = spooled(state)
    assert kept[:2] == [(1, "outcome"), (2, "inventory")]
    assert [kind for _, kind in kept[2:]] == ["outcome", "inventory"]
    assert kept[2][0] > 2 and kept[3][0] == kept[2][0] + 1


def test_full_disk_runs_the_policy_and_the_spool_recovers(make_hubs, tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        config, state, counter = setup(make_hubs, tmp_path, disk)
        filler = fill(disk)

        done = agent("run", "--workdir", str(config.workdir))
        assert done.returncode == EXIT_NO_SPOOL, done.stderr
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert [line for line in lines if "spool" in line] == [lines[-1]]
        assert f"cannot spool reports in {state.spool_dir}: No space left" in lines[-1]
        assert runs(counter) == 2

        filler.unlink()
        again = agent("run", "--workdir", str(config.workdir))
        assert again.returncode == 0, again.stderr
        assert runs(counter) == 3
        kept = spooled(state)
        assert kept[:2] == [(1, "outcome"), (2, "inventory")]
        assert [kind for _, kind in kept[2:]] == ["outcome", "inventory"]
        with Spool(state.spool_dir) as spool:
            status = spool.status()
        assert status["records"] == 4 and status["last_seq"] == kept[-1][0]


def test_serve_on_a_read_only_workdir_names_the_file_it_cannot_write(make_hubs, tmp_path):
    hubs = make_hubs()
    hubs.publish({"a.txt": "a"})
    config = client_config(tmp_path)
    asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
    with socket.socket() as probe:  # a free port, so only the workdir can be the trouble
        probe.bind(("127.0.0.1", 0))
        listen = f"127.0.0.1:{probe.getsockname()[1]}"
    with read_only(config.workdir):
        done = agent("serve", "--listen", listen, "--workdir", str(config.workdir))
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "listen" not in line, line
    assert f"cannot write {config.workdir}/spool" in line and "Read-only file system" in line
