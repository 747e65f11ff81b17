"""CFEngine-style hard classes of this host and time (expressions: hubcluster.class_expressions)."""

from __future__ import annotations

import platform
import re
import socket
from datetime import datetime

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def canonify(text: str) -> str:
    """CFEngine's canonify(): anything that cannot appear in a class name becomes `_`."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def time_classes(now: datetime) -> set[str]:
    """The time classes of `now`, read from its own wall clock (tests pass explicit datetimes)."""
    hour, minute = now.hour, now.minute
    start = minute - minute % 5
    quarter = minute // 15 + 1
    return {
        "any",
        _WEEKDAYS[now.weekday()],
        f"Hr{hour:02d}",
        f"Min{minute:02d}",
        f"Min{start:02d}_{(start + 5) % 60:02d}",
        f"Q{quarter}",
        f"Hr{hour:02d}_Q{quarter}",
        f"Day{now.day}",
        _MONTHS[now.month - 1],
        f"Yr{now.year}",
    }


def host_classes(hostname: str | None = None) -> set[str]:
    """The host's name (full and short, canonified), its OS, and `any`."""
    name = hostname if hostname is not None else socket.gethostname()
    found = {"any"}
    if name:
        found.add(canonify(name))
        found.add(canonify(name.split(".", 1)[0]))
    system = platform.system().lower()
    if system:
        found.add(canonify(system))
    return found
