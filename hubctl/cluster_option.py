"""Which cluster a hubctl command talks to: --mongo, then $HUBCTL_MONGO_URI, then --config.

And as whom: $HUBCLUSTER_MONGO_USER with $HUBCLUSTER_MONGO_PASSWORD_FILE (mode 0600) or
$HUBCLUSTER_MONGO_PASSWORD, else the config's [replset] username/password_file when the URI
comes from the config. Never a command-line password: others read it in `ps`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from hub.config import load_hub_config
from hub.mongo import MongoUriError, parse, use_access
from hub.mongo_access import AccessError, MongoAccess, access_from_environment
from hub.replset import ReplicaSet
from hubcluster.config_check import ConfigError
from hubcluster.exit_codes import EXIT_USAGE
from hubctl.duration_option import WAIT, duration_option
from hubctl.output import fail

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
TimeoutOpt = Annotated[
    float, duration_option("--timeout", allowed=WAIT, help="How long to wait for the cluster")
]


class NoClusterGiven(ValueError):
    """No usable URI: none given, or the config or the URI is wrong. The message says which."""


def find_uri(mongo: str | None, config: Path | None) -> str:
    """The cluster's URI, checked, and the access to it made the process's (hub.mongo);
    NoClusterGiven when there is none to use."""
    try:
        access: MongoAccess | None = access_from_environment()
    except AccessError as exc:
        raise NoClusterGiven(str(exc)) from None
    from_env = access is not None
    if mongo:
        uri = mongo
    elif os.environ.get("HUBCTL_MONGO_URI"):
        uri = os.environ["HUBCTL_MONGO_URI"]
    else:
        path = config or DEFAULT_CONFIG
        if config is None and not path.exists():
            raise NoClusterGiven(
                "no cluster given: pass --mongo URI, set HUBCTL_MONGO_URI, or --config FILE"
            )
        try:
            hub_config = load_hub_config(path)
        except ConfigError as exc:
            raise NoClusterGiven(str(exc)) from None
        uri = hub_config.mongo_uri
        if not from_env:
            access = hub_config.mongo_access
    try:
        parse(uri)
    except MongoUriError as exc:
        raise NoClusterGiven(str(exc)) from None
    use_access(access)
    return uri


def resolve_uri(mongo: str | None, config: Path | None) -> str:
    """find_uri for a command: no usable URI is a usage error (one line, exit 2)."""
    try:
        return find_uri(mongo, config)
    except NoClusterGiven as exc:
        fail(str(exc), EXIT_USAGE)


def open_replset(mongo: str | None, config: Path | None, timeout: float = 5.0) -> ReplicaSet:
    return ReplicaSet(resolve_uri(mongo, config), timeout=timeout)
