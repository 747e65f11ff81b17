"""What each SSH choice costs the collector: cipher, key exchange, host key, logging, keepalive.

Command: .venv/bin/python -m benchmarks.ssh_ciphers [--mib 64] [--connections 300]

1. Cipher: one channel moving bulk data over loopback, both ends in this process; CPU time
   per MiB moved, against asyncssh's classic aes128-ctr + hmac-sha2-256 in the same run.
2. Reused connection: the collector's side only (the server is another process), CPU per
   pull-like command (open a channel, run, read 3 report lines, close) on an open
   connection, the baseline being the collector before issue 15 (chacha20-poly1305, 15 s
   keepalive: a timer re-armed per received packet, asyncssh's logging as shipped: each
   call formats before asking its logger), then one change at a time to the shipped setup,
   the last being the ask on a kept `reports --stream` channel (hub.report_stream).
3. New connection: collector CPU per connection opened, authenticated, one command run and
   closed: before against now, then each key exchange and host-key type that both asyncssh
   and OpenSSH offer and ssh-audit passes.
4. Idle connection: CPU per keepalive exchange, scaled to one 5-minute collection round
   of an idle collector connection at the client keepalive interval.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import asyncssh

from hub.report_stream import ReportLink
from hubcluster import ssh_logging, ssh_options
from hubcluster.reports_protocol import END_LINE, STREAM_COMMAND

BASELINE = ("aes128-ctr", "hmac-sha2-256")
CHUNK = 1 << 20
REPORT_LINES = 3
ROUND_SECONDS = 300.0
# Candidates both asyncssh and OpenSSH implement that ssh-audit does not fail (its fails are
# SHA-1, NIST curves, group exchange's small moduli); sntrup761 needs liboqs in asyncssh.
KEX_CANDIDATES = ("mlkem768x25519-sha256", "curve25519-sha256", "diffie-hellman-group16-sha512")
HOST_KEY_CANDIDATES = ("ssh-ed25519", "rsa-sha2-512")
# The collector before issue 15: asyncssh's preferred cipher, 15 s client keepalive.
BEFORE: dict[str, Any] = {
    "encryption_algs": ["chacha20-poly1305@openssh.com"],
    "keepalive_interval": ssh_options.CLIENT_KEEPALIVE_SECONDS,
}
# The collector's connections now (hub/collector.py passes COLLECTOR_KEEPALIVE_SECONDS).
COLLECTOR: dict[str, Any] = {"keepalive_interval": ssh_options.COLLECTOR_KEEPALIVE_SECONDS}


class _Open(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False


async def _bulk(process: asyncssh.SSHServerProcess) -> None:
    total = int(process.command or "0")
    block = b"\0" * CHUNK
    for _ in range(total // CHUNK):
        process.stdout.write(block)
        await process.stdout.drain()
    process.exit(0)


async def _reports(process: asyncssh.SSHServerProcess) -> None:
    # What a report service answers: a few JSON lines in one write, then exit 0; on a
    # stream, the same lines and the end line for every ask.
    lines = '{"seq": 1, "kind": "outcome", "payload": {}}\n' * REPORT_LINES
    if process.command == STREAM_COMMAND:
        while await process.stdin.readline():
            process.stdout.write(lines + END_LINE + "\n")
    else:
        process.stdout.write(lines)
    process.exit(0)


# ----- 1. cipher -------------------------------------------------------------------------
async def cipher_cost(cipher: str, mac: str, mib: int) -> float:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    algs = {"encryption_algs": [cipher], "mac_algs": [mac], "config": None}
    acceptor = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        server_factory=_Open,
        process_factory=_bulk,
        encoding=None,
        **algs,
    )
    try:
        async with asyncssh.connect(
            "127.0.0.1", acceptor.get_port(), known_hosts=None, username="x", **algs
        ) as conn:
            start = time.process_time()
            async with conn.create_process(str(mib * CHUNK), encoding=None) as proc:
                got = 0
                while data := await proc.stdout.read(CHUNK):
                    got += len(data)
            cpu = time.process_time() - start
            assert got == mib * CHUNK, got
    finally:
        acceptor.close()
    return cpu / mib * 1000.0  # ms of CPU per MiB


# ----- the server for 2-4, in its own process -----------------------------------------------
async def serve() -> None:
    keys = [
        asyncssh.generate_private_key("ssh-ed25519"),
        asyncssh.generate_private_key("ssh-rsa", key_size=3072),
    ]
    acceptor = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=keys,
        server_factory=_Open,
        process_factory=_reports,
        kex_algs=list(KEX_CANDIDATES),
        encryption_algs=list(ssh_options.CIPHERS),
        mac_algs=list(ssh_options.MACS),
        signature_algs=["ssh-ed25519", "rsa-sha2-512"],
        keepalive_interval=0,
        config=None,
    )
    print(acceptor.get_port(), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    acceptor.close()


def _options(**change: Any) -> dict[str, Any]:
    # The shared list, built here rather than by client_options(), which would put the
    # logging guards in place (section 2 switches them itself).
    opts: dict[str, Any] = {
        "kex_algs": list(ssh_options.KEX_ALGS),
        "encryption_algs": list(ssh_options.CIPHERS),
        "mac_algs": list(ssh_options.MACS),
        "compression_algs": list(ssh_options.COMPRESSION),
        "signature_algs": list(ssh_options.SIGNATURE_ALGS),
        "server_host_key_algs": list(ssh_options.HOST_KEY_ALGS),
        "known_hosts": None,
        "username": "x",
        "config": None,
        "keepalive_interval": ssh_options.CLIENT_KEEPALIVE_SECONDS,
    }
    opts.update(change)
    return opts


async def _timed(count: int, parallel: int, one: Callable[[], Awaitable[None]]) -> float:
    """CPU ms per call of `one`, `parallel` at a time (the collector's way)."""
    limit = asyncio.Semaphore(parallel)

    async def bounded() -> None:
        async with limit:
            await one()

    start = time.process_time()
    await asyncio.gather(*(bounded() for _ in range(count)))
    return (time.process_time() - start) / count * 1000.0


async def _ask(link: ReportLink) -> None:
    answer = await link.ask("reports --since 0", 1 << 20, 1 << 20)
    assert answer.exit_status == 0 and len(answer.lines) == REPORT_LINES


async def new_connection_cost(port: int, count: int, stream: bool = False, **change: Any) -> float:
    opts = _options(**change)

    async def one() -> None:
        async with asyncssh.connect("127.0.0.1", port, **opts) as conn:
            if stream:
                await _ask(ReportLink(conn))
                return
            result = await conn.run("reports", check=True)
            assert result.stdout.count("\n") == REPORT_LINES

    await one()  # warm imports and caches
    return await _timed(count, 20, one)


async def reused_connection_cost(
    port: int, count: int, stream: bool = False, **change: Any
) -> float:
    opts = _options(**change)
    conns = [await asyncssh.connect("127.0.0.1", port, **opts) for _ in range(20)]
    free: asyncio.Queue[tuple[asyncssh.SSHClientConnection, ReportLink]] = asyncio.Queue()
    for conn in conns:
        free.put_nowait((conn, ReportLink(conn)))  # a link takes one ask at a time

    async def one() -> None:
        conn, link = await free.get()
        try:
            if stream:
                await _ask(link)
                return
            result = await conn.run("reports", check=True)
            assert result.stdout.count("\n") == REPORT_LINES
        finally:
            free.put_nowait((conn, link))

    try:
        await one()
        return await _timed(count, 20, one)
    finally:
        for conn in conns:
            conn.close()


async def keepalive_cost(port: int, count: int, seconds: float = 4.0) -> tuple[float, float]:
    """(CPU ms per keepalive exchange, exchanges per connection in `seconds`)."""
    interval = 0.25
    opts = _options(keepalive_interval=interval)
    conns = [await asyncssh.connect("127.0.0.1", port, **opts) for _ in range(count)]
    idle = _options(keepalive_interval=0)
    quiet = [await asyncssh.connect("127.0.0.1", port, **idle) for _ in range(count)]
    try:
        start = time.process_time()
        await asyncio.sleep(seconds)
        with_keepalive = time.process_time() - start
        for conn in conns:
            conn.close()
        start = time.process_time()
        await asyncio.sleep(seconds)
        without = time.process_time() - start
    finally:
        for conn in conns + quiet:
            conn.close()
    exchanges = count * seconds / interval
    return (with_keepalive - without) / exchanges * 1000.0, seconds / interval


def _row(name: str, ms: float, base: float, unit: str = "ms") -> None:
    print(f"  {name:52s} {ms:8.3f} {unit} {ms / base:6.2f}")


def _rows(medians: dict[str, float]) -> None:
    """One row per variant, the ratio against the first (the baseline)."""
    base = next(iter(medians.values()))
    for name, cost in medians.items():
        _row(name, cost, base)


Variants = dict[str, tuple[bool, dict[str, Any]]]


async def _alternate(
    variants: Variants, count: int, measure: Callable[..., Awaitable[float]], port: int
) -> dict[str, float]:
    """Median of 3 runs of each variant, taken in turn: the machine's load drifts."""
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(3):
        for name, (guarded, change) in variants.items():
            if guarded:
                ssh_logging.guard_ssh_logging()
            else:
                ssh_logging.unguard_ssh_logging()
            runs[name].append(await measure(port, count, **change))
    ssh_logging.guard_ssh_logging()
    return {name: sorted(costs)[1] for name, costs in runs.items()}


async def measure(args: argparse.Namespace) -> None:
    print("1. cipher: CPU ms per MiB moved (both ends), ratio to the baseline")
    base = await cipher_cost(*BASELINE, args.mib)
    _row(f"{BASELINE[0]} + {BASELINE[1]} (baseline)", base, base)
    for cipher in ssh_options.CIPHERS:
        _row(cipher, await cipher_cost(cipher, ssh_options.MACS[0], args.mib), base)

    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.ssh_ciphers", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(server.stdout.readline())  # type: ignore[union-attr]
        n = args.connections
        pulls = n * 10
        print(f"2. reused connection: collector CPU ms per pull-like command ({pulls})")
        reused: Variants = {
            "before: chacha20, keepalive 15s, logs as shipped": (False, BEFORE),
            "aes256-gcm, keepalive 15s, logs as shipped": (False, {}),
            "aes256-gcm, keepalive 15s, logs guarded": (True, {}),
            "aes256-gcm, keepalive off, logs guarded": (True, COLLECTOR),
            "now: the same, one ask on a kept reports stream": (
                True,
                {**COLLECTOR, "stream": True},
            ),
        }
        _rows(await _alternate(reused, pulls, reused_connection_cost, port))

        print(f"3. new connection: collector CPU ms per connection ({n}, 20 at a time)")
        fresh: Variants = {
            "before: chacha20, logs as shipped": (False, BEFORE),
            "shared options, logs guarded": (True, COLLECTOR),
            "now: the same, its one ask on a reports stream": (
                True,
                {**COLLECTOR, "stream": True},
            ),
        }
        for kex in KEX_CANDIDATES:
            for host_key in HOST_KEY_CANDIDATES:
                change = {"kex_algs": [kex], "server_host_key_algs": [host_key], **COLLECTOR}
                fresh[f"{kex} / {host_key}"] = (True, change)
        _rows(await _alternate(fresh, n, new_connection_cost, port))

        per, _ = await keepalive_cost(port, 200)
        every = ssh_options.CLIENT_KEEPALIVE_SECONDS
        print("4. idle connection: keepalive exchanges the collector's side makes")
        print(f"  CPU per exchange                             {per:8.3f} ms")
        rounds = ROUND_SECONDS / every
        print(
            f"  per {ROUND_SECONDS:g}s round at keepalive {every:g}s: "
            f"{rounds:.0f} exchanges = {per * rounds:.3f} ms a connection"
        )
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # cryptography warns that finite-field DH is deprecated: it is measured here, not offered.
    warnings.filterwarnings("ignore", message="Diffie-Hellman over finite fields")
    asyncio.run(serve() if args.serve else measure(args))


if __name__ == "__main__":
    main()
