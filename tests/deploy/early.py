"""The staged deployment, started as soon as the tests are collected, beside the others.

Its two playbook runs over five hosts take two to three minutes, mostly one process's CPU,
while the rest of the suite mostly waits (elections, rounds, timeouts) with a core to
spare. So tests/conftest.py starts it in a thread when a collected test needs `deployed`,
and that fixture only waits for it. Its environment is the one at the start: tests that
change theirs later never leak into the playbook's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path

from tests.deploy.deployment import Deployment, deploy
from tests.install.plain_install import plain_install

_started: tuple[Future[Deployment], Path] | None = None


def start() -> None:
    """Begin the deployment in the background (once per session)."""
    global _started
    if _started is not None:
        return
    future: Future[Deployment] = Future()
    base = Path(tempfile.mkdtemp(prefix="hubcluster-deploy-"))
    environ = dict(os.environ)

    def work() -> None:
        try:
            future.set_result(deploy(base, plain_install(), environ))
        except BaseException as exc:  # handed to the test that waits for it
            future.set_exception(exc)

    threading.Thread(target=work, name="early-deploy", daemon=True).start()
    _started = (future, base)


def deployment(timeout: float) -> Deployment:
    """The deployment started by `start` (started now if it was not)."""
    start()
    assert _started is not None
    return _started[0].result(timeout)


def finish(timeout: float) -> None:
    """Wait up to `timeout` for a deployment still running (no playbook outlives a session
    that ends normally), then remove its staging tree. One still running then (an
    interrupted session) keeps its tree: its playbook ends by its own timeout."""
    if _started is None:
        return
    future, base = _started
    try:
        future.exception(timeout)
    except TimeoutError:
        return
    shutil.rmtree(base, ignore_errors=True)
