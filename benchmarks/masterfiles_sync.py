"""Peer sync of the masterfiles vs rsync over OpenSSH, on loopback, for a 10,000-file tree.

Run: .venv/bin/python benchmarks/masterfiles_sync.py [--files 10000] [--size 1024] [--rounds 5]
     [--copies 3]

Setup (untimed): installs OpenSSH and rsync when missing (benchmarks/setup_baselines.sh),
starts the master hub's SSH service in its own process (as hubd runs it), and an sshd on a
loopback high port as a non-daemon child with its own config, host key and authorized_keys
in a temp dir. Then, as medians over the rounds:

  first full copy - --copies times each, alternating which tool goes first, every copy
                    into a fresh directory (nothing is deleted while measuring: ext4
                    skips recently freed inodes, so deletions would tax whoever runs next);
  nothing changed - our peer sync (connect, `keys`, `masterfiles`: equal tree hash, done)
                    vs `rsync -a --delete` of the same tree (and `rsync -ac`, which reads
                    every file on both sides as our hash checks do);
  1 file changed  - the master published a release changing one file; our sync fetches the
                    manifest as a delta against the release it holds and that file in one
                    stream, links the rest, switches atomically; rsync pulls the operator's
                    source tree in which one file changed.
  agent, 1 file   - a client agent's policy update (client_agent.policy_update) from release
                    to release of a --agent-files tree differing in one file.

Bytes: ours as counted by the sync (transfer commands' reads + command output), rsync's from
`--stats` (bytes sent + received); and, for both, everything that crossed the TCP connection
(SSH handshake and encryption included), counted by a relay process both go through
(benchmarks/byte_relay.py). The sshd + rsync baseline is in benchmarks/sshd_rsync.py.
The first full copy is also compared with `rsync -az` (our stream is compressed).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script (the command in RESULTS.md): the repository's root makes `benchmarks` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.byte_relay import Relay, spawn  # noqa: E402
from benchmarks.sshd_rsync import Sshd  # noqa: E402
from client_agent.policy_update import update_policy  # noqa: E402
from client_agent.state import ClientState  # noqa: E402
from hub.config import HubConfig, HubEntry  # noqa: E402
from hub.keystore import KeyStore  # noqa: E402
from hub.masterfiles import publish_release, release_dir  # noqa: E402
from hub.peer_sync import SyncResult, sync_with_peers  # noqa: E402
from hub.ssh_service import start_hub_service  # noqa: E402
from hubcluster.hub_session import open_hub  # noqa: E402
from hubcluster.keys import ensure_key_pair  # noqa: E402
from hubcluster.messages import MasterInfo  # noqa: E402

HERE = Path(__file__).resolve().parent
# (case, time ratio, wire-bytes ratio) at most, against rsync -a.
GOALS = [
    ("first full copy", 1.5, 1.1),
    ("1 file changed", 1.0, 1.5),
    ("nothing changed", 0.2, None),
]
PROMISES = '[[promise]]\nname = "true"\ncheck = "true"\n'


# ----- the master hub, in its own process -----------------------------------------------------


def serve_hub(workdir: Path) -> None:
    """The master hub's SSH service, in its own process: print the port, serve until killed."""

    async def master_info() -> MasterInfo:
        return MasterInfo(None, [])

    async def serve() -> None:
        acceptor = await start_hub_service(workdir, ("127.0.0.1", 0), master_info)
        print(acceptor.get_port(), flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


# ----- the tree -------------------------------------------------------------------------------


def tree_file(root: Path, i: int) -> Path:
    return root / f"d{i // 100:03d}" / f"f{i:05d}.cf"


def make_tree(root: Path, files: int, size: int) -> None:
    (root / "promises.toml").parent.mkdir(parents=True, exist_ok=True)
    (root / "promises.toml").write_text(PROMISES)
    for i in range(files - 1):
        path = tree_file(root, i)
        path.parent.mkdir(exist_ok=True)
        line = f'# file {i}: bundle agent b{i} {{ reports: "x"; }}\n'
        path.write_text((line * (size // len(line) + 1))[:size])


def change_one(root: Path, files: int, round_no: int) -> None:
    path = tree_file(root, files // 2)
    path.write_text(path.read_text()[:-20] + f"# round {round_no:10d}\n")


# ----- measurements ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=1024, help="bytes per file")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--copies", type=int, default=3, help="first full copies of each tool")
    parser.add_argument("--agent-files", type=int, default=1000, help="files in the agent case")
    parser.add_argument("--serve-hub", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_hub:
        return serve_hub(args.serve_hub)
    run(args)


def run(args: argparse.Namespace) -> None:
    subprocess.run(["bash", str(HERE / "setup_baselines.sh")], check=True, stdout=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="mfsync-bench-"))
    hub_proc = sshd = None
    try:
        master_dir = tmp / "hub0"
        hub_key, _ = ensure_key_pair(master_dir / "ppkeys" / "localhost.priv")
        mirrors = [tmp / f"hub1-{n}" for n in range(args.copies)]
        for mirror in mirrors:
            (mirror / "ppkeys").mkdir(parents=True)
            for name in ("localhost.priv", "localhost.pub"):
                shutil.copy2(master_dir / "ppkeys" / name, mirror / "ppkeys" / name)
        source = tmp / "source"
        make_tree(source, args.files, args.size)
        publish_release(master_dir / "masterfiles", source)
        hub_proc, hub_port = spawn(__file__, "--serve-hub", str(master_dir))
        sshd = Sshd(tmp / "sshd")
        rsync_c_target = tmp / "rsync-c-mirror"
        rsync_c_target.mkdir()

        def ours(mirror_dir: Path) -> tuple[float, SyncResult, int]:
            with Relay(hub_port) as relay:
                address = f"127.0.0.1:{relay.port}"
                config = HubConfig(
                    name="hub1",
                    workdir=mirror_dir,
                    listen="127.0.0.1:0",
                    trust_keys_from=[],
                    replset_name="CFEngineNova",
                    mongo_uri="mongodb://127.0.0.1:27017/?replicaSet=CFEngineNova",
                    max_staleness=90.0,
                    hubs=[
                        HubEntry("hub0", "127.0.0.1:27017", address),
                        HubEntry("hub1", "127.0.0.1:27018", "127.0.0.1:1"),
                    ],
                )
                keystore = KeyStore(config.ppkeys)
                start = time.perf_counter()
                result = asyncio.run(sync_with_peers(config, keystore, hub_key, address, 10.0))
                seconds = time.perf_counter() - start
            if result.mirror_failed or result.peers_failed:
                sys.exit(f"our sync failed: {result.summary()}")
            return seconds, result, relay.bytes

        def connection() -> tuple[float, int, int]:
            with Relay(sshd.port) as relay:
                start = time.perf_counter()
                sshd.connect_only(relay.port)
                seconds = time.perf_counter() - start
            return seconds, 0, relay.bytes

        def theirs(target: Path, flags: str = "-a") -> tuple[float, int, int]:
            with Relay(sshd.port) as relay:
                start = time.perf_counter()
                stats = sshd.rsync(relay.port, source, target, flags)
                seconds = time.perf_counter() - start
            return seconds, stats, relay.bytes

        samples: dict[tuple[str, str], list[tuple[float, int, int]]] = {}

        def first_copy(n: int) -> None:
            def peer_sync() -> None:
                secs, result, wire = ours(mirrors[n])
                assert result.files_fetched == args.files, result.summary()
                samples.setdefault(("first full copy", "peer sync"), []).append(
                    (secs, our_bytes(result), wire)
                )

            def rsync() -> None:
                target = tmp / f"rsync-mirror-{n}"
                target.mkdir()
                samples.setdefault(("first full copy", "rsync -a"), []).append(theirs(target))

            for step in (peer_sync, rsync) if n % 2 == 0 else (rsync, peer_sync):
                step()
            target = tmp / f"rsync-z-mirror-{n}"
            target.mkdir()
            samples.setdefault(("first full copy", "rsync -az"), []).append(theirs(target, "-az"))

        for n in range(args.copies):
            first_copy(n)
        mirror_dir, rsync_target = mirrors[-1], tmp / f"rsync-mirror-{args.copies - 1}"
        theirs(rsync_c_target, "-ac")

        for _ in range(args.rounds):
            secs, result, wire = ours(mirror_dir)
            assert result.transfer_commands == 0 and result.masterfiles_commands == 1, (
                result.summary()
            )
            samples.setdefault(("nothing changed", "peer sync"), []).append(
                (secs, our_bytes(result), wire)
            )
            samples.setdefault(("nothing changed", "rsync -a"), []).append(theirs(rsync_target))
            samples.setdefault(("nothing changed", "rsync -ac"), []).append(
                theirs(rsync_c_target, "-ac")
            )
            samples.setdefault(("nothing changed", "ssh true"), []).append(connection())
        for n in range(args.rounds):
            change_one(source, args.files, n)
            publish_release(master_dir / "masterfiles", source)
            secs, result, wire = ours(mirror_dir)
            assert result.files_fetched == 1, result.summary()
            samples.setdefault(("1 file changed", "peer sync"), []).append(
                (secs, our_bytes(result), wire)
            )
            samples.setdefault(("1 file changed", "rsync -a"), []).append(theirs(rsync_target))
            samples.setdefault(("1 file changed", "rsync -ac"), []).append(
                theirs(rsync_c_target, "-ac")
            )
        agent_case(args, tmp, master_dir, hub_key, hub_port, samples)
        rows: list[tuple[str, str, float, int, int]] = []
        for (case, tool), runs in samples.items():
            rows.append(
                (
                    case,
                    tool,
                    statistics.median(r[0] for r in runs),
                    int(statistics.median(r[1] for r in runs)),
                    int(statistics.median(r[2] for r in runs)),
                )
            )
        report(args, rows, release_dir(master_dir / "masterfiles", result.release_after or ""))
        pairs = zip(
            samples[("first full copy", "peer sync")],
            samples[("first full copy", "rsync -a")],
            strict=True,
        )
        ratios = ", ".join(f"x{a[0] / b[0]:.2f}" for a, b in pairs)
        print(f"  first full copy, time / rsync -a per copy: {ratios}")
    finally:
        if sshd is not None:
            sshd.stop()
        if hub_proc is not None:
            hub_proc.terminate()
            hub_proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def agent_case(
    args: argparse.Namespace,
    tmp: Path,
    master_dir: Path,
    hub_key: object,
    hub_port: int,
    samples: dict[tuple[str, str], list[tuple[float, int, int]]],
) -> None:
    """A client agent's update between releases of a smaller tree differing in one file.

    The agent's own code (client_agent.policy_update) over a session to the master hub; the
    session authenticates with the hub key (as a peer), which changes nothing in the transfer.
    """
    source = tmp / "agent-source"
    make_tree(source, args.agent_files, args.size)
    root = master_dir / "masterfiles"
    state = ClientState(tmp / "agent")
    state.workdir.mkdir()

    def update(release: str) -> tuple[float, int, int]:
        async def go() -> tuple[float, int]:
            address = f"127.0.0.1:{relay.port}"
            start = time.perf_counter()
            async with open_hub(address, hub_key, hub_key, 10.0) as session:  # type: ignore[arg-type]
                result = await update_policy(state, session, release)
            return time.perf_counter() - start, result.bytes_moved

        with Relay(hub_port) as relay:
            seconds, own = asyncio.run(go())
        return seconds, own, relay.bytes

    update(publish_release(root, source, switch=False))
    for n in range(args.rounds):
        change_one(source, args.agent_files, n)
        samples.setdefault(("agent, 1 file", "agent"), []).append(
            update(publish_release(root, source, switch=False))
        )


def our_bytes(result: SyncResult) -> int:
    return result.bytes_fetched + result.command_bytes


def report(
    args: argparse.Namespace, rows: list[tuple[str, str, float, int, int]], tree: Path
) -> None:
    total = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    print(
        f"\nmasterfiles sync on loopback: {args.files} files, {total / 1e6:.1f} MB, "
        f"medians of {args.rounds} rounds (first full copy: median of {args.copies})\n"
        "ssh true = an OpenSSH connection alone (rsync's fixed cost); own count = what the tool "
        "says it moved\n"
    )
    header = ("case", "tool", "seconds", "bytes (own count)", "bytes on the wire")
    print(f"{header[0]:<16} {header[1]:<10} {header[2]:>9} {header[3]:>18} {header[4]:>18}")
    by_case: dict[str, dict[str, tuple[float, int, int]]] = {}
    for case, tool, secs, own, wire in rows:
        by_case.setdefault(case, {})[tool] = (secs, own, wire)
        print(f"{case:<16} {tool:<10} {secs:>9.3f} {own:>18,} {wire:>18,}")
    print()
    for case, tools in by_case.items():
        ours = tools.get("peer sync")
        for tool, theirs in tools.items():
            if ours is None or tool in ("peer sync", "ssh true"):
                continue
            print(
                f"{case}: peer sync / {tool}: time x{ours[0] / theirs[0]:.2f}, "
                f"own-count bytes x{ours[1] / theirs[1]:.2f}, wire bytes x{ours[2] / theirs[2]:.2f}"
            )
    print("\ngoals (issue 15 part 3), against rsync -a in this run:")
    for case, time_goal, bytes_goal in GOALS:
        ours, theirs = by_case[case]["peer sync"], by_case[case]["rsync -a"]
        shown = [f"time x{ours[0] / theirs[0]:.2f} (<= {time_goal})"]
        ok = ours[0] / theirs[0] <= time_goal
        if bytes_goal is not None:
            ratio = ours[2] / theirs[2]
            shown.append(f"wire bytes x{ratio:.2f} (<= {bytes_goal})")
            ok = ok and ratio <= bytes_goal
        print(f"  {case}: {', '.join(shown)}: {'met' if ok else 'NOT MET'}")
    agent = by_case["agent, 1 file"]["agent"]
    met = "met" if agent[1] <= 10_000 else "NOT MET"
    print(f"  agent, 1 file: {agent[1]:,} bytes moved (<= 10,000; {agent[2]:,} on the wire): {met}")


if __name__ == "__main__":
    main()
