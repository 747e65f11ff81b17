"""What an agent run costs against a hub service on loopback.

Run: .venv/bin/python benchmarks/agent_run.py [--rounds 7] [--files 1000] [--size 1024]

Starts one hub SSH service (real asyncssh, in its own process), bootstraps a client,
then times, as medians over the rounds:
  idle run   - a whole agent run with nothing to update (connect, `master`, promises under
               their ifelapsed lock, two spool records), in-process and as a CLI process;
  delta run  - a whole run right after the hub published a release changing 1 file of the
               policy: bytes moved (manifest + the file), files fetched, seconds.
The first full fetch of the policy (at bootstrap) is shown for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from client_agent.agent_run import run_agent
from client_agent.bootstrap import bootstrap
from client_agent.config import AgentConfig
from hub.masterfiles import publish_release
from hub.ssh_service import start_hub_service
from hubcluster.keys import ensure_key_pair, key_fingerprint
from hubcluster.messages import MasterInfo

PROMISES = '[[promise]]\nname = "true"\ncheck = "true"\n'


def serve_hub(workdir: Path) -> None:
    """The hub side, in its own process (as hubd is): print the address, serve until killed."""
    address = ""

    async def master_info() -> MasterInfo:
        return MasterInfo(address, [address])

    async def serve() -> None:
        nonlocal address
        acceptor = await start_hub_service(
            workdir, ("127.0.0.1", 0), master_info, [ipaddress.ip_network("127.0.0.0/8")]
        )
        address = f"127.0.0.1:{acceptor.get_port()}"
        print(address, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


def start_hub(workdir: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-hub", str(workdir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def write_policy(source: Path, files: int, size: int, changed: int) -> None:
    source.mkdir(parents=True, exist_ok=True)
    (source / "promises.toml").write_text(PROMISES)
    for i in range(files):
        path = source / f"dir{i % 20:02d}" / f"file{i:04d}.cf"
        path.parent.mkdir(exist_ok=True)
        body = f"# file {i}, version {changed if i == 0 else 0}\n"
        path.write_text(body + "x" * max(size - len(body), 0))


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1024, help="bytes per policy file")
    parser.add_argument("--serve-hub", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_hub:
        return serve_hub(args.serve_hub)

    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        root = Path(tmp)
        hub_key, _ = ensure_key_pair(root / "hub" / "ppkeys" / "localhost.priv")
        hub, address = start_hub(root / "hub")
        source = root / "source"
        masterfiles = root / "hub" / "masterfiles"
        write_policy(source, args.files, args.size, 0)
        t0 = time.perf_counter()
        publish_release(masterfiles, source)
        publish_seconds = time.perf_counter() - t0

        config = AgentConfig(root / "client", hostname="bench", connect_timeout=3.0)
        t0 = time.perf_counter()
        boot = asyncio.run(bootstrap(config, address, hub_fingerprint=key_fingerprint(hub_key)))
        boot_seconds = time.perf_counter() - t0
        assert boot.update is not None and not boot.problems, boot.summary()

        idle = []
        for _ in range(args.rounds):
            result = asyncio.run(run_agent(config))
            assert result.exit_code == 0 and result.update is None, result.summary()
            idle.append(result.seconds)

        cli = []
        agent = Path(sys.executable).with_name("client-agent")
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            subprocess.run(
                [agent, "run", "--workdir", str(config.workdir)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            cli.append(time.perf_counter() - t0)

        delta_seconds, delta_bytes, delta_files = [], [], []
        for round_no in range(1, args.rounds + 1):
            write_policy(source, args.files, args.size, round_no)
            publish_release(masterfiles, source)
            result = asyncio.run(run_agent(config))
            assert result.exit_code == 0 and result.update is not None, result.summary()
            delta_seconds.append(result.seconds)
            delta_bytes.append(result.update.bytes_moved)
            delta_files.append(result.update.files_fetched)
        hub.terminate()
        hub.wait(10)

    total = args.files + 1
    print(f"policy: {total} files of ~{args.size} bytes; {args.rounds} rounds; loopback")
    print(f"hub publish of the policy:           {publish_seconds:.3f} s")
    print(
        f"bootstrap incl. first full fetch:    {boot_seconds:.3f} s, "
        f"{boot.update.bytes_moved} bytes, {boot.update.files_fetched} files"
    )
    print(
        f"idle run (nothing to update):        median {median(idle):.3f} s "
        f"(min {min(idle):.3f}, max {max(idle):.3f})"
    )
    print(
        f"idle `client-agent run` process:     median {median(cli):.3f} s "
        "(wall time, interpreter start and imports included)"
    )
    print(
        f"run updating 1 of {total} files:      median {median(delta_seconds):.3f} s "
        f"(min {min(delta_seconds):.3f}, max {max(delta_seconds):.3f}), "
        f"{int(median(delta_bytes))} bytes moved, {int(median(delta_files))} file fetched"
    )


if __name__ == "__main__":
    main()
