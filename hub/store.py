"""The hub's data in MongoDB (db `cfreport`): reports, cursors, hosts, rounds, last-seen.

Writes go to the primary with majority write concern, so what a hub stored survives a
failover; reads that serve operators go to secondaries (secondaryPreferred with a staleness
bound) so they never load the collector and keep answering while the primary is away.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pymongo
from pymongo import ASCENDING, DESCENDING, IndexModel, UpdateOne
from pymongo.errors import DuplicateKeyError
from pymongo.read_preferences import SecondaryPreferred
from pymongo.write_concern import WriteConcern

from hub.mongo import DB_NAME, SURVIVES_FAILOVER
from hub.outcome_summary import write_latest_outcomes
from hub.read_modes import ReadMode
from hubcluster import report_kinds

REPORTS = "reports"
CURSORS = "cursors"
HOSTS = "hosts"
ROUNDS = "rounds"
LAST_SEEN = "last_seen"
HUB_STATE = "hub_state"
REJECTED = "rejected_reports"
FENCE = "fence"  # one document: the newest election term a collector has written under
GAPS = "gaps"  # one document per gap record a client's spool sent (reports it dropped)


REPORT_BODY = ("kind", "time", "payload")


def report_id(host: str, seq: int, epoch: str = "") -> str:
    # One id per (host key, spool epoch, sequence): a report stored twice is the same
    # document. Spools from before epochs ("") keep their ids.
    return f"{host}/{epoch}/{seq:016d}" if epoch else f"{host}/{seq:016d}"


class StaleTerm(Exception):
    """A collector has written under a newer election term: this hub is no longer master."""


def lost_by_host(gaps: Any, since: dt.datetime | None = None) -> dict[str, int]:
    """Reports each host's spool dropped, from the gap records in `gaps` stored since `since`."""
    query = {"stored": {"$gte": since}} if since else {}
    lost: dict[str, int] = {}
    for doc in gaps.find(query, {"host": 1, "count": 1}):
        lost[doc["host"]] = lost.get(doc["host"], 0) + int(doc.get("count") or 0)
    return lost


@dataclass(frozen=True)
class Pull:
    """What one host's report service returned past its cursor, and the cursor's next value."""

    host: str
    records: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    newest: int
    pulled_at: dt.datetime
    epoch: str = ""
    # The cursor's epoch when this pull's differs (the spool was created again), else None.
    restarted_from: str | None = None
    # The election term under which the collecting hub is master (the fencing token).
    term: int | None = None


def _insert_once(
    pull: Pull, record: dict[str, Any], now: dt.datetime, hub: str, fields: tuple[str, ...]
) -> UpdateOne:
    doc = {"host": pull.host, "seq": record["seq"]}
    if pull.epoch:
        doc["epoch"] = pull.epoch
    doc.update((name, record[name]) for name in fields)
    doc.update(stored=now, stored_by=hub, term=pull.term)
    key = report_id(pull.host, record["seq"], pull.epoch)
    return UpdateOne({"_id": key}, {"$setOnInsert": doc}, upsert=True)


def _gap(pull: Pull, record: dict[str, Any], now: dt.datetime) -> UpdateOne:
    payload = record["payload"]
    doc = {
        "host": pull.host,
        "epoch": pull.epoch,
        "seq": record["seq"],
        "time": record["time"],
        "first": payload[report_kinds.GAP_FIRST],
        "last": payload[report_kinds.GAP_LAST],
        "count": payload[report_kinds.GAP_COUNT],
        "reason": payload[report_kinds.GAP_REASON],
        "stored": now,
    }
    key = report_id(pull.host, record["seq"], pull.epoch)
    return UpdateOne({"_id": key}, {"$setOnInsert": doc}, upsert=True)


def _move_cursor(pull: Pull) -> UpdateOne:
    fields: dict[str, Any] = {"last_pull": pull.pulled_at, "term": pull.term}
    if pull.restarted_from is None:
        return UpdateOne(
            {"_id": pull.host}, {"$max": {"seq": pull.newest}, "$set": fields}, upsert=True
        )
    # A new spool epoch starts a new numbering: the cursor starts again with it.
    fields.update(seq=pull.newest, epoch=pull.epoch)
    return UpdateOne({"_id": pull.host}, {"$set": fields}, upsert=True)


