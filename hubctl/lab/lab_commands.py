"""`hubctl lab up|kill|revive|isolate|heal|status|down|scenario`: the whole cluster, locally."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live

from hubctl.duration_option import ELECTION_TIMEOUT, LAB_INTERVAL, LAB_RUN, duration_option
from hubctl.lab.cluster import LabCluster
from hubctl.lab.standin.control import ControlError, control_request, serve_control
from hubctl.output import err_console, fail, print_json, say

DirOpt = Annotated[Path, typer.Option("--dir", help="Where the lab keeps its files")]
DEFAULT_DIR = Path("lab-run")
# Each client is an agent, its report service and ports on this machine.
MAX_CLIENTS = 500
ClientsOpt = Annotated[
    int,
    typer.Option(
        "--clients", min=1, max=MAX_CLIENTS, help=f"How many clients (1 to {MAX_CLIENTS})"
    ),
]


def up(
    clients: ClientsOpt = 10,
    directory: DirOpt = DEFAULT_DIR,
    run_for: Annotated[
        float | None,
        duration_option("--for", allowed=LAB_RUN, help="Run this long, then stop"),
    ] = None,
    agent_interval: Annotated[
        float,
        duration_option("--agent-interval", allowed=LAB_INTERVAL, help="Between agent runs"),
    ] = 15.0,
    collect_interval: Annotated[
        float,
        duration_option(
            "--collect-interval", allowed=LAB_INTERVAL, help="Between collection rounds"
        ),
    ] = 10.0,
    election_timeout: Annotated[
        float,
        duration_option(
            "--election-timeout", allowed=ELECTION_TIMEOUT, help="The replica set's, e.g. 2s"
        ),
    ] = 2.0,
    prometheus: Annotated[
        bool,
        typer.Option(
            "--prometheus", help="Also run Debian's prometheus on loopback, scraping the hubs"
        ),
    ] = False,
) -> None:
    """Bring up three hubs, a replica set, and CLIENTS clients; show a live dashboard."""
    from hubctl.lab.dashboard import Timeline, render, snapshot
    from hubctl.lab.haproxy import HaproxyMissing, haproxy_binary
    from hubctl.lab.prometheus import LabPrometheus, PrometheusMissing

    if (directory / "lab.json").exists() and _lab_alive(directory):
        fail(f"a lab is already running in {directory} (hubctl lab down --dir {directory})")
    lab = LabCluster(directory.resolve(), clients, election_timeout, collect_interval)
    lab.credentials_dir = lab.directory / "db"  # where lab up tells the operator to look
    scraper: LabPrometheus | None = None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    err_console.print(f"replica set: {lab.replset_kind}", highlight=False)
    try:
        with err_console.status("starting the replica set, three hubd, and the clients..."):
            lab.up()
        err_console.print(lab.ready_line(), highlight=False)
        if haproxy_binary() is not None:
            try:
                lab.start_haproxy()
            except (HaproxyMissing, RuntimeError) as exc:
                err_console.print(f"no haproxy: {exc}", highlight=False)
        control = serve_control(lab, on_down=stop.set)
        address = f"127.0.0.1:{control.server_address[1]}"
        lab.save_state(address)
        say(f"export HUBCTL_MONGO_URI='{lab.uri}'")
        for line in lab.operator_lines(directory):
            say(line)
        for line in lab.portal_lines():
            say(line)
        if prometheus:
            targets = [(h.name, f"127.0.0.1:{h.portal_port}") for h in lab.hubs]
            scraper = LabPrometheus(lab.directory, targets)
            try:
                say(f"prometheus (scraping the hubs, alert rules loaded): {scraper.start()}")
            except PrometheusMissing as exc:
                err_console.print(f"no prometheus: {exc}", highlight=False)
        say(f"lab control at {address}; in another shell: hubctl lab kill hub1 --dir {directory}")
        timeline = Timeline()
        deadline = time.monotonic() + run_for if run_for else None
        next_run = 0.0
        with Live(render(snapshot(lab, timeline)), refresh_per_second=1, transient=False) as live:
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                if time.monotonic() >= next_run:
                    asyncio.run(lab.agent_runs())
                    timeline.agent_rounds += 1
                    next_run = time.monotonic() + agent_interval
                live.update(render(snapshot(lab, timeline)))
                stop.wait(1.0)
        if not live.console.is_terminal:
            live.console.line()  # off a terminal the last frame ends without a newline
        final = snapshot(lab, timeline)
        control.shutdown()
    finally:
        if scraper is not None:
            scraper.stop()
        lab.down()
        (directory / "lab.json").unlink(missing_ok=True)
    say(
        f"lab stopped: {final['reports']} reports stored, {timeline.agent_rounds} agent rounds, "
        f"{len(timeline.failovers)} failovers; clients per hub: {final['per_server']}"
    )


def _lab_alive(directory: Path) -> bool:
    try:
        control_request(_control(directory), "status")
    except (ControlError, typer.Exit):
        return False
    return True


def _control(directory: Path) -> str:
    try:
        state = json.loads((directory / "lab.json").read_text())
    except (FileNotFoundError, ValueError):
        fail(f"no running lab in {directory} (start one with hubctl lab up --dir {directory})")
    if not state.get("control"):
        fail(f"the lab in {directory} is still starting")
    return state["control"]


def _act(action: str, hub: str, directory: Path) -> None:
    try:
        answer = control_request(_control(directory), action, hub)
    except ControlError as exc:
        fail(str(exc))
    say(str(answer["member"]))


def kill(
    hub: Annotated[str, typer.Argument(help="hub1, hub2, hub3")], directory: DirOpt = DEFAULT_DIR
) -> None:
    """Crash a hub: its mongod and its hubd."""
    _act("kill", hub, directory)


def revive(hub: Annotated[str, typer.Argument()], directory: DirOpt = DEFAULT_DIR) -> None:
    """Start a killed hub again."""
    _act("revive", hub, directory)


def isolate(hub: Annotated[str, typer.Argument()], directory: DirOpt = DEFAULT_DIR) -> None:
    """Cut a hub's mongod off from its peers."""
    _act("isolate", hub, directory)


