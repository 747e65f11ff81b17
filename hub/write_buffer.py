"""Writes that must reach the primary wherever it is, held while there is none.

Last-seen stamps and events happen on every hub, also while the set has no primary; they
are kept in memory (bounded) and flushed when a primary takes them, oldest first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from pymongo.errors import PyMongoError

T = TypeVar("T")
log = logging.getLogger("hubcluster.write_buffer")


class WriteBuffer(Generic[T]):
    def __init__(self, name: str, write: Callable[[list[T]], object], limit: int = 100_000) -> None:
        self.name = name
        self._write = write
        self._limit = limit
        self._items: list[T] = []
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, item: T) -> None:
        with self._lock:
            self._items.append(item)
            if len(self._items) > self._limit:
                # Keep the newest: for stamps and events, recent is what an operator needs.
                excess = len(self._items) - self._limit
                del self._items[:excess]
                self.dropped += excess
                log.warning("%s buffer full: dropped %d oldest entries", self.name, excess)

    def __len__(self) -> int:
        return len(self._items)

    def flush(self) -> bool:
        """Write what is pending; returns False (keeping it all) when no primary took it."""
        with self._lock:
            items, self._items = self._items, []
        if not items:
            return True
        try:
            self._write(items)
        except PyMongoError as exc:
            with self._lock:
                self._items[:0] = items
            log.debug("%s: %d pending, no primary took them (%s)", self.name, len(items), exc)
            return False
        return True
