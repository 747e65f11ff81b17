"""The hubctl entry point: one typer app assembled from the command modules."""

from __future__ import annotations

import typer

from hubctl import check_command, fleet_commands, query_commands, replset_commands
from hubctl.lab import commands as lab_commands

app = typer.Typer(
    help="Operate a hubcluster: replica set, collector, keys, masterfiles, history, lab.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
replset_commands.register(app)
query_commands.register(app)
fleet_commands.register(app)
app.command("check")(check_command.check)
app.add_typer(lab_commands.lab_app, name="lab")


def main() -> None:
    app()
