"""`hubd`: prepare a hub's workdir (`init`) and run the hub (`run`)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from hub.config import load_hub_config
from hub.keystore import KeyStore
from hub.mongo_access import redact_logs
from hubcluster.config_check import ConfigError
from hubcluster.exit_codes import EXIT_FAILED, EXIT_USAGE
from hubcluster.keys import KeyFileError, ensure_key_pair, key_fingerprint
from hubcluster.log_format import TEXT_FORMAT, use_log_format
from hubcluster.usage_errors import command_app

app = command_app(
    "The hub daemon: SSH service, master watch, collector, peer sync.", prefix="hubd: error: "
)
ConfigArg = Annotated[Path, typer.Option("--config", help="The hub's TOML config")]


def _fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    typer.echo(f"hubd: error: {message}", err=True)
    return typer.Exit(code)


@app.command("init")
def init(config: ConfigArg = Path("/etc/hubcluster/hub.toml")) -> None:
    """Create the workdir and the hub key pair (if missing); print the key's fingerprint."""
    try:
        cfg = load_hub_config(config)
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    keystore = KeyStore(cfg.ppkeys)
    try:
        cfg.ppkeys.mkdir(parents=True, exist_ok=True, mode=0o700)
        (cfg.masterfiles / "releases").mkdir(parents=True, exist_ok=True)
        key, created = ensure_key_pair(keystore.hub_private_key_path)
    except (OSError, KeyFileError) as exc:
        raise _fail(f"cannot prepare {cfg.workdir}: {exc}") from None
    verb = "created" if created else "kept the existing"
    typer.echo(f"{cfg.name}: {verb} hub key pair {key_fingerprint(key)} in {cfg.ppkeys}")


@app.command("run")
def run(
    config: ConfigArg = Path("/etc/hubcluster/hub.toml"),
    log_level: Annotated[str, typer.Option("--log-level")] = "INFO",
) -> None:
    """Run the hub until SIGTERM or SIGINT."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format=TEXT_FORMAT,
    )
    redact_logs()
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    try:
        cfg = load_hub_config(config)
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    use_log_format(cfg.log_format, cfg.name)
    if not KeyStore(cfg.ppkeys).hub_private_key_path.exists():
        raise _fail(
            f"no hub key in {cfg.ppkeys}; run `hubd init --config {config}` first", EXIT_USAGE
        )
    from hub.mongo import login_refused, use_access
    from hub.node import HubNode

    use_access(cfg.mongo_access)
    refused = login_refused(cfg.mongo_uri)
    if refused is not None:
        user = cfg.mongo_access.username if cfg.mongo_access else None
        raise _fail(
            f"the database refuses {user or 'no user'} from {config}: {refused} "
            "(is [replset] password_file the user's password?)",
            EXIT_USAGE,
        )

    async def main() -> None:
        node = HubNode(cfg)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, node.request_stop)
        await node.run()

    try:
        asyncio.run(main())
    except OSError as exc:
        raise _fail(f"cannot start: {exc}") from None


@app.command("hash-password")
def hash_password() -> None:
    """Print the argon2 hash of a password (asked twice on a terminal, else one stdin line)
    for a [[portal.users]] password_hash."""
    from hub.portal.passwords import MAX_SECRET_CHARS, hash_secret

    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password or len(password) > MAX_SECRET_CHARS:
        raise _fail(f"the password must be 1 to {MAX_SECRET_CHARS} characters", EXIT_USAGE)
    typer.echo(hash_secret(password))


@app.command("make-token")
def make_token(name: Annotated[str, typer.Argument(help="The token's name")]) -> None:
    """Make an API token: the token for the script on stdout, its [[portal.tokens]] entry
    (with the hash, never the token) on stderr."""
    from hub.portal.passwords import new_token
    from hub.portal.settings import valid_name

    if not valid_name(name):
        raise _fail(f"a token name is letters, digits and _.@- only, got {name!r}", EXIT_USAGE)
    token, token_hash = new_token(name)
    typer.echo(token)
    typer.echo(
        f'[[portal.tokens]]\nname = "{name}"\nrole = "viewer"\ntoken_hash = "{token_hash}"',
        err=True,
    )


def main() -> None:
    app()
