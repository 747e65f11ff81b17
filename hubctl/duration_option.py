"""hubctl's duration options and arguments: one parser, and the range each one allows.

A duration past its range (a 63-year freeze, `--catch-up -3`, an hour count that overflows
a timedelta) is refused while the command line is read, in one line and with exit 2, so
nothing is ever sent to the cluster with it. `--help` states every range.
"""

from __future__ import annotations

from typing import Any

import typer

from hubcluster.durations import DAY, HOUR, YEAR, DurationRange

# How long a member stays frozen, or a maintenance window stays open: a week at most, as
# an operator's plan; mongod itself takes up to 2^31 seconds.
FREEZE = DurationRange(
    1,
    7 * DAY,
    zero_hint="to unfreeze a member, run hubctl unfreeze MEMBER",
    whole_seconds=True,
)
MAINTENANCE = DurationRange(1, 7 * DAY, whole_seconds=True)
# How far back to look (`history --since`, `query hosts --stale`).
LOOKBACK = DurationRange(1, 10 * YEAR)
# maxStalenessSeconds of a secondary read: 0 (no bound), else MongoDB's floor of 90s up.
STALENESS = DurationRange(0, DAY, whole_seconds=True)
# replSetStepDown: how long the old primary stays out, and how long it waits for a
# secondary to catch up (whole seconds to mongod; shorter than the former).
STEPDOWN = DurationRange(1, DAY, whole_seconds=True)
CATCH_UP = DurationRange(1, HOUR, whole_seconds=True)
# How long hubctl waits for the cluster, and mongod's electionTimeoutMillis.
WAIT = DurationRange(0.1, HOUR)
ELECTION_TIMEOUT = DurationRange(0.1, HOUR)
# Thresholds: replication lag that counts, and the intervals hubs run on.
LAG = DurationRange(0, DAY)
INTERVAL = DurationRange(1, 7 * DAY)
# The lab: how long `lab up --for` runs, and its agents' and collector's rounds (a lab is
# watched live, so a day between rounds is already more than anyone waits for).
LAB_RUN = DurationRange(1, 7 * DAY)
LAB_INTERVAL = DurationRange(1, DAY)


class DurationParser:
    """typer's `parser` for one duration: seconds within `allowed`, or a one-line refusal.

    Whole-second ranges give an int, as mongod's commands and their messages want.
    """

    def __init__(self, allowed: DurationRange) -> None:
        self.allowed = allowed

    def __call__(self, value: Any) -> float:
        try:
            seconds = self.allowed.parse(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        return int(seconds) if self.allowed.whole_seconds else seconds


def _help(text: str, allowed: DurationRange) -> str:
    return f"{text} ({allowed.describe()})"


def duration_option(*decls: str, allowed: DurationRange, help: str) -> Any:
    """A typer.Option taking a duration in `allowed`, as seconds (float)."""
    return typer.Option(
        *decls, parser=DurationParser(allowed), metavar="DURATION", help=_help(help, allowed)
    )


def duration_argument(allowed: DurationRange, help: str, metavar: str = "DURATION") -> Any:
    """A typer.Argument taking a duration in `allowed`, as seconds (float)."""
    return typer.Argument(
        parser=DurationParser(allowed), metavar=metavar, help=_help(help, allowed)
    )
