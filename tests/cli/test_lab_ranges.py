"""`hubctl lab` numbers and durations have stated ranges: one line past them, exit 2, and
no lab is started (its directory is never made)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hubctl.app import app

runner = CliRunner()

PAST_THE_RANGE = [
    (
        ["up", "--clients", "0"],
        "Invalid value for '--clients': Input should be greater than or equal to 1",
    ),
    (["up", "--clients", "501"], "Input should be less than or equal to 500"),
    (["up", "--for", "0"], "Invalid value for '--for': '0' is out of range: 1s to 7d"),
    (["up", "--for", "-5m"], "a duration cannot be negative: '-5m'"),
    (["up", "--for", "8d"], "'8d' is out of range: 1s to 7d"),
    (["up", "--agent-interval", "0"], "'0' is out of range: 1s to 1d"),
    (["up", "--agent-interval", "2d"], "'2d' is out of range: 1s to 1d"),
    (["up", "--collect-interval", "500ms"], "'500ms' is out of range: 1s to 1d"),
    (["up", "--election-timeout", "0"], "'0' is out of range: 100ms to 1h"),
    (["up", "--for", "5 minutes"], "Invalid value for '--for'"),
    (["mongo", "--members", "8"], "Input should be less than or equal to 7"),
    (["mongo", "--base-port", "70000"], "Input should be less than or equal to 65535"),
    (["mongo", "--base-port", "65535"], "--base-port 65535: 3 members need ports to 65537 > 65535"),
    (["mongo", "--control-port", "-1"], "Input should be greater than or equal to 0"),
    (["mongo", "--election-timeout", "0"], "'0' is out of range: 100ms to 1h"),
    (["scenario", "failover", "--clients", "0"], "Input should be greater than or equal to 1"),
]


@pytest.mark.parametrize("args, message", PAST_THE_RANGE)
def test_past_the_range_is_one_line_exit_2_and_starts_nothing(tmp_path, args, message):
    lab_dir = tmp_path / "lab"
    dir_args = ["--dir", str(lab_dir)] if args[0] == "up" else []
    result = runner.invoke(app, ["lab", *args, *dir_args], env={"COLUMNS": "80"})
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line, line
    assert not lab_dir.exists()


def test_lab_up_help_states_each_range():
    result = runner.invoke(app, ["lab", "up", "--help"], env={"COLUMNS": "80"})
    text = " ".join(result.stdout.split())
    assert result.exit_code == 0
    for stated in (
        "How many clients (1 to 500)",
        "Run this long, then stop (1s to 7d)",
        "Between agent runs (1s to 1d)",
        "Between collection rounds (1s to 1d)",
        "(100ms to 1h)",
    ):
        assert stated in text, stated
