"""Blocking reads behind the portal's charts (each run in a thread).

Compliance over time reads the records the master writes after each round
(hub.compliance_history); a host's runs read that one host's newest outcome reports by the
reports' (host, kind, time) index, never the whole fleet's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pymongo import DESCENDING

from hub import compliance_history as ch
from hub.portal.overview import Reader
from hub.store import REPORTS
from hubcluster import report_kinds as rk

CHART_POINTS = 2000
HOST_RUNS = 200


def compliance_over_time(reader: Reader) -> list[dict[str, Any]]:
    """The fleet's compliance after each recorded round, oldest first."""
    return ch.recent(reader.store.reading(ch.COMPLIANCE_HISTORY), CHART_POINTS)


def host_runs(reader: Reader, name: str) -> list[dict[str, Any]]:
    """Kept / repaired / not kept per agent run of one host, oldest first (newest HOST_RUNS).

    Raises hub.queries.QueryError when no host (or several) match `name`.
    """
    sha = reader.queries.resolve_host(name)
    found = (
        reader.store.reading(REPORTS)
        .find({"host": sha, "kind": rk.OUTCOME}, {"_id": 0, "time": 1, "payload": 1})
        .sort("time", DESCENDING)
        .limit(HOST_RUNS)
    )
    runs = []
    for doc in found:
        statuses = [status for _, status in rk.promise_statuses(doc["payload"])]
        runs.append(
            {
                "ran": dt.datetime.fromtimestamp(doc["time"], dt.UTC),
                "error": doc["payload"].get(rk.OUTCOME_ERROR),
                **{status: statuses.count(status) for status in ch.COUNTED},
            }
        )
    return list(reversed(runs))
