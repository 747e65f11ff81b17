"""`hubctl check`: a Nagios/Icinga/Sensu plugin for the whole cluster."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer
from pymongo.errors import PyMongoError

from hub.config import load_hub_config
from hub.health_check import UNKNOWN, Snapshot, Thresholds, judge
from hub.mongo import MongoUriError, connect
from hub.replset import ReplicaSet, ReplsetError
from hub.store import HOSTS, LAST_SEEN, HubStore
from hubcluster.config_check import ConfigError
from hubcluster.durations import parse_duration
from hubctl.cluster_option import DEFAULT_CONFIG, ConfigOpt, MongoOpt, resolve_uri


def _unknown(message: str) -> typer.Exit:
    sys.stdout.write(f"HUBCLUSTER UNKNOWN - {message}\n")
    return typer.Exit(UNKNOWN)


def _seconds(text: str | None, option: str, default: float) -> float:
    if text is None:
        return default
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise _unknown(f"{option}: {exc}") from None


def check(
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    collect_interval: Annotated[
        str | None, typer.Option(help="Default: the config's, or 5m")
    ] = None,
    sync_interval: Annotated[str | None, typer.Option(help="Default: the config's, or 1m")] = None,
    max_lag: Annotated[str, typer.Option(help="Lag that counts as lagging")] = "10s",
    stale_after: Annotated[str, typer.Option(help="A client unseen this long is stale")] = "15m",
    stale_warn: Annotated[float, typer.Option(help="Stale share that warns, 0..1")] = 0.10,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the cluster")] = 5.0,
) -> None:
    """One Nagios-style line and exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."""
    defaults = Thresholds()
    path = config or (DEFAULT_CONFIG if mongo is None and DEFAULT_CONFIG.exists() else None)
    if path is not None:
        try:
            hub = load_hub_config(Path(path))
            defaults = Thresholds(
                collect_interval=hub.collector.interval, sync_interval=hub.sync_interval
            )
        except ConfigError as exc:
            raise _unknown(str(exc)) from None
    if not 0 <= stale_warn <= 1:
        raise _unknown("--stale-warn must be between 0 and 1")
    limits = Thresholds(
        collect_interval=_seconds(
            collect_interval, "--collect-interval", defaults.collect_interval
        ),
        sync_interval=_seconds(sync_interval, "--sync-interval", defaults.sync_interval),
        max_lag=_seconds(max_lag, "--max-lag", defaults.max_lag),
        stale_after=_seconds(stale_after, "--stale-after", defaults.stale_after),
        stale_warn=stale_warn,
    )
    try:
        uri = resolve_uri(mongo, config)
    except typer.Exit:
        raise _unknown("no cluster given (--mongo, HUBCTL_MONGO_URI or --config)") from None
    try:
        snapshot = _gather(uri, timeout)
    except (ReplsetError, MongoUriError) as exc:
        raise _unknown(str(exc)) from None
    verdict = judge(snapshot, limits)
    sys.stdout.write(verdict.line() + "\n")
    raise typer.Exit(verdict.state)


def _gather(uri: str, timeout: float) -> Snapshot:
    rs = ReplicaSet(uri, timeout)
    try:
        topology = rs.topology()
        if not topology.initiated:
            raise ReplsetError("the replica set is not initiated")
    finally:
        rs.close()
    client = connect(uri, timeout)
    try:
        store = HubStore(client)
        rounds = store.last_rounds(1)
        states = store.hub_states()
        seen = {d["_id"]: d.get("latest") for d in store.reading(LAST_SEEN).find()}
        hosts = [
            d["_id"] for d in store.reading(HOSTS).find({"revoked": {"$ne": True}}, {"_id": 1})
        ]
    except PyMongoError as exc:
        raise ReplsetError(f"cannot read the cluster's state: {str(exc).split(',')[0]}") from None
    finally:
        client.close()
    return Snapshot(
        topology=topology,
        now=dt.datetime.now(dt.UTC),
        last_round=rounds[0] if rounds else None,
        hub_states=states,
        last_seen=[seen.get(h) for h in hosts],
    )
