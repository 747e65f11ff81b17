"""`hubctl lab`, imported only when it runs.

The lab runs the replica-set stand-in, which needs the `lab` extra (mockupdb, mongomock).
A hub installs hubcluster without extras, and its `hubctl status`, `check` and
`init-replset` must work there, so no other command may import the lab, even indirectly.
Without the extra, `hubctl lab ...` says which extra to install, in one line, exit 2.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from hubcluster.exit_codes import EXIT_USAGE

LAB_HELP = "A local lab: the replica-set stand-in, or a whole cluster on loopback."
# What the lab needs beyond a plain install (pyproject.toml, the `lab` extra).
LAB_ONLY_MODULES = frozenset({"mockupdb", "mongomock"})
INSTALL_HINT = "hubctl lab needs the lab extra: pip install 'hubcluster[lab]'"


class LabExtraMissing(typer.TyperException):
    exit_code = EXIT_USAGE


class LazyLabGroup(TyperGroup):
    """Stands for the lab's command group in `hubctl --help`; loads it when it is used."""

    def __init__(self) -> None:
        super().__init__(name="lab", help=LAB_HELP, no_args_is_help=True, rich_markup_mode=None)
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        try:
            from hubctl.lab.commands import lab_app
        except ModuleNotFoundError as exc:
            if (exc.name or "").partition(".")[0] in LAB_ONLY_MODULES:
                raise LabExtraMissing(INSTALL_HINT) from None
            raise
        lab_app.rich_markup_mode = None
        real = typer.main.get_command(lab_app)
        assert isinstance(real, TyperGroup)
        self.commands = real.commands
        self._loaded = True

    def list_commands(self, ctx: Any) -> list[str]:
        self._load()
        return super().list_commands(ctx)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        self._load()
        return super().get_command(ctx, cmd_name)
