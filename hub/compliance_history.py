"""The fleet's compliance after each collection round, kept for the portal's chart.

A chart of compliance over time cannot be computed from `reports` on each page view (every
host's history, on every request). So the master, after a round that stored reports (or
found hosts registered or revoked), reads the latest-outcome summaries (hub.outcome_summary;
counts only, no promise lists) and inserts one small record: the fleet's compliance share
and its kept / repaired / not kept promise counts. The collection is bounded by count:
each insert drops what lies beyond the newest MAX_RECORDS (the stand-in has no capped
collections, and a TTL by age alone would let one-second rounds pile up millions).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import PyMongoError

from hub import outcome_summary as summary
from hub.store import HOSTS
from hubcluster import report_kinds as rk

if TYPE_CHECKING:
    from hub.collector import RoundFigures

log = logging.getLogger("hubcluster.hubd")

COMPLIANCE_HISTORY = "compliance_history"
MAX_RECORDS = 20_000
COUNTED = (rk.KEPT, rk.REPAIRED, rk.NOT_KEPT)

# Field names of a record (besides `_id`).
TIME = "time"  # when the round finished
HOSTS_FIELD = "hosts"  # registered, not revoked
REPORTING = "reporting"  # of those, with a latest outcome
COMPLIANT = "compliant"
SHARE = "share"  # compliant / reporting, None before any outcome


def fleet_compliance(db: Database) -> dict[str, Any]:
    """The fleet's compliance now, from the latest-outcome summaries (counts only)."""
    revoked = {d["_id"] for d in db[HOSTS].find({"revoked": True}, {"_id": 1})}
    # The count command, not count_documents (an aggregation: the stand-in copies every host).
    hosts = int(db.command("count", HOSTS)["n"]) - len(revoked)
    counts = dict.fromkeys(COUNTED, 0)
    reporting = compliant = 0
    fields = {summary.COUNTS: 1, summary.ERROR: 1}
    for doc in db[summary.LATEST_OUTCOMES].find({}, fields):
        if doc["_id"] in revoked:
            continue
        reporting += 1
        compliant += summary.compliant(doc)
        for status in COUNTED:
            counts[status] += doc[summary.COUNTS].get(status, 0)
    return {
        HOSTS_FIELD: hosts,
        REPORTING: reporting,
        COMPLIANT: compliant,
        SHARE: compliant / reporting if reporting else None,
        **counts,
    }


def record(db: Database, finished: dt.datetime, keep: int = MAX_RECORDS) -> dict[str, Any]:
    """Insert the fleet's compliance as of a round that finished at `finished`."""
    history = db[COMPLIANCE_HISTORY]
    doc = {TIME: finished, **fleet_compliance(db)}
    history.insert_one(doc)
    beyond = list(history.find({}, {TIME: 1}).sort(TIME, DESCENDING).skip(keep).limit(1))
    if beyond:
        history.delete_many({TIME: {"$lte": beyond[0][TIME]}})
    return doc


def recent(history: Collection, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` records, oldest first (read by the index on time)."""
    found = history.find({}, {"_id": 0}).sort(TIME, DESCENDING).limit(limit)
    return list(reversed(list(found)))


class ComplianceRecorder:
    """Writes a record after each round that stored reports or saw the fleet change (a host
    registered or revoked), one at a time, off the round.

    The next round does not wait for it. A record reads one summary per host, so on a large
    fleet with short rounds it is skipped until SPACING times its last cost has passed: the
    records never take more than a tenth of the hub's time, and a small fleet gets one per
    round.
    """

    SPACING = 10.0

    def __init__(self, db: Database, keep: int = MAX_RECORDS) -> None:
        self.db = db
        self.keep = keep
        self._task: asyncio.Task | None = None
        self._indexed = False
        self._cost = 0.0
        self._hosts: int | None = None
        self._ended = -math.inf

    def after_round(self, figures: RoundFigures) -> None:
        if figures.aborted is not None or figures.finished is None:
            return
        # New reports, or hosts registered or revoked since (a round counts the unrevoked).
        if not figures.stored and figures.hosts == self._hosts:
            return
        if self._task is not None and not self._task.done():
            return
        if time.monotonic() - self._ended < self.SPACING * self._cost:
            return
        self._hosts = figures.hosts
        self._task = asyncio.create_task(self._write(figures.finished))

    async def _write(self, finished: dt.datetime) -> None:
        started = time.monotonic()
        try:
            await asyncio.to_thread(self._record, finished)
        except PyMongoError as exc:
            log.warning("could not record the fleet's compliance: %s", exc)
        self._ended = time.monotonic()
        self._cost = self._ended - started

    def _record(self, finished: dt.datetime) -> None:
        if not self._indexed:
            index = IndexModel([(TIME, ASCENDING)], name=TIME)
            self.db[COMPLIANCE_HISTORY].create_indexes([index])
            self._indexed = True
        record(self.db, finished, self.keep)
