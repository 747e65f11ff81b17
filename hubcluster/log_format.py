"""hubd's log lines: text (the default, journald-friendly) or one JSON object per line.

The JSON form carries the same sentence as the text form, with the time, level, hub and
logger beside it, and any fields a log call gives in `extra` (such as round or host).
"""

from __future__ import annotations

import datetime as dt
import json
import logging

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What a LogRecord holds anyway; anything else on it came from a call's `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonLines(logging.Formatter):
    def __init__(self, hub: str) -> None:
        super().__init__()
        self.hub = hub

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.UTC)
        line: dict[str, object] = {
            "time": when.isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "hub": self.hub,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def use_log_format(name: str, hub: str) -> None:
    """Switch every handler of the root logger to `name` (one of FORMATS)."""
    formatter = JsonLines(hub) if name == "json" else logging.Formatter(TEXT_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
