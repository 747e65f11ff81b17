"""A flood of half-open handshakes at `client-agent serve` does not stop the collector's pulls.

The report service runs as users run it (the CLI, in its own process) with a small open-file
limit, as a host's may be. A hundred connections from 127.0.0.3 that never send a byte would
take every descriptor it has (each waits out the login grace time) and leave the hub's
connection unaccepted; capped per source, all but ten are dropped at once, and the hub's
pull from 127.0.0.1 is answered while the flood holds its ten.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

from client_agent.agent_run import run_agent
from client_agent.bootstrap import bootstrap
from client_agent.state import ClientState
from hub.report_records import parse_report_lines
from hubcluster.ssh_admission import MAX_UNAUTHENTICATED_PER_SOURCE
from tests.agent.test_report_service import pull
from tests.sshsvc.flood import half_open, sort_out
from tests.sshsvc.harness import client_config

OPEN_FILES = 48  # the service itself needs about a dozen
FLOOD = 100

# Sets the limit, then becomes the CLI: exec keeps the limit and the process.
LIMITED = "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, ({n}, {n})); "
LIMITED += "os.execv(sys.argv[1], sys.argv[1:])"


def test_collector_pulls_while_one_address_floods_the_report_service(make_hubs, tmp_path):
    hubs = make_hubs()
    hubs.publish({"a.txt": "a"})
    config = client_config(tmp_path)
    asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
    asyncio.run(run_agent(config))
    agent = str(Path(sys.executable).with_name("client-agent"))
    with socket.socket() as probe:  # a free port; the CLI, like users, must name one
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    errors = (tmp_path / "serve.err").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", LIMITED.format(n=OPEN_FILES), agent, "serve"]
        + ["--listen", f"127.0.0.1:{free}", "--workdir", str(config.workdir)],
        stdout=subprocess.PIPE,
        # A file, not a pipe nobody reads: asyncio logs each "too many open files".
        stderr=errors,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "serving reports on 127.0.0.1:" in line, (tmp_path / "serve.err").read_text()
        port = int(line.rsplit(":", 1)[1])
        client_key = ClientState(config.workdir).client_key()
        with half_open(port, "127.0.0.3", FLOOD) as flood:
            greeted, dropped = sort_out(flood)
            # While the flood holds its slots: the hub's pull, from another address.
            try:
                result = asyncio.run(pull(port, hubs.hub_key, client_key, "reports --since 0"))
            except (OSError, asyncssh.Error) as exc:
                pytest.fail(f"the hub could not pull during the flood: {exc!r}")
        assert result.exit_status == 0, result.stderr
        assert [r["seq"] for r in parse_report_lines(result.stdout, 0, 1 << 20).records] == [1, 2]
        assert (greeted, dropped) == (
            MAX_UNAUTHENTICATED_PER_SOURCE,
            FLOOD - MAX_UNAUTHENTICATED_PER_SOURCE,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        errors.close()
