"""Which cluster a hubctl command talks to: --mongo, then $HUBCTL_MONGO_URI, then --config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from hub.config import load_hub_config
from hub.mongo import MongoUriError, parse
from hub.replset import ReplicaSet
from hubcluster.config_check import ConfigError
from hubctl.output import EXIT_USAGE, fail

DEFAULT_CONFIG = Path("/etc/hubcluster/hub.toml")

MongoOpt = Annotated[
    str | None,
    typer.Option(
        "--mongo", help="Replica-set URI, e.g. mongodb://h1,h2,h3/?replicaSet=CFEngineNova"
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help=f"Hub config to take the URI from (default {DEFAULT_CONFIG})"),
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for the cluster")]


def resolve_uri(mongo: str | None, config: Path | None) -> str:
    if mongo:
        uri = mongo
    elif os.environ.get("HUBCTL_MONGO_URI"):
        uri = os.environ["HUBCTL_MONGO_URI"]
    else:
        path = config or DEFAULT_CONFIG
        if config is None and not path.exists():
            fail(
                "no cluster given: pass --mongo URI, set HUBCTL_MONGO_URI, or --config FILE",
                EXIT_USAGE,
            )
        try:
            uri = load_hub_config(path).mongo_uri
        except ConfigError as exc:
            fail(str(exc), EXIT_USAGE)
    try:
        parse(uri)
    except MongoUriError as exc:
        fail(str(exc), EXIT_USAGE)
    return uri


def open_replset(mongo: str | None, config: Path | None, timeout: float = 5.0) -> ReplicaSet:
    return ReplicaSet(resolve_uri(mongo, config), timeout=timeout)
