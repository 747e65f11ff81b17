"""`hubctl masterfiles publish|verify` and `hubctl keys list|revoke`."""

from __future__ import annotations

import os
import pwd
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pymongo.errors import PyMongoError

from hub.config import HubConfig, load_hub_config
from hub.durable_publish import WAIT_ALL, WAIT_MAJORITY, install_and_record, wait_for_holders
from hub.events import now_utc, record_event
from hub.hub_directory import hub_names
from hub.hub_roles import UNREACHABLE, classify_hubs
from hub.key_records import (
    KeyLookupError,
    all_hosts,
    revocations,
    revoke_key,
)
from hub.masterfiles import MasterfilesError
from hub.mongo import connect, use_access
from hub.replset import ReplicaSet
from hub.store import HubStore
from hub.topology import ReplsetError, ReplsetUnreachable, Topology
from hubcluster.config_check import ConfigError
from hubcluster.keys import fingerprint_from_sha
from hubctl.cluster_option import DEFAULT_CONFIG, ConfigOpt, MongoOpt, TimeoutOpt, resolve_uri
from hubctl.duration_option import WAIT, duration_option
from hubctl.output import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Table,
    ago,
    console,
    err_console,
    fail,
    print_json,
    say,
)

masterfiles_app = typer.Typer(help="Masterfiles releases: publish on the master, verify all hubs.")
keys_app = typer.Typer(help="Client keys: list them, revoke one.")

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on stdout")]


def _warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def _hub_config(path: Path | None) -> HubConfig:
    try:
        return load_hub_config(path or DEFAULT_CONFIG)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


@contextmanager
def _store(mongo: str | None, config: Path | None) -> Iterator[HubStore]:
    client = connect(resolve_uri(mongo, config), timeout=5.0)
    try:
        yield HubStore(client)
    except PyMongoError as exc:
        fail(f"the cluster did not answer ({str(exc).split(',')[0]})", EXIT_UNREACHABLE)
    finally:
        client.close()


# ----- masterfiles ----------------------------------------------------------------------------


def _master_problem(hub: HubConfig, primary: str | None) -> str | None:
    """Why this hub may not publish now, or None when its member is the primary."""
    if primary == hub.me.mongo:
        return None
    if primary is None:
        who = "the replica set has no primary now"
    else:
        master = hub.hub_for_member(primary)
        who = f"the master is {master.name} ({primary})" if master else f"the primary is {primary}"
    return (
        f"refusing to publish on {hub.name}: its member {hub.me.mongo} is not primary; "
        f"{who}. Publish on the master hub's host"
    )


def _owner_problem(hub: HubConfig) -> str | None:
    """Why this user may not write the hub's masterfiles, or None.

    Files written by another user (root, typically) could not be pruned or replaced by hubd
    later, and would break this hub's mirroring once it is no longer master.
    """
    where = hub.masterfiles if hub.masterfiles.exists() else hub.workdir
    try:
        owner = where.stat().st_uid
    except FileNotFoundError:
        return f"{hub.workdir}: no such directory; is hubd set up on this host?"
    if owner == os.geteuid():
        return None
    try:
        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = str(owner)
    return f"{where} belongs to {name}: publish as that user (e.g. sudo -u {name} hubctl ...)"


