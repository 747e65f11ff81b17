"""`hubctl lab up --for N` into a pipe (as `scripts/lab --for 120 | tee` runs it): the
end-of-run summary starts on its own line, after the last dashboard frame."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(180)
def test_the_summary_starts_on_its_own_line_off_a_terminal(tmp_path):
    hubctl = Path(sys.executable).parent / "hubctl"
    done = subprocess.run(
        [str(hubctl), "lab", "up", "--clients", "1", "--for", "1", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
        timeout=150,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.splitlines()[-1]
    assert last.startswith("lab stopped: "), done.stdout[-1000:]
    assert "1 agent rounds" in last
