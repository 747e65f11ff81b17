"""The replica set as a hub sees it, and the operator's actions on it, through pymongo only.

The replica set is the source of truth for who is master; this module reads it
(replSetGetStatus / replSetGetConfig) and drives it (replSetInitiate, replSetFreeze,
replSetStepDown). Freezes and maintenance windows are also written to the database, because
mongod does not report a member's freeze to anyone, and `status` must show it.
"""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import pymongo
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)
from pymongo.read_preferences import PrimaryPreferred
from pymongo.write_concern import WriteConcern

from hub.events import now_utc, record_event
from hub.mongo import DB_NAME, connect, connect_member, seed_hosts

FREEZES = "freezes"
MAINTENANCE = "maintenance"
MAJORITY = WriteConcern("majority", wtimeout=5000)
DEFAULT_MAX_LAG = 10.0
# mongod's member states; its stateStr for 8 is "(not reachable/healthy)", too long for a table.
STATE_NAMES = {
    0: "STARTUP",
    1: "PRIMARY",
    2: "SECONDARY",
    3: "RECOVERING",
    5: "STARTUP2",
    6: "UNKNOWN",
    7: "ARBITER",
    8: "DOWN",
    9: "ROLLBACK",
    10: "REMOVED",
}


class ReplsetError(RuntimeError):
    """An operation on the set failed; the message is one line an operator can act on."""


@dataclass
class MemberView:
    name: str
    state: str
    health: bool
    priority: float
    lag_seconds: float | None
    frozen_until: dt.datetime | None = None


