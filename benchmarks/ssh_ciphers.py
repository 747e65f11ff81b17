"""CPU cost of each vetted SSH cipher, against asyncssh's classic aes128-ctr + hmac-sha2-256.

Command: .venv/bin/python benchmarks/ssh_ciphers.py [--mib 64]

A report pull moves bulk data over one SSH channel, so the cipher is the per-byte cost. Both
ends run in this process on loopback; the figure is the process CPU time per MiB moved
(client and server together), and the ratio is against the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncssh

from hubcluster import ssh_options

BASELINE = ("aes128-ctr", "hmac-sha2-256")
CHUNK = 1 << 20


async def _serve(process: asyncssh.SSHServerProcess) -> None:
    total = int(process.command or "0")
    block = b"\0" * CHUNK
    for _ in range(total // CHUNK):
        process.stdout.write(block)
        await process.stdout.drain()
    process.exit(0)


class _Open(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False


async def measure(cipher: str, mac: str, mib: int) -> float:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    algs = {"encryption_algs": [cipher], "mac_algs": [mac], "config": None}
    acceptor = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        server_factory=_Open,
        process_factory=_serve,
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args()
    base = asyncio.run(measure(*BASELINE, args.mib))
    print(f"{'cipher':32} {'CPU ms/MiB':>10} {'ratio':>6}")
    print(f"{BASELINE[0] + ' + ' + BASELINE[1] + ' (baseline)':32} {base:10.2f} {1.0:6.2f}")
    for cipher in ssh_options.CIPHERS:
        ms = asyncio.run(measure(cipher, ssh_options.MACS[0], args.mib))
        print(f"{cipher:32} {ms:10.2f} {ms / base:6.2f}")


if __name__ == "__main__":
    main()