@masterfiles_app.command("publish")
def publish(
    directory: Annotated[Path, typer.Argument(help="Policy tree to publish (with promises.toml)")],
    config: ConfigOpt = None,
    timeout: TimeoutOpt = 5.0,
    wait: Annotated[
        str,
        typer.Option(
            "--wait",
            help="majority: succeed once most hubs hold the release; all: every healthy hub",
        ),
    ] = WAIT_MAJORITY,
    wait_timeout: Annotated[
        float,
        duration_option(
            "--wait-timeout", allowed=WAIT, help="How long to wait for the hubs to hold it"
        ),
    ] = "60s",  # type: ignore[assignment]  # typer converts the default like any value
) -> None:
    """Publish DIR as the new release, on the master hub's host. Prints the release id.

    Durable like a majority write: exit 0 only once a majority of hubs hold it (--wait all:
    every healthy hub), and say which hubs do.
    """
    if wait not in (WAIT_MAJORITY, WAIT_ALL):
        fail(f"--wait: expected {WAIT_MAJORITY} or {WAIT_ALL}, got {wait!r}", EXIT_USAGE)
    hub = _hub_config(config)
    use_access(hub.mongo_access)
    problem = _owner_problem(hub)
    if problem:
        fail(problem, EXIT_USAGE)
    rs = ReplicaSet(hub.mongo_uri, timeout)
    try:
        try:
            primary = rs.topology().primary
        except ReplsetError as exc:
            fail(f"cannot tell who is master: {exc}", EXIT_UNREACHABLE)
        problem = _master_problem(hub, primary)
        if problem:
            fail(problem)
        store = HubStore(rs.client)
        try:
            published = install_and_record(hub, store, directory)
        except MasterfilesError as exc:
            fail(str(exc))
        except PyMongoError as exc:
            fail(
                f"the replica set did not confirm the release's generation ({exc}); it is not "
                "served now, and is served later only if a majority took it after all "
                "(see hubctl masterfiles verify)"
            )
        rid = published.generation.release
        before = published.previous
        if rid == before:
            _warn(f"{directory} is release {rid}, which {hub.name} already served")
        message = (
            f"{hub.name} published masterfiles release {rid} from {directory} "
            f"(generation {published.generation.number})"
        )
        recorded = record_event(
            rs.client,
            "publish",
            message,
            hub=hub.name,
            release=rid,
            generation=published.generation.number,
            previous=before,
        )
        if not recorded:
            # The release is out; only the timeline entry is missing, so this is no failure.
            _warn("published, but the cluster did not take the publish event (no primary?)")
        say(rid)

        def topology() -> Topology | None:
            try:
                return rs.topology()
            except ReplsetError:
                return None

        try:
            published = wait_for_holders(hub, store, topology, published, wait, wait_timeout)
        except PyMongoError as exc:
            fail(f"published {rid}, but cannot tell which hubs hold it: {exc}", EXIT_UNREACHABLE)
    finally:
        rs.close()
    if not published.durable:
        fail(
            f"{published.holders_line()}: fewer than the {published.needed} needed after "
            f"{wait_timeout:g}s; it is lost if these hubs fail before the others take it"
        )
    err_console.print(published.holders_line(), highlight=False, soft_wrap=True)


def _verify_rows(
    states: list[dict[str, Any]], names: list[str], topology: Topology | None
) -> list[dict[str, Any]]:
    rows = []
    for r in classify_hubs(states, topology, now_utc(), expected=names):
        rows.append(
            {
                "hub": r.name,
                "member": r.member,
                "role": r.role,
                "role_shown": r.label,
                "release": r.state.get("release"),
                "release_since": r.state.get("release_since"),
                "updated": r.state.get("updated"),
            }
        )
    return rows


def _topology(uri: str) -> Topology:
    rs = ReplicaSet(uri, 5.0)
    try:
        return rs.topology()
    except ReplsetUnreachable as exc:
        fail(str(exc), EXIT_UNREACHABLE)
    except ReplsetError as exc:
        fail(f"cannot tell who is master: {exc}")
    finally:
        rs.close()


