"""The `client-agent` command: bootstrap, run, serve; one-line errors, meaningful exit codes."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from client_agent.agent_run import run_agent
from client_agent.bootstrap import BootstrapError, bootstrap
from client_agent.config import AgentConfig, resolve_config
from client_agent.report_service import start_report_service
from client_agent.run_handoff_runner import HandoffRunner
from client_agent.run_now import AgentRunner, Runner
from client_agent.spool import Spool
from client_agent.state import ClientState, StateError
from hubcluster.config_check import ConfigError, split_address
from hubcluster.exit_codes import EXIT_FAILED, EXIT_USAGE
from hubcluster.keys import KeyFileError
from hubcluster.messages import MessageError
from hubcluster.run_handoff import RunHandoffRequest, RunHandoffResult, take_request, write_result
from hubcluster.run_request import class_problem
from hubcluster.usage_errors import command_app

# A config, key or state file this client cannot use is EXIT_USAGE: running again as it is
# cannot succeed.
app = command_app(
    "The hubcluster client agent: bootstrap to a hub, run the policy, serve reports.",
    prefix="client-agent: error: ",
)

WorkdirOption = Annotated[
    Path | None, typer.Option("--workdir", help="Client workdir (default settings otherwise).")
]
ConfigOption = Annotated[Path | None, typer.Option("--config", help="Client TOML config file.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"client-agent: error: {message}", err=True)
    return typer.Exit(code)


def _setup(config_file: Path | None, workdir: Path | None, verbose: bool) -> AgentConfig:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("asyncssh").setLevel(logging.ERROR)
    try:
        return resolve_config(config_file, workdir)
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


@app.command("bootstrap")
def bootstrap_command(
    hub: Annotated[str, typer.Argument(help="The hub to bootstrap to: HOST[:PORT] (port 5308).")],
    hub_fingerprint: Annotated[
        str | None,
        typer.Option("--hub-fingerprint", help="The hub key's SHA256:... fingerprint to pin."),
    ] = None,
    trust_on_first_use: Annotated[
        bool,
        typer.Option("--trust-on-first-use", help="Pin whatever key the hub presents now."),
    ] = False,
    workdir: WorkdirOption = None,
    config_file: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Make this client's key pair, verify the hub key, register, and fetch the policy."""
    config = _setup(config_file, workdir, verbose)
    try:
        result = asyncio.run(bootstrap(config, hub, hub_fingerprint, trust_on_first_use))
    except BootstrapError as exc:
        raise _fail(str(exc), exc.exit_code) from None
    except (KeyFileError, StateError, OSError) as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    typer.echo(result.summary())
    if result.problems:  # registered, but the policy could not be fetched yet
        raise typer.Exit(EXIT_FAILED)


@app.command("run")
def run_command(
    workdir: WorkdirOption = None,
    config_file: ConfigOption = None,
    verbose: VerboseOption = False,
    define: Annotated[
        list[str] | None,
        typer.Option("--define", "-D", help="A class to define for this run (repeatable)."),
    ] = None,
) -> None:
    """One agent run: find a hub, follow the master, update the policy, run it, spool reports."""
    config = _setup(config_file, workdir, verbose)
    for name in define or []:
        problem = class_problem(name)
        if problem:
            raise _fail(f"--define: {problem}", EXIT_USAGE)
    # A hub's ask handed over by the report service (serve.run_via = "systemd"): this run
    # takes it, whoever started it (the path unit, or the timer first), and answers it.
    spool_dir = ClientState(config.workdir).spool_dir
    try:
        request = take_request(spool_dir)
    except MessageError as exc:
        raise _fail(f"run request refused, nothing run: {exc}", EXIT_USAGE) from None
    except OSError as exc:
        # A spool we cannot change (read-only, full) must not stop the policy from running;
        # the hub's ask goes unanswered and its wait says so.
        print(f"client-agent: run request not taken: {exc.strerror or exc}", file=sys.stderr)
        request = None
    classes = frozenset(define or ()) | frozenset(request.classes if request else ())
    try:
        result = asyncio.run(run_agent(config, classes=classes))
    except (KeyFileError, StateError) as exc:
        _answer(spool_dir, request, EXIT_USAGE, str(exc))
        raise _fail(str(exc), EXIT_USAGE) from None
    _answer(spool_dir, request, result.exit_code, result.summary())
    stream = sys.stdout if result.exit_code == 0 else sys.stderr
    print(result.summary(), file=stream)
    raise typer.Exit(result.exit_code)


def _answer(spool_dir: Path, request: RunHandoffRequest | None, code: int, summary: str) -> None:
    if request is None:
        return
    try:
        write_result(spool_dir, RunHandoffResult(request.request_id, code, summary))
    except OSError as exc:  # the run happened; only the hub's answer is lost (it times out)
        typer.echo(f"client-agent: warning: cannot write the run result: {exc}", err=True)


@app.command("serve")
def serve_command(
    listen: Annotated[
        str | None, typer.Option("--listen", help="ADDR:PORT to listen on (config: serve.listen).")
    ] = None,
    workdir: WorkdirOption = None,
    config_file: ConfigOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Serve this client's reports to the hub's collector until stopped."""
    config = _setup(config_file, workdir, verbose)
    try:
        address = split_address(listen or config.listen)
    except ValueError as exc:
        raise _fail(f"--listen: {exc}", EXIT_USAGE) from None
    state = ClientState(config.workdir)
    problem = state.bootstrap_problem()
    if problem:
        raise _fail(f"not bootstrapped ({problem}); run client-agent bootstrap", EXIT_USAGE)
    try:
        # The `run` command runs this same client's agent, with the same config.
        runner: Runner
        if config.run_via == "systemd":
            runner = HandoffRunner(state.spool_dir)
        elif config_file:
            runner = AgentRunner(["--config", str(config_file)])
        else:
            runner = AgentRunner(["--workdir", str(config.workdir)])
        asyncio.run(_serve(state, address, config.spool_max_bytes, runner))
    except (KeyFileError, StateError) as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    except OSError as exc:
        # A file error (the spool on a read-only or full disk) names its file, not the socket.
        what = f"write {exc.filename}" if exc.filename else f"listen on {address[0]}:{address[1]}"
        raise _fail(f"cannot {what}: {exc.strerror or exc}", EXIT_USAGE) from None


async def _serve(
    state: ClientState, address: tuple[str, int], max_bytes: int, runner: Runner
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with Spool(state.spool_dir, max_bytes) as spool:
        acceptor = await start_report_service(state, address, spool, runner)
        typer.echo(f"client-agent: serving reports on {address[0]}:{acceptor.get_port()}")
        try:
            await stop.wait()
        finally:
            acceptor.close()
            await acceptor.wait_closed()


def main() -> None:
    app()
