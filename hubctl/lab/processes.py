"""Stopping a lab child process (hubd, haproxy, prometheus, mongod): ask, wait, then kill."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0, kill: bool = False) -> None:
    """SIGTERM (or SIGKILL when `kill`), then SIGKILL after `grace` seconds; reaps the child."""
    if proc.poll() is not None:
        return
    if kill:
        proc.kill()
    else:
        proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
