"""The latest outcome per host, kept by the collector's write path for compliance reads.

Compliance is asked of the latest run of every host; finding that in `reports` means scanning
every host's history on each read. So every group write of pulled reports also upserts, per
host, a small summary of the newest `outcome` report in it (`latest_outcomes`, one document
per host key), and `hubctl query compliance` (later the portal) reads only those documents.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pymongo import UpdateOne
from pymongo.database import Database

from hubcluster import report_kinds as rk

LATEST_OUTCOMES = "latest_outcomes"

# Field names of a summary document (besides `_id`, the host key).
SEQ = "seq"
RAN = "ran"  # when the agent ran, by the client's clock
STORED = "stored"
RELEASE = "release"
EXIT_CODE = "exit_code"
ERROR = "error"
COUNTS = "counts"  # status -> how many promises
PROMISES = "promises"  # [{name, status}] in run order


def summary_of(record: dict[str, Any], stored: dt.datetime) -> dict[str, Any]:
    """The summary fields of one stored-shape outcome record (seq, time, kind, payload)."""
    payload = record[rk.PAYLOAD]
    statuses = rk.promise_statuses(payload)
    counts = Counter(status for _, status in statuses)
    return {
        SEQ: record["seq"],
        RAN: dt.datetime.fromtimestamp(record["time"], dt.UTC),
        STORED: stored,
        RELEASE: payload[rk.OUTCOME_RELEASE],
        EXIT_CODE: payload[rk.OUTCOME_EXIT_CODE],
        ERROR: payload[rk.OUTCOME_ERROR],
        COUNTS: {status: counts.get(status, 0) for status in rk.STATUSES},
        PROMISES: [{rk.PROMISE_NAME: name, rk.PROMISE_STATUS: status} for name, status in statuses],
    }


def compliant(doc: dict[str, Any]) -> bool:
    """A summary's run could run the policy and left no promise not kept."""
    return not doc.get(ERROR) and not doc[COUNTS].get(rk.NOT_KEPT, 0)


def write_latest_outcomes(
    db: Database, pulls: Iterable[tuple[str, list[dict[str, Any]]]], stored: dt.datetime
) -> None:
    """Set each host's summary from its newest outcome among `pulls` (host key, records).

    Keyed by `_id` alone, with no "only if newer" condition: a pull holds only reports past
    the host's cursor, so its newest outcome is the host's newest (also after a client's
    spool starts over at seq 1, where a seq comparison would keep the stale one), and the
    write is fenced like the reports' it rides with. Writing a pull twice sets the same.
    """
    newest: dict[str, dict[str, Any]] = {}
    for host, records in pulls:
        for record in records:
            if record["kind"] == rk.OUTCOME and record["seq"] > newest.get(host, {}).get("seq", 0):
                newest[host] = record
    ops = [
        UpdateOne({"_id": host}, {"$set": summary_of(record, stored)}, upsert=True)
        for host, record in newest.items()
    ]
    if ops:
        db[LATEST_OUTCOMES].bulk_write(ops, ordered=False)
