"""`hubctl lab ...`: run the replica-set stand-in and drive it from another shell."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hubctl.duration_option import ELECTION_TIMEOUT, duration_option
from hubctl.lab import lab_commands
from hubctl.output import EXIT_USAGE, fail, print_json, say

if TYPE_CHECKING:
    from hubctl.lab.standin import StandinCluster

lab_app = typer.Typer(help="A local lab: the replica-set stand-in, or a whole cluster on loopback.")


@lab_app.command("mongo")
def lab_mongo(
    base_port: Annotated[
        int | None,
        typer.Option(
            "--base-port", min=1, max=65535, help="Members listen on P, P+1, P+2 (1 to 65535)"
        ),
    ] = None,
    members: Annotated[
        int, typer.Option("--members", min=1, max=7, help="How many members (1 to 7 voters)")
    ] = 3,
    name: Annotated[str, typer.Option("--name", help="Replica-set name")] = "CFEngineNova",
    election_timeout: Annotated[
        float,
        duration_option(
            "--election-timeout",
            allowed=ELECTION_TIMEOUT,
            help="How long members wait before an election",
        ),
    ] = 2.0,
    control_port: Annotated[
        int,
        typer.Option("--control-port", min=0, max=65535, help="0 picks a free port (0 to 65535)"),
    ] = 0,
    initiate: Annotated[
        bool, typer.Option("--initiate", help="Initiate the set and print what to try next")
    ] = False,
) -> None:
    """Run the replica-set stand-in in the foreground: URI on line 1, control address on line 2,
    on line 3 the file that makes a shell the operator (`. FILE`: access control and TLS)."""
    from hubctl.lab.standin import StandinCluster
    from hubctl.lab.standin.control import serve_control

    timeout = election_timeout
    if base_port and base_port + members - 1 > 65535:
        last = base_port + members - 1
        fail(f"--base-port {base_port}: {members} members need ports to {last} > 65535", EXIT_USAGE)
    ports = [base_port + i for i in range(members)] if base_port else None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        cluster = StandinCluster(members, ports, name, timeout).start()
    except OSError as exc:
        fail(f"cannot start the stand-in: {exc}")
    control = serve_control(cluster, control_port)
    try:
        if initiate:
            # Before the lines: whoever reads them may log in at once.
            cluster.initiate()
        sys.stdout.write(cluster.uri + "\n")
        sys.stdout.write(f"127.0.0.1:{control.server_address[1]}\n")
        env_file = cluster.credentials.env_file("operator")
        sys.stdout.write(f"{env_file}\n")
        sys.stdout.flush()
        hint = "" if initiate else "initiate it with hubctl init-replset; "
        sys.stderr.write(
            f"stand-in replica set {name}: {members} members, election timeout {timeout:g}s, "
            f"access control and TLS on; {hint}Ctrl-C stops it\n"
        )
        if initiate:
            _guide(cluster, env_file, f"127.0.0.1:{control.server_address[1]}")
        else:
            sys.stderr.write(
                f"users: --create-users {cluster.passwords_dir}\nas the operator: . {env_file}\n"
            )
        stop.wait()
    finally:
        control.shutdown()
        cluster.stop()
        sys.stderr.write("stand-in stopped\n")


@lab_app.command("ctl")
def lab_ctl(
    action: Annotated[str, typer.Argument(help="kill, revive, isolate, heal or status")],
    member: Annotated[str | None, typer.Argument(help="HOST:PORT or member index")] = None,
    control: Annotated[str, typer.Option("--control", help="Control address from lab mongo")] = "",
) -> None:
    """Break or mend one stand-in member from another process."""
    from hubctl.lab.standin.control import ControlError, control_request

    if not control:
        fail("--control ADDR is required (the second line `hubctl lab mongo` printed)", EXIT_USAGE)
    if action != "status" and not member:
        fail(f"{action} needs a MEMBER", EXIT_USAGE)
    try:
        answer = control_request(control, action, member)
    except ControlError as exc:
        fail(str(exc))
    if action == "status":
        print_json(answer)
    else:
        say(f"{answer['action']} {answer['member']}: done")


def _guide(cluster: StandinCluster, env_file: Path, control: str) -> None:
    """Show the set initiated with its users (as init-replset --create-users), and print
    what to try; hubctl there takes the operator's credentials from the sourced file."""
    from rich.console import Console

    from hub.mongo import access_as
    from hub.replset import ReplicaSet
    from hubctl.replset_commands import render_topology

    uri, hosts = cluster.uri, cluster.hosts
    with access_as(cluster.access("operator")):
        rs = ReplicaSet(uri)
        try:
            topo = rs.topology()
        finally:
            rs.close()
    out = Console(stderr=True)
    out.print(render_topology(topo))
    out.soft_wrap = True
    out.print(
        f"""Try, in another shell:
  . {env_file}
  export HUBCTL_MONGO_URI='{uri}'
  .venv/bin/hubctl status
  .venv/bin/hubctl stepdown --to {hosts[-1]}
  .venv/bin/hubctl lab ctl --control {control} kill {hosts[-1]}
  .venv/bin/hubctl status --json""",
        highlight=False,
    )


lab_commands.register(lab_app)
