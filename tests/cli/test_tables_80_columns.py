"""Tables at 80 columns: long hub names and addresses wrap onto more lines, never cut."""

from __future__ import annotations

from typer.testing import CliRunner

from hubctl.app import app

runner = CliRunner()


def column(stdout: str, index: int) -> str:
    """The text of one table column, its wrapped pieces joined again."""
    rows = [line for line in stdout.splitlines() if line.startswith("│")]
    return "".join(line.split("│")[index].strip() for line in rows)


def test_status_wraps_long_hub_names_and_addresses(standin):
    names = [f"hub-{i}-in-the-north-datacenter-rack-{i}{i}" for i in range(1, 4)]
    members = [
        a for n, h in zip(names, standin.hosts, strict=True) for a in ("--member", f"{n}={h}")
    ]
    users = ["--create-users", str(standin.passwords_dir)]
    init = runner.invoke(app, ["init-replset", *members, "--election-timeout", "500ms", *users])
    assert init.exit_code == 0, init.output
    result = runner.invoke(app, ["status", "--mongo", standin.uri], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 80, result.stdout
    assert "…" not in result.stdout, result.stdout
    assert column(result.stdout, 1) == "".join(names)
    assert column(result.stdout, 2) == "".join(standin.hosts)
