"""Debian's tools a test tier needs (haproxy, promtool, chromium): found on PATH, installed
with apt-get when missing and we are root, else that tier is skipped with one line."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

INSTALL_SECONDS = 600


def debian_tool(program: str, package: str, tier: str) -> str:
    """The path of `program`, installing Debian's `package` first when it can; else skip.

    `tier` names what is skipped, e.g. "HAProxy tier", for the one-line reason.
    """
    found = shutil.which(program)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"{tier}: no {program}, and not root to apt-get install {package}")
    done = subprocess.run(
        ["apt-get", "install", "-y", "-q", package],
        capture_output=True,
        text=True,
        timeout=INSTALL_SECONDS,
        check=False,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    found = shutil.which(program)
    if found is None:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"{tier}: apt-get install {package} failed ({done.returncode}): {last[0]}")
    return found
