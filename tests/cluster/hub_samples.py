"""What the load test reads off a running hubd: memory, open files, and its log.

Kept apart from the test so that the judgements (growth, tracebacks, overrun lines) have
fast tests of their own: a slow test whose checks cannot fail would prove nothing.
"""

from __future__ import annotations

import os
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

# The one line hubd writes when a round outlasts its interval (hub/node.py _overran).
OVERRUN_LINE = re.compile(
    r"round took (\d+\.\d) s, longer than the ([\d.]+) s interval; next round starts now"
)


@dataclass(frozen=True)
class Sample:
    rss_mb: float
    fds: int


def sample(pid: int) -> Sample:
    """A process's resident memory (VmRSS) and its count of open file descriptors."""
    status = Path(f"/proc/{pid}/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return Sample(kb / 1024, len(os.listdir(f"/proc/{pid}/fd")))


def growth(values: list[float]) -> float:
    """How much a per-round series grew once warm: the median of its last third minus the
    median of its second third (the first third is start-up: connections, caches, imports).

    Medians, so that one busy round (a burst of agent runs, a reconnect) moves nothing;
    a leak moves every round after it, and so the median.
    """
    if len(values) < 6:
        raise ValueError(f"{len(values)} samples: too few to judge growth (at least 6)")
    third = len(values) // 3
    return statistics.median(values[-third:]) - statistics.median(values[third : 2 * third])


def tracebacks(text: str) -> list[str]:
    """Each traceback in a log, as one line: the log line before it, where, and what."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        if not line.startswith("Traceback (most recent call last):"):
            continue
        where, what = "?", "?"
        for following in lines[i + 1 :]:
            if following.startswith("  File "):
                where = following.strip()
            elif following and not following.startswith(" "):
                what = following.strip()
                break
        before = next(
            (lines[j] for j in range(i - 1, -1, -1) if lines[j] and lines[j][0].isdigit()), ""
        )
        found.append(f"{what} | {where} | after: {before[:160]}")
    return found


def overrun_lines(text: str) -> list[float]:
    """The seconds each overrun line in a log reports."""
    return [float(m.group(1)) for m in OVERRUN_LINE.finditer(text)]
