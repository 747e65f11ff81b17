"""Tells a wrong replicaSet= in a URI at once, naming the set the members belong to.

pymongo drops a member whose set name differs from the URI's and then waits out the
whole server-selection timeout saying only that no member was found. This heartbeat
listener remembers the set name each member gave, so ReplicaSet can fail at once instead.
"""

from __future__ import annotations

import time
from typing import Any, NoReturn

from pymongo.monitoring import ServerHeartbeatListener

from hub.topology import ReplsetUnreachable


class SetNameWatch(ServerHeartbeatListener):
    """Remembers the set name each member gave (host:port -> name)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def started(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass

    def succeeded(self, event: Any) -> None:
        name = event.reply.replica_set_name
        if name:
            host, port = event.connection_id
            self.names[f"{host}:{port}"] = name

    def disagrees(self, set_name: str | None) -> bool:
        """True when a member answered with another set's name than `set_name`."""
        return bool(set_name) and any(n != set_name for n in self.names.values())

    def refuse(self, set_name: str | None, seeds: list[str]) -> NoReturn:
        """Raise ReplsetUnreachable naming the URI's set and the members' real one."""
        # The other seeds answer within milliseconds; the message names all that do.
        settle = time.monotonic() + 0.25
        while len(self.names) < len(seeds) and time.monotonic() < settle:
            time.sleep(0.01)
        others = {h: n for h, n in self.names.items() if n != set_name}
        real = ", ".join(sorted(set(others.values())))
        raise ReplsetUnreachable(
            f"wrong replica-set name: the URI says replicaSet={set_name}, but the members "
            f"belong to set {real} ({', '.join(sorted(others))})"
        )