@masterfiles_app.command("verify")
def verify(mongo: MongoOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Each hub's release; exit 0 when all hubs serve the same one, 1 when not."""
    # With --config, every hub it lists must answer, so a hub that never reported counts.
    topology = _topology(resolve_uri(mongo, config))
    names = hub_names(_hub_config(config).hubs, topology) if config else []
    with _store(mongo, config) as store:
        states = store.hub_states()
    rows = _verify_rows(states, names, topology)
    releases = {r["release"] for r in rows}
    in_sync = bool(rows) and None not in releases and len(releases) == 1
    if as_json:
        print_json({"in_sync": in_sync, "hubs": rows})
        raise typer.Exit(0 if in_sync else EXIT_FAILED)
    table = Table(title="masterfiles release per hub", title_justify="left")
    for column in ("Hub", "Role", "Release", "Since", "State updated"):
        table.add_column(column)
    common = max(
        releases - {None}, key=lambda r: sum(x["release"] == r for x in rows), default=None
    )
    for r in rows:
        release = r["release"] or "[red]none reported[/]"
        if r["release"] and r["release"] != common:
            release = f"[red]{r['release']}[/]"
        role = r["role_shown"]
        if r["role"] == UNREACHABLE:
            role = f"[red]{role}[/]"
        table.add_row(r["hub"], role, release, ago(r["release_since"]), ago(r["updated"]))
    console.print(table)
    if in_sync:
        say(f"all {len(rows)} hubs serve release {releases.pop()}")
        return
    if not rows:
        fail("no hub has reported its release yet (is hubd running?)")
    missing = [r["hub"] for r in rows if r["release"] is None]
    differ = [r["hub"] for r in rows if r["release"] not in (None, common)]
    parts = []
    if differ:
        parts.append(f"{', '.join(differ)} not on {common}")
    if missing:
        parts.append(f"{', '.join(missing)} reported no release")
    fail("hubs differ: " + "; ".join(parts))


# ----- keys -----------------------------------------------------------------------------------


@keys_app.command("list")
def list_keys(mongo: MongoOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Registered hosts and revoked keys, and how many keys each hub holds."""
    with _store(mongo, config) as store:
        hosts = all_hosts(store)
        revoked = {r["_id"]: r for r in revocations(store)}
        counts = {s["_id"]: s.get("keys") for s in store.hub_states()}
    rows = []
    for host in hosts:
        stone = revoked.get(host["_id"])
        rows.append(
            {
                "sha": host["_id"],
                "hostname": host.get("hostname"),
                "address": host.get("address"),
                "registered": host.get("registered"),
                "revoked": stone.get("time") if stone else None,
                "reason": stone.get("reason") if stone else None,
            }
        )
    known = {h["_id"] for h in hosts}
    for sha, stone in revoked.items():
        if sha not in known:
            rows.append(
                {
                    "sha": sha,
                    "hostname": stone.get("hostname"),
                    "address": None,
                    "registered": None,
                    "revoked": stone.get("time"),
                    "reason": stone.get("reason"),
                }
            )
    if as_json:
        print_json({"keys": rows, "hub_key_counts": counts})
        return
    active = sum(r["revoked"] is None for r in rows)
    table = Table(title=f"{active} active keys, {len(rows) - active} revoked", title_justify="left")
    for column in ("Host", "Fingerprint", "Address", "Registered", "Status"):
        table.add_column(column)
    for r in rows:
        status = "active"
        if r["revoked"] is not None:
            why = f": {r['reason']}" if r["reason"] else ""
            status = f"[red]revoked {ago(r['revoked'])}{why}[/]"
        table.add_row(
            r["hostname"] or "-",
            fingerprint_from_sha(r["sha"]),
            r["address"] or "-",
            ago(r["registered"]),
            status,
        )
    console.print(table)
    if counts:
        say(
            "keys held: "
            + ", ".join(f"{hub} {n if n is not None else '?'}" for hub, n in counts.items())
        )


@keys_app.command("revoke")
def revoke(
    target: Annotated[str, typer.Argument(help="Host name, key SHA (or 6+ digits), SHA256:...")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the timeline")] = "",
    mongo: MongoOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke a client key on every hub: the DB first, the hubs' ppkeys/ at their next sync."""
    with _store(mongo, config) as store:
        try:
            done = revoke_key(store, target, reason, socket.gethostname())
        except KeyLookupError as exc:
            fail(str(exc))
    if not done.new:
        say(f"{done.who} was already revoked")
        return
    say(f"revoked {done.who}; every hub refuses it after its next sync")


def register(app: typer.Typer) -> None:
    app.add_typer(masterfiles_app, name="masterfiles")
    app.add_typer(keys_app, name="keys")
