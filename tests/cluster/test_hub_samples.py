"""The load test's judgements can fail: growth, tracebacks and overrun lines (fast)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from tests.cluster.hub_samples import growth, overrun_lines, sample, tracebacks


def test_growth_ignores_warm_up_and_single_spikes_but_not_a_leak():
    warm_up_then_flat = [40, 50, 60] + [70] * 12
    assert growth(warm_up_then_flat) == 0
    spiky = [70] * 15
    spiky[12] = 300
    assert growth(spiky) == 0
    leak = [70 + i for i in range(15)]  # one more per round
    assert growth(leak) == 5
    with pytest.raises(ValueError, match="too few"):
        growth([1, 2, 3])


def test_a_logged_exception_is_found_as_one_line(tmp_path):
    log = tmp_path / "hub.log"
    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("test_hub_samples")
    logger.addHandler(handler)
    try:
        try:
            {}["missing"]
        except KeyError:
            logger.exception("pull from client001 failed unexpectedly")
        logger.warning("round took 3.4 s, longer than the 2 s interval; next round starts now")
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = log.read_text()
    [found] = tracebacks(text)
    assert found.startswith("KeyError: 'missing' | File ")
    assert "pull from client001 failed unexpectedly" in found
    assert overrun_lines(text) == [3.4]
    assert tracebacks("INFO all is well\n") == []


def test_sample_reads_rss_and_open_files_of_a_process():
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, os; x = [open(os.devnull) for _ in range(40)]; "
            "b = b'x' * (64 << 20); sys.stdout.write('ok\\n'); sys.stdout.flush(); input()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline() == "ok\n"
        got = sample(child.pid)
        assert got.fds >= 43  # stdin, stdout, stderr and forty more
        assert got.rss_mb >= 64
    finally:
        child.stdin.close()
        child.wait(timeout=10)
