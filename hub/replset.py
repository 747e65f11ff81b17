"""The replica set as a hub sees it, and the operator's actions on it, through pymongo only.

The replica set is the source of truth for who is master; this module reads it
(replSetGetStatus / replSetGetConfig) and drives it (replSetInitiate, replSetFreeze,
replSetStepDown). Freezes are also written to the database, because mongod does not report
a member's freeze to anyone, and `status` must show it. Maintenance windows, built on these
freezes, are in hub.maintenance_window; the wrong-set-name check in hub.set_name_watch.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor
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

from hub.events import now_utc, record_event
from hub.maintenance_window import MAINTENANCE
from hub.mongo import (
    DB_NAME,
    SURVIVES_FAILOVER,
    connect,
    connect_member,
    parse,
    seed_hosts,
)
from hub.set_name_watch import SetNameWatch
from hub.switchover import SwitchoverPlan, switchover_plan
from hub.topology import (
    HUB_TAG,
    STATE_NAMES,
    MemberView,
    ReplsetError,
    ReplsetUnreachable,
    Topology,
    explain_failure,
    hub_tags,
)

log = logging.getLogger(__name__)

FREEZES = "freezes"


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


class ReplicaSet:
    """One operator's handle on the set named by `uri` (a mongodb:// seed list)."""

    def __init__(self, uri: str, timeout: float = 5.0) -> None:
        self.uri = uri
        self.timeout = timeout
        self.seeds = seed_hosts(uri)
        options = {k.lower(): v for k, v in parse(uri)["options"].items()}
        self.set_name: str | None = options.get("replicaset")
        self._client: pymongo.MongoClient | None = None
        self._set_names = SetNameWatch()
        # Who acts through this handle (a portal user), added to every event it records.
        self.actor: str | None = None

    @property
    def client(self) -> pymongo.MongoClient:
        if self._client is None:
            self._client = connect(self.uri, self.timeout, event_listeners=[self._set_names])
        return self._client

    def _await_member(self) -> bool:
        """Wait (at most the server-selection timeout) until some member can be read from.

        Fails at once, naming both names, when a member answers with another set's name
        than the URI's.
        """
        client = self.client
        deadline = time.monotonic() + self.timeout
        while True:
            if self._set_names.disagrees(self.set_name):
                self._set_names.refuse(self.set_name, self.seeds)
            if client.topology_description.has_readable_server(PrimaryPreferred()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def event(self, kind: str, message: str, **details: Any) -> None:
        if self.actor is not None:
            details.setdefault("user", self.actor)
        if not record_event(self.client, kind, message, **details):
            log.warning("timeline event %r not recorded (no primary took it): %s", kind, message)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def member_command(
        self, member: str, *args: Any, timeout: float | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        with connect_member(self.uri, member, timeout or self.timeout) as client:
            return client.admin.command(*args, **kwargs)

    # ----- reading the set ----------------------------------------------------------------
    def _status_from_any_member(self) -> dict[str, Any] | None:
        """replSetGetStatus from the primary if there is one, else from a secondary.

        Returns None when the members answer but none is initiated yet.
        """
        if self._await_member():
            try:
                return self.client.admin.command(
                    "replSetGetStatus", read_preference=PrimaryPreferred()
                )
            except OperationFailure as exc:
                if exc.code != 94:  # NotYetInitialized
                    raise explain_failure(exc, "replSetGetStatus") from None
            except ServerSelectionTimeoutError:
                pass
        # Nobody initiated, or nobody up: ask each seed to tell which.
        with ThreadPoolExecutor(len(self.seeds)) as pool:
            answers = list(pool.map(self._probe, self.seeds))
        statuses = [a for a in answers if isinstance(a, dict)]
        if statuses:
            return statuses[0]
        if any(a is None for a in answers):
            return None
        raise ReplsetUnreachable(
            "cannot reach any member of the set: " + "; ".join(map(str, answers))
        )

    def _probe(self, host: str) -> dict[str, Any] | str | None:
        try:
            return self.member_command(host, "replSetGetStatus", timeout=min(self.timeout, 2.0))
        except OperationFailure as exc:
            return None if exc.code == 94 else f"{host}: {exc}"
        except PyMongoError as exc:
            return f"{host}: unreachable ({type(exc).__name__})"

    def topology(self) -> Topology:
        status = self._status_from_any_member()
        if status is None:
            return Topology(set_name=None, primary=None, initiated=False)
        config = self._config_from(status)
        configured = {c["host"]: c for c in config.get("members", [])}
        names = hub_tags(config)
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
                    priority=float(configured.get(row["name"], {}).get("priority", 1)),
                    lag_seconds=lag,
                    frozen_until=freezes.get(row["name"]),
                    hub=names.get(row["name"]),
                    hidden=bool(configured.get(row["name"], {}).get("hidden", False)),
                )
            )
        return Topology(
            set_name=status.get("set"),
            primary=primary_row["name"] if primary_row else None,
            members=members,
            maintenance=maintenance,
        )

    def _config_from(self, status: dict[str, Any]) -> dict[str, Any]:
        """The set's config from the member that gave `status`; an error when none gives it.

        Without it priorities, hidden members and hub names would all be guesses.
        """
        me = next((row["name"] for row in status["members"] if row.get("self")), None)
        try:
            if me is not None:
                return self.member_command(me, "replSetGetConfig")["config"]
            return self.client.admin.command(
                "replSetGetConfig", read_preference=PrimaryPreferred()
            )["config"]
        except PyMongoError as exc:
            raise explain_failure(exc, f"replSetGetConfig on {me or 'the set'}") from None

    def _recorded_freezes(self) -> tuple[dict[str, dt.datetime], dict[str, Any] | None]:
        """Unexpired freezes and the open maintenance window, as hubctl recorded them."""
        now = now_utc()
        db = self.client.get_database(DB_NAME, read_preference=PrimaryPreferred())
        try:
            rows = list(db[FREEZES].find({"until": {"$gt": now}}))
            window = db[MAINTENANCE].find_one({"_id": "current", "until": {"$gt": now}})
        except PyMongoError as exc:
            log.warning("recorded freezes not read, status shows none: %s", exc)
            return {}, None
        freezes: dict[str, dt.datetime] = {}
        for r in rows:
            until = _aware(r["until"])
            if until is not None:
                freezes[str(r["_id"])] = until
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
                    if wanted and self.member_command(seen, "hello", timeout=1.0).get(
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
        hub_names: dict[str, str] | None = None,
        record: bool = True,
    ) -> str:
        """Initiate the set, or confirm it is already initiated with these members.

        `hub_names` (host:port -> hub name) become each member's `hub` tag. Returns
        "initiated" or "already initiated"; raises when the set exists with others.
        record=False leaves the "initiate" event to the caller (under access control no
        user exists yet to write it).
        """
        priorities = priorities or {}
        hub_names = hub_names or {}
        unknown = sorted(set(priorities) - set(members))
        if unknown:
            raise ReplsetError(f"--priority names {', '.join(unknown)}, not a --member")
        existing = self._existing_config(members)
        if existing is not None:
            have = sorted(c["host"] for c in existing["members"])
            tagged = hub_tags(existing)
            renamed = sorted(
                f"{host} is {tagged[host]}, not {hub}"
                for host, hub in hub_names.items()
                if tagged.get(host) not in (None, hub)
            )
            if existing["_id"] != name or have != sorted(members) or renamed:
                missing = sorted(set(members) - set(have))
                extra = sorted(set(have) - set(members))
                diff = []
                if existing["_id"] != name:
                    diff.append(f"set name is {existing['_id']!r}, not {name!r}")
                if missing:
                    diff.append(f"it lacks {', '.join(missing)}")
                if extra:
                    diff.append(f"it also has {', '.join(extra)}")
                diff.extend(renamed)
                raise ReplsetError("the set is already initiated differently: " + "; ".join(diff))
            return "already initiated"
        config: dict[str, Any] = {"_id": name, "members": []}
        for i, host in enumerate(members):
            entry: dict[str, Any] = {"_id": i, "host": host, "priority": priorities.get(host, 1)}
            if host in hub_names:
                entry["tags"] = {HUB_TAG: hub_names[host]}
            config["members"].append(entry)
        if election_timeout_ms:
            config["settings"] = {"electionTimeoutMillis": election_timeout_ms}
        try:
            self.member_command(members[0], "replSetInitiate", config)
        except PyMongoError as exc:
            raise explain_failure(exc, f"replSetInitiate on {members[0]}") from None
        self.wait_for_primary(wait)
        if record:
            self.event("initiate", f"replica set {name} initiated", members=members)
        return "initiated"

    def _existing_config(self, members: list[str]) -> dict[str, Any] | None:
        errors = []
        for host in members:
            try:
                return self.member_command(host, "replSetGetConfig")["config"]
            except OperationFailure as exc:
                # 94: no config yet. 13: access control with no user yet, through the
                # localhost exception, where mongod may refuse to show its config; a set
                # initiated already then refuses the replSetInitiate itself, and says why.
                if exc.code in (94, 13):
                    continue
                errors.append(f"{host}: {exc}")
            except PyMongoError as exc:
                errors.append(f"{host}: unreachable ({type(exc).__name__})")
        if errors:
            raise ReplsetError("cannot initiate: " + "; ".join(errors))
        return None

    # ----- freezing and stepping down ----------------------------------------------------
    def freeze(self, member: str, seconds: float, record: bool = True) -> None:
        member = self.topology().member(member).name
        try:
            self.member_command(member, "replSetFreeze", int(seconds))
        except PyMongoError as exc:
            raise explain_failure(exc, f"freeze {member}") from None
        if record:
            until = now_utc() + dt.timedelta(seconds=seconds)
            self._record_freeze(member, until)
            self.event("freeze", f"{member} frozen for {seconds:g}s", member=member)

    def unfreeze(self, member: str, record: bool = True) -> None:
        member = self.topology().member(member).name
        try:
            self.member_command(member, "replSetFreeze", 0)
        except PyMongoError as exc:
            raise explain_failure(exc, f"unfreeze {member}") from None
        if record:
            self._record_freeze(member, None)
            self.event("unfreeze", f"{member} unfrozen", member=member)

    def _record_freeze(self, member: str, until: dt.datetime | None) -> None:
        coll = self.client[DB_NAME].get_collection(FREEZES, write_concern=SURVIVES_FAILOVER)
        try:
            if until is None:
                coll.delete_one({"_id": member})
            else:
                coll.replace_one({"_id": member}, {"_id": member, "until": until}, upsert=True)
        except PyMongoError as exc:
            # The freeze itself happened; only its display in `status` is lost.
            log.warning("freeze of %s not recorded, status will not show it: %s", member, exc)

    def stepdown(self, seconds: int = 60, catch_up: int = 10) -> str:
        """Step the primary down; returns the old primary's name."""
        topo = self.topology()
        if topo.primary is None:
            raise ReplsetError("there is no primary to step down")
        old = topo.primary
        try:
            self.member_command(
                old, "replSetStepDown", seconds, secondaryCatchUpPeriodSecs=catch_up
            )
        except (AutoReconnect, ConnectionFailure):
            pass  # mongod may drop connections as it steps down; the wait below tells
        except PyMongoError as exc:
            raise explain_failure(exc, f"stepdown of {old}") from None
        self.event("stepdown", f"{old} stepped down for {seconds}s", member=old)
        return old

    def plan_switchover(self, target: str, catch_up: float) -> SwitchoverPlan:
        """What a switchover to `target` would do now; ReplsetError naming why it must not."""
        return switchover_plan(self.topology(), target, catch_up)

    def switchover(
        self, target: str, seconds: int = 60, catch_up: int = 10, timeout: float = 30.0
    ) -> list[str]:
        """Planned move of the primary to `target`; returns one sentence per step taken.

        The plan is checked first (see plan_switchover). The other secondaries are frozen so
        only `target` can win, then the primary steps down; the freezes are lifted at the end.
        """
        plan = self.plan_switchover(target, catch_up)
        if plan.nothing_to_do:
            return [f"{plan.new.label} is already primary; nothing to do"]
        new = plan.new.label
        steps: list[str] = []
        frozen: list[MemberView] = []
        old = plan.old.name
        try:
            for m in plan.others:
                self.freeze(m.name, seconds + timeout, record=False)
                frozen.append(m)
                steps.append(f"froze {m.label} so that only {new} can win")
            old = self.stepdown(seconds, catch_up)
            steps.append(f"asked {plan.old.label} to step down for {seconds}s")
            self.wait_for_primary(timeout, expected=plan.new.name)
            steps.append(f"{new} is primary")
        except ReplsetError as exc:
            steps.append(f"switchover failed: {exc}")
            raise ReplsetError("; ".join(steps)) from None
        finally:
            for m in frozen:
                try:
                    self.unfreeze(m.name, record=False)
                    steps.append(f"unfroze {m.label}")
                except ReplsetError as exc:
                    steps.append(f"could not unfreeze {m.label}: {exc}")
        self.event(
            "switchover", f"primary moved from {old} to {plan.new.name}", old=old, new=plan.new.name
        )
        return steps
