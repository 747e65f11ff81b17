"""asyncssh's log calls, made to cost nothing when no handler would see them.

asyncssh turns every log call's arguments into text before asking whether its logger is
enabled (`SSHLogger.log`), and describes every packet it sends or receives (type name, size,
note) before asking whether debug level 3 wants packet dumps (`SSHPacketLogger`). Nothing
reads those lines when asyncssh logs at WARNING, as hubd and client-agent set it, yet a
collector paid for them on every packet of every pull (profile in benchmarks/RESULTS.md).

The guards below ask the logger first and then call asyncssh's own methods unchanged, so a
line that is logged reads exactly as before: `--log-level DEBUG` with asyncssh's logger at
DEBUG (and `asyncssh.set_debug_level(3)` for packet dumps) still shows every packet.
They wrap public method names only; on an asyncssh without them nothing is changed
(tests/sshsvc/test_ssh_logging.py says so on the pinned version).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from asyncssh import logging as asyncssh_logging
from asyncssh import packet as asyncssh_packet

# asyncssh's methods as they were before the guards, by name (kept for the tests).
ORIGINALS: dict[str, Callable[..., None]] = {}


def _guarded_log(self: Any, level: int, msg: object, *args: Any, **kw: Any) -> None:
    if self.isEnabledFor(level):
        ORIGINALS["log"](self, level, msg, *args, **kw)


def _guarded_sent(self: Any, pkttype: int, pktid: int | None, packet: Any, note: str = "") -> None:
    if self.logger.isEnabledFor(logging.DEBUG):
        ORIGINALS["log_sent_packet"](self, pkttype, pktid, packet, note)


def _guarded_received(
    self: Any, pkttype: int, pktid: int | None, packet: Any, note: str = ""
) -> None:
    if self.logger.isEnabledFor(logging.DEBUG):
        ORIGINALS["log_received_packet"](self, pkttype, pktid, packet, note)


def guard_ssh_logging() -> bool:
    """Install the guards once per process; say whether they are in place."""
    if ORIGINALS:
        return True
    logger_cls = getattr(asyncssh_logging, "SSHLogger", None)
    packet_cls = getattr(asyncssh_packet, "SSHPacketLogger", None)
    wanted = (
        (logger_cls, "log", _guarded_log),
        (packet_cls, "log_sent_packet", _guarded_sent),
        (packet_cls, "log_received_packet", _guarded_received),
    )
    if any(cls is None or not callable(getattr(cls, name, None)) for cls, name, _ in wanted):
        return False  # another asyncssh: leave it as it is
    for cls, name, guard in wanted:
        ORIGINALS[name] = getattr(cls, name)
        setattr(cls, name, guard)
    return True


def unguard_ssh_logging() -> None:
    """Put asyncssh's own methods back (for benchmarks/ssh_ciphers.py's baseline)."""
    for name, method in ORIGINALS.items():
        cls = asyncssh_logging.SSHLogger if name == "log" else asyncssh_packet.SSHPacketLogger
        setattr(cls, name, method)
    ORIGINALS.clear()
