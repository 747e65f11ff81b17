"""How the hub asks a client's report service for reports: the one shape both sides use.

One ask, `reports --since N [--limit M] [--epoch E]`, is answered with the spool's records
after N as JSON lines. It travels one of two ways:

- as the command of its own SSH channel, answered until EOF and an exit status (the way
  every client understands);
- as one line on a long-lived `reports --stream` channel, answered by the JSON lines and
  then one line of its own: `#end`, or `#error <why>` where the command would have
  failed. A report line is a JSON object, so it never starts with `#`. A stream saves
  the channel's open, exec, EOF, exit status and close on every pull after the first: on
  a kept connection those packets were most of the collector's CPU per client.

A client from before streams refuses `reports --stream` as a bad command; the hub then asks
that connection the old way.
"""

from __future__ import annotations

import re
import shlex
from typing import NamedTuple

# A spool's epoch, as the spool makes it and every reader checks it.
EPOCH = re.compile(r"^[0-9A-Za-z-]{1,64}$")
DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000
USAGE = "usage: reports --since N [--limit M] [--epoch E], or reports --stream"
STREAM_COMMAND = "reports --stream"
END_LINE = "#end"
ERROR_PREFIX = "#error "
# An ask is one short line; a longer one is refused, not read on.
MAX_ASK_BYTES = 512


class ReportsAsk(NamedTuple):
    since: int
    limit: int
    epoch: str | None = None  # None: a hub from before epochs


def reports_command(since: int, limit: int, epoch: str = "") -> str:
    """The ask as its command text; without an epoch for a cursor from before epochs."""
    command = f"reports --since {since} --limit {limit}"
    return f"{command} --epoch {epoch}" if epoch else command


def parse_reports_command(command: str) -> ReportsAsk:
    """The ask of a `reports` command; ValueError with a usage message otherwise."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ValueError(f"{exc}; {USAGE}") from None
    if not words or words[0] != "reports":
        raise ValueError(f"unknown command {command[:60]!r}; {USAGE}")
    values: dict[str, int] = {}
    epoch = None
    rest = words[1:]
    while rest:
        option = rest.pop(0)
        if option not in ("--since", "--limit", "--epoch") or not rest or option in values:
            raise ValueError(f"unexpected {option!r}; {USAGE}")
        text = rest.pop(0)
        if option == "--epoch":
            if epoch is not None or not EPOCH.match(text):
                raise ValueError(f"--epoch needs one spool epoch, got {text[:70]!r}")
            epoch = text
            continue
        if not text.isdigit() or len(text) > 19:
            raise ValueError(
                f"{option} needs a non-negative integer (19 digits at most), got {text[:30]!r}"
            )
        values[option] = int(text)
    if "--since" not in values:
        raise ValueError(f"--since is required; {USAGE}")
    limit = values.get("--limit", DEFAULT_LIMIT)
    if not 0 < limit <= MAX_LIMIT:
        raise ValueError(f"--limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return ReportsAsk(values["--since"], limit, epoch)


def error_line(why: str) -> str:
    """A stream's answer to an ask it refuses: one line, whatever `why` holds."""
    return f"{ERROR_PREFIX}{' '.join(why.split())[:400]}\n"
