"""One line for a usage error, in every hubcluster command (hubctl, hubd, client-agent).

typer prints what it finds wrong on a command line itself (an unknown option, a missing
argument, a value its parser refused) as a usage block or a boxed panel over several lines,
while everything the commands say about a failure is one line. These groups make typer's
own complaints one line too, `error: <what>`, with exit status 2 (EXIT_USAGE), and print
help as plain text (no boxes, no `<bool>` labels on flags) so that it reads at 80 columns.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

# typer's vendored click: the help it raises for a bare `hubctl` is no error, and a
# missing argument is a "bad parameter" that still deserves the pointer to --help.
from typer._click.core import Context
from typer._click.exceptions import MissingParameter, NoArgsIsHelpError
from typer.core import TyperGroup

from hubcluster.exit_codes import EXIT_USAGE


def usage_line(exc: typer.TyperException) -> str:
    """The one line to print for typer's complaint `exc`."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    # A refused value names its option already; a missing or unknown one sends to --help.
    refused = isinstance(exc, typer.BadParameter) and not isinstance(exc, MissingParameter)
    if ctx is None or refused:
        return message
    return f"{message} (see {ctx.command_path} --help)"


class OneLineErrors(TyperGroup):
    """A typer group that reports command-line errors in one line (see the module doc).

    `prefix` is how the program starts a line on stderr (command_app sets it).
    """

    prefix = "error: "

    def report(self, exc: typer.TyperException) -> typer.Exit:
        if isinstance(exc, NoArgsIsHelpError):
            sys.stderr.write(exc.format_message() + "\n")
            return typer.Exit(EXIT_USAGE)
        sys.stderr.write(f"{self.prefix}{usage_line(exc)}\n")
        return typer.Exit(getattr(exc, "exit_code", EXIT_USAGE))

    # Both halves of a run can find the command line wrong: parsing this group's own
    # arguments (make_context) and parsing the subcommand's (inside invoke).
    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Context | None = None,
        **extra: Any,
    ) -> Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except typer.TyperException as exc:
            raise self.report(exc) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except typer.TyperException as exc:
            raise self.report(exc) from None


def command_app(
    help: str, prefix: str = "error: ", group: type[OneLineErrors] = OneLineErrors
) -> typer.Typer:
    """The typer app of one hubcluster program: plain help, one-line usage errors."""
    return typer.Typer(
        cls=type(group.__name__, (group,), {"prefix": prefix}),
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # Plain help: rich's panels label flags `<bool>` and cut long defaults at 80 columns.
        rich_markup_mode=None,
    )
