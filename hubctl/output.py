"""How hubctl speaks: rich tables for people, JSON for scripts, one clear line on failure."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any, NoReturn

import typer
from rich import table as rich_table
from rich.console import Console
from rich.markup import escape

from hubcluster.durations import format_duration
from hubcluster.exit_codes import EXIT_FAILED as EXIT_FAILED
from hubcluster.exit_codes import EXIT_UNREACHABLE as EXIT_UNREACHABLE
from hubcluster.exit_codes import EXIT_USAGE as EXIT_USAGE

# The command modules take the shared exit statuses (re-exported above) from here, with fail().
console = Console()
err_console = Console(stderr=True)


class Table(rich_table.Table):
    """A rich table whose cells wrap instead of being cut.

    rich cuts a word wider than its column to `client…` by default; a host name, hub name
    or address cut short is useless, so at 80 columns they fold onto the next line.
    """

    def add_column(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("overflow", "fold")
        super().add_column(*args, **kwargs)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    # The message is text, not markup: an address like [::1]:27017 must show as it is.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def say(message: str) -> None:
    console.print(message, highlight=False, soft_wrap=True)


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, default=_default) + "\n")


def ago(when: dt.datetime | None, now: dt.datetime | None = None) -> str:
    if when is None:
        return "-"
    now = now or dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    seconds = (when - now).total_seconds()
    text = format_duration(abs(seconds))
    return f"in {text}" if seconds > 0 else f"{text} ago"
