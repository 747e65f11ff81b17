"""The replica set the three stand-in servers share: members, elections, replication.

It follows mongod's rules where a client can see them: a member that stops hearing a
primary for `election_timeout` calls an election, which needs a majority of votes, the most
recent oplog, priority > 0, and no freeze or stepdown period; the highest priority wins.
A primary that cannot see a majority for `election_timeout` steps down. Writes replicate at
once to every member the primary can reach; a member that comes back catches up, or rolls
back what only it has (writes an isolated old primary accepted alone).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bson import Timestamp

from hubctl.lab.standin.errors import (
    CommandError,
    interrupted_by_state_change,
    not_primary,
    not_yet_initialized,
    write_concern_timeout,
)
from hubctl.lab.standin.storage import Entry, MemberStore

STARTUP, PRIMARY, SECONDARY, DOWN = 0, 1, 2, 8
STATE_STR = {
    STARTUP: "STARTUP",
    PRIMARY: "PRIMARY",
    SECONDARY: "SECONDARY",
    DOWN: "(not reachable/healthy)",
}
TICK = 0.02


@dataclass
class OplogEntry:
    term: int
    counter: int
    wall: float
    entries: list[Entry]

    @property
    def optime(self) -> tuple[int, int]:
        return (self.term, self.counter)


@dataclass
class Member:
    index: int
    name: str
    store: MemberStore = field(default_factory=MemberStore)
    alive: bool = True
    isolated: bool = False
    state: int = STARTUP
    priority: float = 1.0
    votes: int = 1
    frozen_until: float = 0.0
    stepdown_until: float = 0.0
    primary_seen_at: float = 0.0
    majority_seen_at: float = 0.0
    takeover_since: float | None = None
    election_time: float = 0.0
    election_term: int = 0
    started_at: float = field(default_factory=time.time)
    oplog: list[OplogEntry] = field(default_factory=list)

    @property
    def last_optime(self) -> tuple[int, int]:
        return self.oplog[-1].optime if self.oplog else (0, 0)

    @property
    def last_wall(self) -> float:
        return self.oplog[-1].wall if self.oplog else self.started_at


def _date(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None)


def _optime_doc(entry: OplogEntry | None) -> dict[str, Any]:
    if entry is None:
        return {"ts": Timestamp(0, 0), "t": -1}
    return {"ts": Timestamp(int(entry.wall), entry.counter % (1 << 31)), "t": entry.term}


class ReplicaSetModel:
    """Shared state of the stand-in's members; every method is safe to call from any thread."""

    def __init__(
        self,
        names: list[str],
        set_name: str = "CFEngineNova",
        election_timeout: float = 10.0,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.set_name = set_name
        self.members = [Member(i, n) for i, n in enumerate(names)]
        self.default_election_timeout = election_timeout
        self.election_timeout = election_timeout
        self.config: dict[str, Any] | None = None
        self.term = 0
        self.counter = 0
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._on_event = on_event or (lambda _msg: None)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="standin-ticker", daemon=True)
        self._ticker.start()

    # ----- topology -----------------------------------------------------------------------
    def member(self, name_or_index: str | int) -> Member:
        for m in self.members:
            if str(name_or_index) in (m.name, str(m.index)):
                return m
        names = ", ".join(m.name for m in self.members)
        raise KeyError(f"no member {name_or_index!r} (members: {names})")

    def sees(self, a: Member, b: Member) -> bool:
        if a is b:
            return a.alive
        return a.alive and b.alive and not a.isolated and not b.isolated

    def component(self, m: Member) -> list[Member]:
        return [o for o in self.members if self.sees(m, o)]

    def has_majority(self, group: list[Member]) -> bool:
        total = sum(m.votes for m in self.members)
        return sum(m.votes for m in group) * 2 > total

    def primary_seen_by(self, m: Member) -> Member | None:
        primaries = [o for o in self.component(m) if o.state == PRIMARY]
        return max(primaries, key=lambda o: o.election_time, default=None)

    def _event(self, msg: str) -> None:
        self._on_event(msg)
        self.changed.notify_all()

    # ----- control: what a crash, a restart or a network cut does -----------------------------
    def kill(self, name: str | int) -> Member:
        with self.lock:
            m = self.member(name)
            m.alive = False
            m.state = DOWN
            m.store.cursors.clear()
            self._event(f"{m.name} killed")
            return m

    def revive(self, name: str | int) -> Member:
        with self.lock:
            m = self.member(name)
            if not m.alive:
                m.alive = True
                m.started_at = time.time()
                m.state = STARTUP if self.config is None else SECONDARY
                m.primary_seen_at = time.time()
                self._event(f"{m.name} revived")
            return m

    def isolate(self, name: str | int) -> Member:
        with self.lock:
            m = self.member(name)
            m.isolated = True
            m.primary_seen_at = time.time()
            self._event(f"{m.name} isolated from its peers")
            return m

    def heal(self, name: str | int) -> Member:
        with self.lock:
            m = self.member(name)
            m.isolated = False
            m.primary_seen_at = time.time()
            self._event(f"{m.name} rejoined its peers")
            return m

    # ----- elections ----------------------------------------------------------------------
    def _electable(self, m: Member, now: float) -> bool:
        return (
            m.alive
            and m.state == SECONDARY
            and m.priority > 0
            and now >= m.frozen_until
            and now >= m.stepdown_until
        )

    def _elect(self, m: Member, now: float, why: str) -> None:
        for other in self.component(m):
            if other.state == PRIMARY:
                other.state = SECONDARY
        self.term += 1
        m.state = PRIMARY
        m.election_time = now
        m.election_term = self.term
        m.majority_seen_at = now
        m.takeover_since = None
        self._event(f"{m.name} elected primary in term {self.term} ({why})")

    def _step_down(self, m: Member, why: str) -> None:
        m.state = SECONDARY
        m.primary_seen_at = time.time()
        self._event(f"{m.name} stepped down ({why})")

    def _tick_loop(self) -> None:
        while not self._stop.wait(TICK):
            with self.lock:
                self.tick(time.time())

    def tick(self, now: float, handoff: bool = False) -> None:
        if self.config is None:
            return
        for m in self.members:
            if not m.alive:
                continue
            group = self.component(m)
            if m.state == PRIMARY:
                newer = [
                    o for o in group if o.state == PRIMARY and o.election_time > m.election_time
                ]
                if newer:
                    self._step_down(m, f"saw newer primary {newer[0].name}")
                elif self.has_majority(group):
                    m.majority_seen_at = now
                elif now - m.majority_seen_at >= self.election_timeout:
                    self._step_down(m, "cannot see a majority of the set")
            elif m.state == SECONDARY and self.primary_seen_by(m) is not None:
                m.primary_seen_at = now
        self._replicate()
        self._elections(now, handoff)

    def _elections(self, now: float, handoff: bool) -> None:
        candidates = sorted(
            (m for m in self.members if self._electable(m, now)),
            key=lambda m: (-m.priority, m.index),
        )
        for m in candidates:
            group = self.component(m)
            if not self.has_majority(group):
                continue
            if m.last_optime < max(o.last_optime for o in group):
                continue
            primary = self.primary_seen_by(m)
            if primary is None:
                if handoff or now - m.primary_seen_at >= self.election_timeout:
                    self._elect(m, now, "handoff" if handoff else "no primary seen")
                    return
            elif m.priority > primary.priority:
                if m.takeover_since is None:
                    m.takeover_since = now
                elif now - m.takeover_since >= self.election_timeout:
                    self._elect(m, now, f"priority takeover from {primary.name}")
                    return
            else:
                m.takeover_since = None

    # ----- replication -------------------------------------------------------------------
    def _replicate(self) -> None:
        for p in self.members:
            if p.state != PRIMARY or not p.alive:
                continue
            for m in self.component(p):
                if m is not p and m.state == SECONDARY:
                    self._catch_up(m, p)

    def _catch_up(self, m: Member, source: Member) -> None:
        n = len(m.oplog)
        if n == len(source.oplog) and m.last_optime == source.last_optime:
            return
        shared = n <= len(source.oplog) and (n == 0 or source.oplog[n - 1].optime == m.last_optime)
        if not shared:
            # What only this member holds was never majority-committed: roll it back.
            self._event(f"{m.name} rolled back {n} oplog entries and resynced from {source.name}")
            m.store.wipe()
            m.oplog = []
            n = 0
        for entry in source.oplog[n:]:
            m.store.apply(entry.entries)
            m.oplog.append(entry)

    def write(
        self,
        name: str,
        op: Callable[[MemberStore], tuple[dict, list[Entry]]],
        write_concern: dict | None,
    ) -> dict:
        """Run a write on the primary, replicate it, and honour the write concern."""
        with self.lock:
            m = self.member(name)
            if self.config is None:
                raise not_yet_initialized()
            if m.state != PRIMARY:
                raise not_primary()
            reply, entries = op(m.store)
            if not entries:
                return reply
            self.counter += 1
            m.oplog.append(OplogEntry(self.term, self.counter, time.time(), entries))
            written = m.oplog[-1]
            self._replicate()
            need = self._acks_needed(write_concern)
            wtimeout = float((write_concern or {}).get("wtimeout") or 0) / 1000.0
            deadline = time.time() + wtimeout if wtimeout else None
            while self._acks(written) < need:
                if m.state != PRIMARY or not m.alive:
                    raise interrupted_by_state_change()
                if deadline is not None and time.time() >= deadline:
                    reply["writeConcernError"] = write_concern_timeout()
                    break
                self.changed.wait(TICK)
            return reply

    def _acks_needed(self, write_concern: dict | None) -> int:
        w = (write_concern or {}).get("w", 1)
        if w == "majority":
            return sum(x.votes for x in self.members) // 2 + 1
        return int(w) if isinstance(w, int) else 1

    def _acks(self, entry: OplogEntry) -> int:
        count = 0
        for m in self.members:
            index = len(m.oplog) - 1
            while index >= 0 and m.oplog[index].optime > entry.optime:
                index -= 1
            if m.alive and index >= 0 and m.oplog[index].optime == entry.optime:
                count += 1
        return count

    def readable(self, name: str, secondary_ok: bool) -> Member:
        m = self.member(name)
        if self.config is None and not secondary_ok:
            raise not_yet_initialized()
        if m.state != PRIMARY and not secondary_ok:
            raise CommandError(
                13435, "NotPrimaryNoSecondaryOk", "not primary and secondaryOk=false"
            )
        return m

    def stop(self) -> None:
        self._stop.set()
        self._ticker.join(timeout=2)
