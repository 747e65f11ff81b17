"""Every duration option has a stated range, checked before anything reaches the cluster."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from hubcluster.durations import DAY, DurationRange, parse_duration
from hubctl.app import app

runner = CliRunner()


@pytest.fixture
def trap():
    """A loopback port posing as the cluster; any connection to it means something was sent."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.3)
        uri = f"mongodb://127.0.0.1:{listener.getsockname()[1]}/?replicaSet=rs"

        def connected() -> bool:
            try:
                listener.accept()[0].close()
                return True
            except TimeoutError:
                return False

        yield uri, connected


OUT_OF_RANGE = [
    (["freeze", "hub2", "2000000000"], "'2000000000' is out of range: 1s to 7d"),
    (["freeze", "hub2", "99999999999h"], "'99999999999h' is out of range: 1s to 7d"),
    (["freeze", "hub2", "0s"], "'0s': to unfreeze a member, run hubctl unfreeze MEMBER"),
    (["freeze", "hub2", "1.5s"], "'1.5s' is not a whole number of seconds"),
    (["maintenance", "start", "hub1", "--for", "99999999999h"], "out of range: 1s to 7d"),
    (["maintenance", "start", "hub1", "--for", "0"], "'0' is out of range: 1s to 7d"),
    (["history", "--since", "99999999999999h"], "out of range: 1s to 3650d"),
    (["query", "hosts", "--stale", "99999999999h"], "out of range: 1s to 3650d"),
    (["stepdown", "--catch-up", "-3"], "a duration cannot be negative: '-3'"),
    (["stepdown", "--catch-up", "0"], "'0' is out of range: 1s to 1h"),
    (["stepdown", "--seconds", "0"], "'0' is out of range: 1s to 1d"),
    (["stepdown", "--seconds", "2d"], "'2d' is out of range: 1s to 1d"),
    (["status", "--max-lag", "-1"], "a duration cannot be negative"),
    (["status", "--timeout", "0"], "'0' is out of range: 100ms to 1h"),
    (["init-replset", "--member", "h:1", "--election-timeout", "0"], "out of range: 100ms"),
    (["freeze", "hub2", "9" * 400], "is too large"),
    (["query", "hosts", "--max-staleness", "inf"], "not a duration: 'inf'"),
    (["history", "--max-staleness", "2d"], "'2d' is out of range: 0s to 1d"),
]


@pytest.mark.parametrize("args, message", OUT_OF_RANGE)
def test_out_of_range_is_one_line_exit_2_and_sends_nothing(trap, args, message):
    uri, connected = trap
    result = runner.invoke(app, [*args, "--mongo", uri], env={"COLUMNS": "80"})
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: Invalid value for ") and message in line, line
    assert not connected(), "a refused duration reached the cluster"


def test_check_answers_a_bad_duration_as_nagios_unknown(trap):
    uri, connected = trap
    result = runner.invoke(app, ["check", "--max-lag", "99999999999h", "--mongo", uri])
    assert result.exit_code == 3
    [line] = result.stdout.splitlines()
    assert line.startswith("HUBCLUSTER UNKNOWN - Invalid value for '--max-lag': ")
    assert "out of range: 0s to 1d" in line and result.stderr == ""
    assert not connected()


@pytest.mark.parametrize(
    "args, stated",
    [
        (["freeze"], "(1s to 7d)"),
        (["maintenance", "start"], "(1s to 7d)"),
        (["history"], "(1s to 3650d)"),
        (["stepdown"], "(1s to 1h)"),
        (["check"], "(1s to 7d)"),
    ],
)
def test_help_states_each_range(args, stated):
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "80"})
    assert stated in " ".join(result.stdout.split())


def test_a_range_accepts_its_bounds_and_the_usual_forms():
    week = DurationRange(1, 7 * DAY)
    assert [week.parse(t) for t in ("1", "1s", "7d", "1h30m", 60)] == [1, 1, 7 * DAY, 5400, 60]
    with pytest.raises(ValueError, match="out of range"):
        week.parse("7d1s")
    with pytest.raises(ValueError, match="too large"):
        parse_duration("1" * 400 + "d")
