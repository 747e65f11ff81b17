"""Asking before a change to the cluster: a person at a terminal confirms, scripts do not.

Like patronictl: `--yes` skips the question, and so does a stdin that is not a terminal
(a script, a pipe, CI), where nobody could answer.
"""

from __future__ import annotations

import sys

import typer

from hubctl.output import fail


def confirm_or_cancel(yes: bool, what: str) -> None:
    """Ask "Go ahead?" on a terminal unless `yes`; a "no" cancels with one line, exit 1."""
    if not yes and sys.stdin.isatty() and not typer.confirm("Go ahead?"):
        fail(f"{what} cancelled; nothing was changed")
