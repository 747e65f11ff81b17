"""Human durations such as `4h`, `90s`, `1h30m`, as operators type them, and their ranges."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
YEAR = 365 * DAY

_UNITS = {"ms": 0.001, "s": 1.0, "m": MINUTE, "h": HOUR, "d": DAY}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", re.ASCII)
_NUMBER = re.compile(r"\d+(\.\d+)?", re.ASCII)


def parse_duration(text: str | int | float) -> float:
    """Seconds in `text`; a bare number means seconds. Raises ValueError naming the input."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"a duration cannot be negative: {text!r}")
        return _finite(float(text), text)
    cleaned = text.strip().lower().replace(" ", "")
    if _NUMBER.fullmatch(cleaned):
        return _finite(float(cleaned), text)
    pos, total = 0, 0.0
    for match in _PART.finditer(cleaned):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not cleaned or pos != len(cleaned):
        shown = f"{text!r:.60}"
        if cleaned.startswith("-"):
            raise ValueError(f"a duration cannot be negative: {shown}")
        raise ValueError(
            f"not a duration: {shown} (use a number of seconds or forms like 90s, 15m, 4h, 1h30m)"
        )
    return _finite(total, text)


def _finite(seconds: float, text: object) -> float:
    # Digits enough overflow a float to inf, which no clock or timedelta can take.
    if not math.isfinite(seconds):
        raise ValueError(f"not a duration: {text!r:.60} is too large")
    return seconds


@dataclass(frozen=True)
class DurationRange:
    """What one duration setting accepts: from `low` to `high` seconds, both included.

    Stated next to the option or key that uses it, so that a value no clock, timedelta or
    mongod would take is refused in one line before anything acts on it.
    """

    low: float
    high: float
    # Said instead when 0 is refused, if zero means something done another way (freeze).
    zero_hint: str = ""
    # mongod takes some durations in whole seconds only; 1.5s must not quietly become 1s.
    whole_seconds: bool = False

    def describe(self) -> str:
        return f"{format_bound(self.low)} to {format_bound(self.high)}"

    def parse(self, text: str | int | float) -> float:
        """Seconds in `text`, or ValueError naming the input and this range."""
        seconds = parse_duration(text)
        if seconds == 0 and self.low > 0 and self.zero_hint:
            raise ValueError(f"{text!r:.60}: {self.zero_hint}")
        if not self.low <= seconds <= self.high:
            raise ValueError(f"{text!r:.60} is out of range: {self.describe()}")
        if self.whole_seconds and seconds != int(seconds):
            raise ValueError(f"{text!r:.60} is not a whole number of seconds")
        return seconds


def format_bound(seconds: float) -> str:
    """A range bound as an operator would type it: `100ms`, `1s`, `7d`, `3650d`."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    return format_duration(seconds)


def format_duration(seconds: float) -> str:
    """Short human form of a number of seconds: `4h`, `1h30m`, `45s`, `0.35s`."""
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.2f}s"
    rest = int(round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    if rest or not parts:
        parts.append(f"{rest}s")
    return "".join(parts)
