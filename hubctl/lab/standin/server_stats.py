"""What one member counts for serverStatus: connections and mongod's opcounters."""

from __future__ import annotations

import threading
import time
from typing import Any

from bson.int64 import Int64

# mongod counts inserted documents and update/delete statements, and every command once.
_OPCOUNTER = {"find": "query", "getmore": "getmore"}
_STATEMENTS = {"insert": ("insert", "documents"), "update": ("update", "updates")}
_STATEMENTS["delete"] = ("delete", "deletes")


class ServerStats:
    def __init__(self) -> None:
        self.started = time.time()
        self._lock = threading.Lock()
        self.current = 0
        self.total = 0
        self.ops = dict.fromkeys(("insert", "query", "update", "delete", "getmore", "command"), 0)

    def opened(self) -> None:
        with self._lock:
            self.current += 1
            self.total += 1

    def closed(self) -> None:
        with self._lock:
            self.current -= 1

    def count(self, command_name: str, doc: dict[str, Any] | None = None) -> None:
        name = command_name.lower()
        with self._lock:
            if name in _STATEMENTS:
                counter, field = _STATEMENTS[name]
                self.ops[counter] += len((doc or {}).get(field) or [None])
            else:
                self.ops[_OPCOUNTER.get(name, "command")] += 1

    def connections(self) -> dict[str, Any]:
        with self._lock:
            return {
                "current": self.current,
                "available": 838_860 - self.current,
                "totalCreated": self.total,
                "active": self.current,
            }

    def opcounters(self) -> dict[str, Int64]:
        with self._lock:
            return {k: Int64(v) for k, v in self.ops.items()}
