"""The report service as its own user, sharing the spool with the root agent run (issue 19 s4).

Laid out as the client role deploys it: the workdir root:G 0710, the spool root:G 2770,
ppkeys/ root's 0700, and the client key handed to the service by systemd (LoadCredential=,
a copy under $CREDENTIALS_DIRECTORY). Real agent runs write the spool as root; a process that
dropped to another uid in group G (as `User=` does) reads and acknowledges it, and the next
root run appends again. Needs root to change uid: skipped otherwise.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from client_agent.agent_run import run_agent
from client_agent.bootstrap import bootstrap
from client_agent.spool import Spool
from client_agent.state import KEY_CREDENTIAL, ClientState
from tests.sshsvc.harness import client_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")

SERVICE_UID = SERVICE_GID = 65534  # nobody:nogroup, standing in for hubcluster-agent


def as_service_user(work: Callable[[], dict]) -> dict:
    """Run `work` in a child with the service's uid/gid and no other groups; its JSON result."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.close(read)
        try:
            os.setgroups([])
            os.setgid(SERVICE_GID)
            os.setuid(SERVICE_UID)
            answer = {"ok": work()}
        except Exception as exc:
            answer = {"error": repr(exc)}
        os.write(write, json.dumps(answer).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    answer = json.loads(data)
    assert "error" not in answer, answer["error"]
    return answer["ok"]


@pytest.fixture
def deployed(make_hubs) -> Iterator:
    # Not under pytest's tmp_path: its parents are 0700 root, which no service could pass.
    root = Path(tempfile.mkdtemp(prefix="hubcluster-serve-user-"))
    os.chmod(root, 0o711)
    try:
        hubs = make_hubs()
        hubs.publish({"a.txt": "a"})
        config = client_config(root)
        asyncio.run(bootstrap(config, hubs.addresses[0], hub_fingerprint=hubs.fingerprint))
        # What ansible/roles/client/tasks/main.yml makes of the workdir and the spool.
        workdir, spool = config.workdir, config.workdir / "spool"
        spool.mkdir(exist_ok=True)
        os.chown(workdir, 0, SERVICE_GID)
        os.chmod(workdir, 0o710)
        os.chown(spool, 0, SERVICE_GID)
        os.chmod(spool, 0o2770)
        # systemd's LoadCredential=: a copy of the key, the service's own, 0400.
        credentials = root / "credentials"
        credentials.mkdir(mode=0o700)
        copy = credentials / KEY_CREDENTIAL
        shutil.copyfile(ClientState(workdir).private_key_path, copy)
        os.chown(credentials, SERVICE_UID, SERVICE_GID)
        os.chown(copy, SERVICE_UID, SERVICE_GID)
        os.chmod(copy, 0o400)
        yield config, credentials
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_service_user_reads_and_acknowledges_what_root_runs_spool(deployed):
    config, credentials = deployed
    state = ClientState(config.workdir)
    asyncio.run(run_agent(config))  # root, with root's usual umask

    def serve_side() -> dict:
        # In the child only: the environment systemd gives the service.
        os.environ["CREDENTIALS_DIRECTORY"] = str(credentials)
        as_service = ClientState(config.workdir)
        key = as_service.client_key()
        with Spool(as_service.spool_dir) as spool:
            epoch, records = spool.hand_over(0, None, 100)
            last = records[-1]["seq"]
            spool.hand_over(last, epoch, 100)  # acknowledges everything handed out
        return {
            "problem": as_service.bootstrap_problem(),
            "key": key.export_public_key().decode(),
            "seqs": [r["seq"] for r in records],
        }

    first = as_service_user(serve_side)
    assert first["problem"] is None
    assert first["key"] == state.client_key().export_public_key().decode()
    assert first["seqs"] == [1, 2]

    asyncio.run(run_agent(config))  # root appends after the service rewrote the spool
    second = as_service_user(serve_side)
    assert second["seqs"] == [3, 4]

    for path in state.spool_dir.iterdir():
        mode = path.stat()
        assert stat.S_IMODE(mode.st_mode) == 0o660, path
        assert mode.st_gid == SERVICE_GID, path


def test_service_user_cannot_read_the_private_key_itself(deployed):
    config, _credentials = deployed

    def read_key() -> dict:
        try:
            ClientState(config.workdir).private_key_path.read_bytes()
        except PermissionError:
            return {"readable": False}
        return {"readable": True}

    assert as_service_user(read_key) == {"readable": False}
