"""`hubctl check`: a Nagios/Icinga/Sensu plugin for the whole cluster."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click.core import Context
from typer.core import TyperCommand

from hub.config import load_hub_config
from hub.health_check import UNKNOWN, Thresholds, judge
from hub.health_snapshot import gather_snapshot
from hub.mongo import MongoUriError
from hub.topology import ReplsetError
from hubcluster.config_check import ConfigError
from hubcluster.usage_errors import usage_line
from hubctl.cluster_option import (
    DEFAULT_CONFIG,
    ConfigOpt,
    MongoOpt,
    NoClusterGiven,
    TimeoutOpt,
    find_uri,
)
from hubctl.duration_option import INTERVAL, LAG, LOOKBACK, duration_option


def _unknown(message: str) -> typer.Exit:
    sys.stdout.write(f"HUBCLUSTER UNKNOWN - {message}\n")
    return typer.Exit(UNKNOWN)


class NagiosCommand(TyperCommand):
    """A plugin answers even a wrong command line in its protocol: UNKNOWN, exit 3."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Context | None = None,
        **extra: Any,
    ) -> Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except typer.TyperException as exc:
            raise _unknown(usage_line(exc)) from None


def check(
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
    collect_interval: Annotated[
        float | None,
        duration_option(
            "--collect-interval", allowed=INTERVAL, help="Default: the config's, or 5m"
        ),
    ] = None,
    sync_interval: Annotated[
        float | None,
        duration_option("--sync-interval", allowed=INTERVAL, help="Default: the config's, or 1m"),
    ] = None,
    max_lag: Annotated[
        float, duration_option("--max-lag", allowed=LAG, help="Lag that counts as lagging")
    ] = "10s",  # type: ignore[assignment]  # typer converts the default like any value
    stale_after: Annotated[
        float,
        duration_option(
            "--stale-after", allowed=LOOKBACK, help="A client unseen this long is stale"
        ),
    ] = "15m",  # type: ignore[assignment]  # typer converts the default like any value
    stale_warn: Annotated[float, typer.Option(help="Stale share that warns, 0..1")] = 0.10,
    timeout: TimeoutOpt = 5.0,
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
        collect_interval=collect_interval or defaults.collect_interval,
        sync_interval=sync_interval or defaults.sync_interval,
        max_lag=max_lag,
        stale_after=stale_after,
        stale_warn=stale_warn,
    )
    try:
        uri = find_uri(mongo, config)
    except NoClusterGiven as exc:
        raise _unknown(str(exc)) from None
    try:
        snapshot = gather_snapshot(uri, timeout, limits.gap_window)
    except (ReplsetError, MongoUriError) as exc:
        raise _unknown(str(exc)) from None
    verdict = judge(snapshot, limits)
    sys.stdout.write(verdict.line() + "\n")
    raise typer.Exit(verdict.state)


def register(app: typer.Typer) -> None:
    app.command("check", cls=NagiosCommand)(check)
