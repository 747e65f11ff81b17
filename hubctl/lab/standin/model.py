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
    shutting_down,
    unknown_write_concern,
    unsatisfiable_write_concern,
    write_concern_timeout,
)
from hubctl.lab.standin.storage import Entry, MemberStore

STARTUP, PRIMARY, SECONDARY, DOWN, REMOVED = 0, 1, 2, 8, 10
STATE_STR = {
    STARTUP: "STARTUP",
    PRIMARY: "PRIMARY",
    SECONDARY: "SECONDARY",
    DOWN: "(not reachable/healthy)",
    REMOVED: "REMOVED",
}
TICK = 0.02


@dataclass
class OplogEntry:
    term: int
    counter: int
    wall: float
    entries: list[Entry]
    # A retryable write's (lsid, txnNumber) and its reply: replicated with the write, so a
    # retry on the next primary answers the first outcome instead of writing twice.
    txn: tuple | None = None
    reply: dict | None = None

    @property
    def optime(self) -> tuple[int, int]:
        return (self.term, self.counter)


@dataclass(eq=False)  # a member is itself: compared and hashed by identity
class Member:
    index: int
    name: str
    # The address the set's config gives this member (clients see it); `name` stays the
    # 127.0.0.1 address the stand-in listens on.
    host: str = ""
    in_config: bool = False
    tags: dict[str, str] = field(default_factory=dict)
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
    retried: dict[tuple, OplogEntry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.host = self.host or self.name

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
        # hello's topologyVersion.counter: every event a client could see bumps it, which
        # answers the awaitable hellos waiting on `changed`.
        self.topology_version = 0
        self.closed = False
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._on_event = on_event or (lambda _msg: None)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="standin-ticker", daemon=True)
        self._ticker.start()

    # ----- topology -----------------------------------------------------------------------
    def member(self, name_or_index: str | int) -> Member:
        wanted = str(name_or_index)
        if wanted.startswith("localhost:"):
            wanted = "127.0.0.1:" + wanted.split(":", 1)[1]
        for m in self.members:
            if wanted in (m.name, m.host, str(m.index)):
                return m
        names = ", ".join(m.name for m in self.members)
        raise KeyError(f"no member {name_or_index!r} (members: {names})")

    def sees(self, a: Member, b: Member) -> bool:
        if a is b:
            return a.alive
        return a.alive and b.alive and not a.isolated and not b.isolated

    def component(self, m: Member) -> list[Member]:
        return [o for o in self.members if self.sees(m, o)]

    def voters(self) -> list[Member]:
        return [m for m in self.members if m.in_config and m.votes]

    def has_majority(self, group: list[Member]) -> bool:
        total = sum(m.votes for m in self.voters())
        return sum(m.votes for m in group if m.in_config) * 2 > total

    def primary_seen_by(self, m: Member) -> Member | None:
        primaries = [o for o in self.component(m) if o.state == PRIMARY]
        return max(primaries, key=lambda o: o.election_time, default=None)

    def _event(self, msg: str) -> None:
        self.topology_version += 1
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
                m.state = SECONDARY if m.in_config else (REMOVED if self.config else STARTUP)
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
            m.retried = {}
            n = 0
        for entry in source.oplog[n:]:
            m.store.apply(entry.entries)
            m.oplog.append(entry)
            if entry.txn is not None:
                m.retried[entry.txn] = entry

    def write(
        self,
        name: str,
        op: Callable[[MemberStore], tuple[dict, list[Entry]]],
        write_concern: dict | None,
        txn: tuple | None = None,
    ) -> dict:
        """Run a write on the primary, replicate it, and honour the write concern.

        `txn` is a retryable write's (lsid id, txnNumber): a retry of one already applied
        here (or replicated here from the primary that applied it) is answered, not redone.
        """
        with self.lock:
            m = self.member(name)
            if self.config is None:
                raise not_yet_initialized()
            if m.state != PRIMARY:
                raise not_primary()
            satisfied = self._write_concern_rule(write_concern)
            done = m.retried.get(txn) if txn is not None else None
            if done is not None:
                reply, written = dict(done.reply or {"ok": 1}), done
            else:
                reply, entries = op(m.store)
                if not entries:
                    return reply
                self.counter += 1
                written = OplogEntry(self.term, self.counter, time.time(), entries, txn, reply)
                m.oplog.append(written)
                if txn is not None:
                    m.retried[txn] = written
                self._replicate()
                reply = dict(reply)
            if isinstance(satisfied, dict):
                # mongod applies the write, then reports the concern it can never meet.
                reply["writeConcernError"] = satisfied
                return reply
            wtimeout = float((write_concern or {}).get("wtimeout") or 0) / 1000.0
            deadline = time.time() + wtimeout if wtimeout else None
            # Condition.wait releases the lock: other connections are served while this waits.
            while not satisfied(self._holders(written)):
                if m.state != PRIMARY or not m.alive:
                    raise interrupted_by_state_change()
                if self.closed:
                    raise shutting_down()
                if deadline is not None and time.time() >= deadline:
                    reply["writeConcernError"] = write_concern_timeout()
                    break
                self.changed.wait(TICK)
            return reply

    def _write_concern_rule(self, write_concern: dict | None) -> Any:
        """A test of the members holding a write, or the writeConcernError it can never avoid."""
        w = (write_concern or {}).get("w", 1)
        if w == "majority":
            need = sum(x.votes for x in self.voters()) // 2 + 1
            return lambda holders: sum(1 for x in holders if x.votes) >= need
        if isinstance(w, int) and not isinstance(w, bool):
            bearing = sum(1 for x in self.members if x.in_config)
            if w > bearing:
                return unsatisfiable_write_concern("Not enough data-bearing nodes")
            return lambda holders: len(holders) >= w
        modes = ((self.config or {}).get("settings") or {}).get("getLastErrorModes") or {}
        if not isinstance(w, str) or w not in modes:
            return unknown_write_concern(w)
        mode = modes[w]

        def tagged(holders: list[Member]) -> bool:
            return all(
                len({x.tags[tag] for x in holders if tag in x.tags}) >= int(count)
                for tag, count in mode.items()
            )

        return tagged

    def _holders(self, entry: OplogEntry) -> list[Member]:
        held = []
        for m in self.members:
            index = len(m.oplog) - 1
            while index >= 0 and m.oplog[index].optime > entry.optime:
                index -= 1
            if m.alive and m.in_config and index >= 0 and m.oplog[index].optime == entry.optime:
                held.append(m)
        return held

    def readable(self, name: str, secondary_ok: bool) -> Member:
        m = self.member(name)
        if (self.config is None or not m.in_config) and not secondary_ok:
            raise not_yet_initialized()
        if m.state != PRIMARY and not secondary_ok:
            raise CommandError(
                13435, "NotPrimaryNoSecondaryOk", "not primary and secondaryOk=false"
            )
        return m

    def stop(self) -> None:
        with self.lock:
            self.closed = True
            self.changed.notify_all()
        self._stop.set()
        self._ticker.join(timeout=2)
