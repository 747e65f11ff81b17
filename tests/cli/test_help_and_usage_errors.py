"""Help reads at 80 columns and every usage error is one line, in all three programs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from client_agent.cli import app as agent_app
from hub.daemon import app as hubd_app
from hubctl.app import app as hubctl_app

runner = CliRunner()
APPS = {"hubctl": hubctl_app, "hubd": hubd_app, "client-agent": agent_app}


def command_paths(command, path=()):
    """Every command and group of a program, as argument lists."""
    yield list(path)
    for name in getattr(command, "list_commands", lambda ctx: [])(None):
        yield from command_paths(command.get_command(None, name), (*path, name))


@pytest.mark.parametrize("program", APPS)
def test_every_help_is_plain_and_fits_80_columns(program):
    tree = typer.main.get_command(APPS[program])
    paths = list(command_paths(tree))
    assert len(paths) >= 3
    for path in paths:
        result = runner.invoke(APPS[program], [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.output)
        text = result.stdout
        assert text.startswith("Usage: "), (path, text)
        assert "<bool>" not in text, (path, text)  # flags carry no type label
        assert "(later)" not in text, (path, text)
        assert not any(ch in text for ch in "╭│╰"), (path, text)  # no rich panels
        assert max(len(line) for line in text.splitlines()) <= 80, (path, text)


ONE_LINE_USAGE_ERRORS = [
    ("hubctl", ["freeze", "hub1", "5 minutes"], "error: Invalid value for 'SECONDS': not a"),
    ("hubctl", ["freeze", "hub1", "-5m"], "error: No such option: -5"),
    ("hubctl", ["freeze"], "error: Missing argument 'member'. (see hubctl freeze --help)"),
    ("hubctl", ["status", "--bogus"], "error: No such option: --bogus"),
    ("hubctl", ["stauts"], "error: No such command 'stauts'. Did you mean 'status'?"),
    ("hubctl", ["query", "hosts", "--stale"], "error: Option '--stale' requires an argument"),
    ("hubctl", ["status", "--timeout", "soon"], "error: Invalid value for '--timeout': not a"),
    ("hubd", ["run", "--bogus"], "hubd: error: No such option: --bogus"),
    ("client-agent", ["bootstrap"], "client-agent: error: Missing argument 'hub'."),
]


@pytest.mark.parametrize("program, args, start", ONE_LINE_USAGE_ERRORS)
def test_usage_errors_are_one_line_exit_2(program, args, start):
    result = runner.invoke(APPS[program], args, env={"COLUMNS": "80"}, prog_name=program)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(start), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_a_usage_error_from_a_real_shell_is_one_line():
    hubctl = Path(sys.executable).parent / "hubctl"  # the console script pip made
    done = subprocess.run(
        [str(hubctl), "freeze", "hub1", "-5m"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == ["error: No such option: -5 (see hubctl freeze --help)"]
