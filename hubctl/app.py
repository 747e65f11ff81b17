"""The hubctl entry point: one typer app assembled from the command modules."""

from __future__ import annotations

from typing import Any

from hubcluster.usage_errors import OneLineErrors, command_app
from hubctl import (
    check_command,
    fleet_commands,
    member_commands,
    query_commands,
    remediation_commands,
    replset_commands,
)
from hubctl.lab_loader import LazyLabGroup


class HubctlGroup(OneLineErrors):
    """hubctl's commands, and `lab`, which is imported only when it is run."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.add_command(LazyLabGroup())


app = command_app(
    "Operate a hubcluster: replica set, collector, keys, masterfiles, history, lab.",
    group=HubctlGroup,
)
replset_commands.register(app)
query_commands.register(app)
fleet_commands.register(app)
check_command.register(app)
member_commands.register(app)
remediation_commands.register(app)


def main() -> None:
    app()