def heal(hub: Annotated[str, typer.Argument()], directory: DirOpt = DEFAULT_DIR) -> None:
    """Reconnect an isolated hub."""
    _act("heal", hub, directory)


def replace(
    hub: Annotated[str, typer.Argument(help="The hub to replace for good")],
    directory: DirOpt = DEFAULT_DIR,
) -> None:
    """Kill a hub for good and replace it by a new one (hubctl member replace, caught up)."""
    _act("replace", hub, directory)


def status(directory: DirOpt = DEFAULT_DIR) -> None:
    """The running lab's hubs, as JSON."""
    try:
        print_json(control_request(_control(directory), "status"))
    except ControlError as exc:
        fail(str(exc))


def down(directory: DirOpt = DEFAULT_DIR) -> None:
    """Stop a running lab (it cleans up every process it started)."""
    try:
        control_request(_control(directory), "down")
    except ControlError as exc:
        fail(str(exc))
    say("lab stopping")


scenario_app = typer.Typer(help="Scripted stories that check themselves.")


@scenario_app.command("failover")
def scenario_failover(
    clients: ClientsOpt = 6,
) -> None:
    """Collect, kill the master, check re-pointing and every report; exit 0 only if all held."""
    from hubctl.lab.scenario import failover

    rows = failover(clients)
    for what, ok, at in rows:
        mark = "[green]ok[/]  " if ok else "[red]FAIL[/]"
        err_console.print(f"{mark} {at:6.2f}s  {what}", highlight=False)
    raise typer.Exit(0 if rows and all(ok for _, ok, _ in rows) else 1)


def register(app: typer.Typer) -> None:
    app.add_typer(scenario_app, name="scenario")
    app.command("up")(up)
    for command in (kill, revive, isolate, heal, replace, status, down):
        app.command(command.__name__)(command)