class HubStore:
    """Typed access to the collections over one pymongo client, shared by the parts using it."""

    def __init__(self, client: pymongo.MongoClient, max_staleness: float = 90.0) -> None:
        self.client = client
        self.db = client.get_database(DB_NAME, write_concern=SURVIVES_FAILOVER)
        self.read_preference: ReadMode = SecondaryPreferred(max_staleness=int(max_staleness))

    def reading(self, name: str, read_preference: ReadMode | None = None) -> Any:
        return self.db.get_collection(name, read_preference=read_preference or self.read_preference)

    def ensure_indexes(self) -> None:
        if "host_seq" in self.db[REPORTS].index_information():
            # Unique on (host, seq) from before spool epochs: a new epoch reuses seqs.
            self.db[REPORTS].drop_index("host_seq")
        self.db[REPORTS].create_indexes(
            [
                IndexModel(
                    [("host", ASCENDING), ("epoch", ASCENDING), ("seq", ASCENDING)],
                    name="host_epoch_seq",
                    unique=True,
                ),
                IndexModel([("kind", ASCENDING), ("time", DESCENDING)], name="kind_time"),
                # A host's newest runs (the portal's host chart) without its whole history.
                IndexModel(
                    [("host", ASCENDING), ("kind", ASCENDING), ("time", DESCENDING)],
                    name="host_kind_time",
                ),
            ]
        )
        self.db[ROUNDS].create_indexes([IndexModel([("finished", DESCENDING)], name="finished")])
        self.db["events"].create_indexes([IndexModel([("time", ASCENDING)], name="time")])

    # ----- hosts ----------------------------------------------------------------------
    def record_host(
        self, sha: str, hostname: str, address: str, report_port: int, hub: str
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        self.db[HOSTS].update_one(
            {"_id": sha},
            {
                "$set": {
                    "hostname": hostname,
                    "address": address,
                    "report_port": report_port,
                    "registered_by": hub,
                    "updated": now,
                },
                "$setOnInsert": {"registered": now},
            },
            upsert=True,
        )

    def forget_host(self, sha: str) -> None:
        self.db[HOSTS].update_one({"_id": sha}, {"$set": {"revoked": True}})

    def hosts(self) -> list[dict[str, Any]]:
        """Hosts to collect from, read from the primary (the collector runs there anyway)."""
        return list(self.db[HOSTS].find({"revoked": {"$ne": True}}))

    # ----- reports and cursors ---------------------------------------------------------
    def cursors(self) -> dict[str, dict[str, Any]]:
        return {doc["_id"]: doc for doc in self.db[CURSORS].find()}

    def current_term(self) -> int | None:
        """The election term of this client's member if it is primary, else None."""
        hello = self.client.admin.command("hello")
        election = hello.get("electionId")
        if not hello.get("isWritablePrimary") or election is None:
            return None
        # electionId is 7fffffff then the term, big-endian (protocol version 1).
        return int.from_bytes(election.binary[4:], "big")

    def fence(self, term: int) -> None:
        """Raise StaleTerm if a collector wrote under a newer term; else record `term`.

        Written with w:1 on purpose: the majority writes that follow it on this primary
        cannot be acknowledged before it is on the same majority.
        """
        fences = self.db.get_collection(FENCE, write_concern=WriteConcern(w=1))
        try:
            fences.update_one(
                {"_id": "collector", "term": {"$not": {"$gt": term}}},
                {"$set": {"term": term}},
                upsert=True,
            )
        except DuplicateKeyError:
            raise StaleTerm(f"a collector wrote under a newer term than {term}") from None

    def store_pulls(self, pulls: list[Pull], hub: str) -> list[int]:
        """Store many hosts' pulls in one write per collection; returns each pull's new count.

        Reports (and refused ones, kept as evidence) are idempotent upserts keyed by
        (host, epoch, seq); cursors move only after both writes are on a majority, and by
        `$max` within an epoch, so a slower, older round can never move a cursor backwards.
        Gap records (reports a client's spool dropped) are also kept on their own.
        """
        now = dt.datetime.now(dt.UTC)
        terms = {p.term for p in pulls if p.term is not None}
        if terms:
            self.fence(min(terms))
        evidence = [
            _insert_once(p, r, now, hub, ("reason", "raw")) for p in pulls for r in p.rejected
        ]
        if evidence:
            self.db[REJECTED].bulk_write(evidence, ordered=False)
        gaps = [_gap(p, r, now) for p in pulls for r in p.records if r["kind"] == report_kinds.GAP]
        if gaps:
            self.db[GAPS].bulk_write(gaps, ordered=False)
        reports, owner = [], []
        for index, p in enumerate(pulls):
            for r in p.records:
                reports.append(_insert_once(p, r, now, hub, REPORT_BODY))
                owner.append(index)
        counts = [0] * len(pulls)
        if reports:
            result = self.db[REPORTS].bulk_write(reports, ordered=False)
            # None: the server answered without an upsert list, so nothing was new.
            for op_index in result.upserted_ids or {}:
                counts[owner[op_index]] += 1
        # Before the cursors: a summary write that fails is redone with the re-pulled reports.
        write_latest_outcomes(self.db, [(p.host, p.records) for p in pulls], now)
        cursors = [_move_cursor(p) for p in pulls]
        if cursors:
            self.db[CURSORS].bulk_write(cursors, ordered=False)
        return counts

    def mark_pull(self, host: str, pulled_at: dt.datetime, error: str | None) -> None:
        self.db[CURSORS].update_one(
            {"_id": host},
            {"$set": {"last_attempt": pulled_at, "last_error": error}, "$setOnInsert": {"seq": 0}},
            upsert=True,
        )

    # ----- rounds -------------------------------------------------------------------
    def record_round(self, figures: dict[str, Any]) -> None:
        self.db[ROUNDS].insert_one(dict(figures))

    def last_rounds(self, limit: int = 1) -> list[dict[str, Any]]:
        coll = self.reading(ROUNDS)
        return list(coll.find({}, {"_id": 0}).sort("finished", DESCENDING).limit(limit))

    # ----- hub state and last-seen -------------------------------------------------------
    def set_hub_state(self, hub: str, **fields: Any) -> None:
        fields["updated"] = dt.datetime.now(dt.UTC)
        self.db[HUB_STATE].update_one({"_id": hub}, {"$set": fields}, upsert=True)

    def hub_states(self) -> list[dict[str, Any]]:
        return list(self.reading(HUB_STATE).find().sort("_id", ASCENDING))

    def record_last_seen(self, hub: str, seen: dict[str, dt.datetime]) -> None:
        """Batch of `host -> when` a client contacted `hub`; newer times win."""
        if not seen:
            return
        ops = [
            UpdateOne({"_id": host}, {"$max": {f"hubs.{hub}": when, "latest": when}}, upsert=True)
            for host, when in seen.items()
        ]
        self.db[LAST_SEEN].bulk_write(ops, ordered=False)