@dataclass
class Topology:
    set_name: str | None
    primary: str | None
    members: list[MemberView] = field(default_factory=list)
    maintenance: dict[str, Any] | None = None
    initiated: bool = True

    def member(self, name: str) -> MemberView:
        for m in self.members:
            if m.name == name:
                return m
        known = ", ".join(m.name for m in self.members) or "none"
        raise ReplsetError(f"{name} is not a member of the set (members: {known})")

    def health_code(self, max_lag: float = DEFAULT_MAX_LAG) -> int:
        """0 healthy, 1 degraded (a member down or lagging), 2 no primary."""
        if self.primary is None:
            return 2
        for m in self.members:
            if not m.health or (m.lag_seconds is not None and m.lag_seconds > max_lag):
                return 1
        return 0

    def to_json(self) -> dict[str, Any]:
        def iso(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        members = []
        for m in self.members:
            row = asdict(m)
            row["frozen_until"] = iso(m.frozen_until)
            members.append(row)
        doc: dict[str, Any] = {"set": self.set_name, "primary": self.primary, "members": members}
        if self.maintenance:
            doc["maintenance"] = {
                "member": self.maintenance["member"],
                "until": iso(self.maintenance["until"]),
            }
        return doc


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _explain(exc: PyMongoError, what: str) -> ReplsetError:
    if isinstance(exc, ServerSelectionTimeoutError):
        return ReplsetError(f"{what}: no member reachable ({str(exc).split(',')[0]})")
    if isinstance(exc, OperationFailure):
        return ReplsetError(f"{what}: {exc.details.get('errmsg', exc) if exc.details else exc}")
    return ReplsetError(f"{what}: {exc}")


class ReplicaSet:
    """One operator's handle on the set named by `uri` (a mongodb:// seed list)."""

    def __init__(self, uri: str, timeout: float = 5.0) -> None:
        self.uri = uri
        self.timeout = timeout
        self.seeds = seed_hosts(uri)
        self._client: pymongo.MongoClient | None = None

    @property
    def client(self) -> pymongo.MongoClient:
        if self._client is None:
            self._client = connect(self.uri, self.timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _member_command(
        self, member: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        with connect_member(self.uri, member, timeout or self.timeout) as client:
            return client.admin.command(*args, **kwargs)

    # ----- reading the set ----------------------------------------------------------------
    def _status_from_any_member(self) -> dict[str, Any] | None:
        """replSetGetStatus from the primary if there is one, else from a secondary.

        Returns None when the members answer but none is initiated yet.
        """
        try:
            return self.client.admin.command("replSetGetStatus", read_preference=PrimaryPreferred())
        except OperationFailure as exc:
            if exc.code != 94:  # NotYetInitialized
                raise _explain(exc, "replSetGetStatus") from None
        except ServerSelectionTimeoutError:
            pass  # nobody initiated, or nobody up: ask each seed to tell which
        with ThreadPoolExecutor(len(self.seeds)) as pool:
            answers = list(pool.map(self._probe, self.seeds))
        statuses = [a for a in answers if isinstance(a, dict)]
        if statuses:
            return statuses[0]
        if any(a is None for a in answers):
            return None
        raise ReplsetError("cannot reach any member of the set: " + "; ".join(map(str, answers)))

    def _probe(self, host: str) -> dict[str, Any] | str | None:
        try:
            return self._member_command(host, "replSetGetStatus", timeout=min(self.timeout, 2.0))
        except OperationFailure as exc:
            return None if exc.code == 94 else f"{host}: {exc}"
        except PyMongoError as exc:
            return f"{host}: unreachable ({type(exc).__name__})"

    def topology(self) -> Topology:
        status = self._status_from_any_member()
        if status is None:
            return Topology(set_name=None, primary=None, initiated=False)
        config = self._config_from(status)
        priorities = {c["host"]: float(c.get("priority", 1)) for c in config.get("members", [])}
        primary_row = next((m for m in status["members"] if m.get("state") == 1), None)
        healthy = [m for m in status["members"] if m.get("health")]
        newest = max((m["optimeDate"] for m in healthy), default=None)
        reference = primary_row["optimeDate"] if primary_row else newest
        freezes, maintenance = self._recorded_freezes()
        members = []
        for row in status["members"]:
            lag = None
            if row.get("health") and reference is not None:
                lag = max(0.0, (reference - row["optimeDate"]).total_seconds())
            members.append(
                MemberView(
                    name=row["name"],
                    state=STATE_NAMES.get(row.get("state"), str(row.get("stateStr"))),
                    health=bool(row.get("health")),
                    priority=priorities.get(row["name"], 1.0),
                    lag_seconds=lag,
                    frozen_until=freezes.get(row["name"]),
                )
            )
        return Topology(
            set_name=status.get("set"),
            primary=primary_row["name"] if primary_row else None,
            members=members,
            maintenance=maintenance,
        )

    def _config_from(self, status: dict[str, Any]) -> dict[str, Any]:
        me = next((row["name"] for row in status["members"] if row.get("self")), None)
        try:
            if me is not None:
                return self._member_command(me, "replSetGetConfig")["config"]
            return self.client.admin.command(
                "replSetGetConfig", read_preference=PrimaryPreferred()
            )["config"]
        except PyMongoError:
            return {}

    def _recorded_freezes(self) -> tuple[dict[str, dt.datetime], dict[str, Any] | None]:
        """Unexpired freezes and the open maintenance window, as hubctl recorded them."""
        now = now_utc()
        db = self.client.get_database(DB_NAME, read_preference=PrimaryPreferred())
        try:
            rows = list(db[FREEZES].find({"until": {"$gt": now}}))
            window = db[MAINTENANCE].find_one({"_id": "current", "until": {"$gt": now}})
        except PyMongoError:
            return {}, None
        freezes = {r["_id"]: _aware(r["until"]) for r in rows}
        if window:
            window["until"] = _aware(window["until"])
        return freezes, window

    def primary(self) -> str | None:
        try:
            return self.topology().primary
        except ReplsetError:
            return None

    def wait_for_primary(
        self, timeout: float, expected: str | None = None, exclude: str | None = None
    ) -> str:
        """Poll until there is a primary (`expected`, or any but `exclude`); raise on timeout."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            try:
                # A primary read makes pymongo wait for, and then name, the current primary;
                # its view can be a heartbeat old, so the member itself must confirm.
                self.client.admin.command("ping")
                address = self.client.primary
                if address is not None:
                    seen = f"{address[0]}:{address[1]}"
                    wanted = (expected is None or seen == expected) and seen != exclude
                    if wanted and self._member_command(seen, "hello", timeout=1.0).get(
                        "isWritablePrimary"
                    ):
                        return seen
            except PyMongoError:
                pass
            time.sleep(0.1)
        want = expected or "a primary"
        raise ReplsetError(f"timed out after {timeout:g}s waiting for {want} (last seen: {seen})")

    # ----- initiating -------------------------------------------------------------------
    def initiate(
        self,
        members: list[str],
        name: str,
        priorities: dict[str, float] | None = None,
        election_timeout_ms: int | None = None,
        wait: float = 30.0,
    ) -> str:
        """Initiate the set, or confirm it is already initiated with these members.

        Returns "initiated" or "already initiated"; raises when the set exists with others.
        """
        priorities = priorities or {}
        unknown = sorted(set(priorities) - set(members))
        if unknown:
            raise ReplsetError(f"--priority names {', '.join(unknown)}, not a --member")
        existing = self._existing_config(members)
        if existing is not None:
            have = sorted(c["host"] for c in existing["members"])
            if existing["_id"] != name or have != sorted(members):
                missing = sorted(set(members) - set(have))
                extra = sorted(set(have) - set(members))
                diff = []
                if existing["_id"] != name:
                    diff.append(f"set name is {existing['_id']!r}, not {name!r}")
                if missing:
                    diff.append(f"it lacks {', '.join(missing)}")
                if extra:
                    diff.append(f"it also has {', '.join(extra)}")
                raise ReplsetError("the set is already initiated differently: " + "; ".join(diff))
            return "already initiated"
        config: dict[str, Any] = {
            "_id": name,
            "members": [
                {"_id": i, "host": host, "priority": priorities.get(host, 1)}
                for i, host in enumerate(members)
            ],
        }
        if election_timeout_ms:
            config["settings"] = {"electionTimeoutMillis": election_timeout_ms}
        try:
            self._member_command(members[0], "replSetInitiate", config)
        except PyMongoError as exc:
            raise _explain(exc, f"replSetInitiate on {members[0]}") from None
        self.wait_for_primary(wait)
        record_event(self.client, "initiate", f"replica set {name} initiated", members=members)
        return "initiated"

    def _existing_config(self, members: list[str]) -> dict[str, Any] | None:
        errors = []
        for host in members:
            try:
                return self._member_command(host, "replSetGetConfig")["config"]
            except OperationFailure as exc:
                if exc.code == 94:
                    continue
                errors.append(f"{host}: {exc}")
            except PyMongoError as exc:
                errors.append(f"{host}: unreachable ({type(exc).__name__})")
        if errors:
            raise ReplsetError("cannot initiate: " + "; ".join(errors))
        return None

    # ----- freezing and stepping down ----------------------------------------------------
    def freeze(self, member: str, seconds: float, record: bool = True) -> None:
        self.topology().member(member)
        try:
            self._member_command(member, "replSetFreeze", int(seconds))
        except PyMongoError as exc:
            raise _explain(exc, f"freeze {member}") from None
        if record:
            until = now_utc() + dt.timedelta(seconds=seconds)
            self._record_freeze(member, until)
            record_event(self.client, "freeze", f"{member} frozen for {seconds:g}s", member=member)

    def unfreeze(self, member: str, record: bool = True) -> None:
        self.topology().member(member)
        try:
            self._member_command(member, "replSetFreeze", 0)
        except PyMongoError as exc:
            raise _explain(exc, f"unfreeze {member}") from None
        if record:
            self._record_freeze(member, None)
            record_event(self.client, "unfreeze", f"{member} unfrozen", member=member)

    def _record_freeze(self, member: str, until: dt.datetime | None) -> None:
        coll = self.client[DB_NAME].get_collection(FREEZES, write_concern=MAJORITY)
        try:
            if until is None:
                coll.delete_one({"_id": member})
            else:
                coll.replace_one({"_id": member}, {"_id": member, "until": until}, upsert=True)
        except PyMongoError:
            pass  # the freeze itself happened; only its display in `status` is lost

    def stepdown(self, seconds: int = 60, catch_up: int = 10) -> str:
        """Step the primary down; returns the old primary's name."""
        topo = self.topology()
        if topo.primary is None:
            raise ReplsetError("there is no primary to step down")
        old = topo.primary
        try:
            self._member_command(
                old, "replSetStepDown", seconds, secondaryCatchUpPeriodSecs=catch_up
            )
        except (AutoReconnect, ConnectionFailure):
            pass  # mongod may drop connections as it steps down; the wait below tells
        except PyMongoError as exc:
            raise _explain(exc, f"stepdown of {old}") from None
        record_event(self.client, "stepdown", f"{old} stepped down for {seconds}s", member=old)
        return old

    def switchover(
        self, target: str, seconds: int = 60, catch_up: int = 10, timeout: float = 30.0
    ) -> list[str]:
        """Planned move of the primary to `target`; returns one sentence per step taken.

        The other secondaries are frozen so only `target` can win, then the primary steps
        down; whatever happens, the freezes are lifted at the end.
        """
        topo = self.topology()
        view = topo.member(target)
        if topo.primary == target:
            return [f"{target} is already primary; nothing to do"]
        if topo.primary is None:
            raise ReplsetError("there is no primary to step down")
        if not view.health or view.state != "SECONDARY":
            raise ReplsetError(
                f"{target} cannot take over: it is {view.state}, health {view.health}"
            )
        if view.priority <= 0:
            raise ReplsetError(f"{target} has priority 0 and can never become primary")
        others = [
            m.name
            for m in topo.members
            if m.name not in (target, topo.primary) and m.health and m.state == "SECONDARY"
        ]
        steps: list[str] = []
        frozen: list[str] = []
        try:
            for name in others:
                self.freeze(name, seconds + timeout, record=False)
                frozen.append(name)
                steps.append(f"froze {name} so that only {target} can win")
            old = self.stepdown(seconds, catch_up)
            steps.append(f"asked {old} to step down for {seconds}s")
            self.wait_for_primary(timeout, expected=target)
            steps.append(f"{target} is primary")
        except ReplsetError as exc:
            steps.append(f"switchover failed: {exc}")
            raise ReplsetError("; ".join(steps)) from None
        finally:
            for name in frozen:
                try:
                    self.unfreeze(name, record=False)
                    steps.append(f"unfroze {name}")
                except ReplsetError as exc:
                    steps.append(f"could not unfreeze {name}: {exc}")
        record_event(
            self.client, "switchover", f"primary moved from {old} to {target}", old=old, new=target
        )
        return steps

    # ----- maintenance windows -----------------------------------------------------------
    def maintenance_start(self, member: str, seconds: float) -> list[str]:
        """Freeze the other secondaries so that stopping `member` briefly elects nobody."""
        topo = self.topology()
        topo.member(member)
        until = now_utc() + dt.timedelta(seconds=seconds)
        steps = []
        if topo.primary == member:
            for m in topo.members:
                if m.name != member and m.health and m.state == "SECONDARY":
                    self.freeze(m.name, seconds)
                    steps.append(f"froze {m.name} until {until:%Y-%m-%d %H:%M:%S}Z")
        else:
            steps.append(f"{member} is not primary: stopping it causes no election, froze nothing")
        coll = self.client[DB_NAME].get_collection(MAINTENANCE, write_concern=MAJORITY)
        try:
            coll.replace_one(
                {"_id": "current"},
                {"_id": "current", "member": member, "started": now_utc(), "until": until},
                upsert=True,
            )
        except PyMongoError as exc:
            raise _explain(exc, "recording the maintenance window") from None
        record_event(
            self.client,
            "maintenance-start",
            f"maintenance of {member} for {seconds:g}s",
            member=member,
            until=until,
        )
        steps.append(f"maintenance window for {member} open until {until:%Y-%m-%d %H:%M:%S}Z")
        return steps

    def maintenance_end(self) -> list[str]:
        topo = self.topology()
        steps = []
        window = topo.maintenance
        for m in topo.members:
            if m.health and m.state == "SECONDARY" and m.frozen_until is not None:
                self.unfreeze(m.name)
                steps.append(f"unfroze {m.name}")
        try:
            self.client[DB_NAME].get_collection(MAINTENANCE, write_concern=MAJORITY).delete_one(
                {"_id": "current"}
            )
        except PyMongoError as exc:
            raise _explain(exc, "closing the maintenance window") from None
        who = window["member"] if window else "no open window"
        record_event(self.client, "maintenance-end", f"maintenance ended ({who})")
        steps.append("maintenance window closed" if window else "no maintenance window was open")
        return steps
