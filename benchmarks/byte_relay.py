"""A TCP relay on loopback, in its own process, that counts the bytes crossing it.

benchmarks/masterfiles_sync.py sends each measured connection (ours and rsync's) through a
fresh relay, so both are counted the same way: everything on the wire, SSH handshake and
encryption included. Run alone (`python benchmarks/byte_relay.py PORT`) it relays to PORT,
prints its own port, and on SIGTERM prints the counts as JSON.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def spawn(script: str, *args: str) -> tuple[subprocess.Popen, int]:
    """Start `script` with `args` under this interpreter; returns it and the port it prints."""
    proc = subprocess.Popen(
        [sys.executable, script, *args], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def serve_relay(target: int) -> None:
    """Relay 127.0.0.1:<new port> to :target, counting bytes; print them as JSON on SIGTERM."""
    counts = {"up": 0, "down": 0}
    active: set[asyncio.Task] = set()

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, way: str) -> None:
        try:
            while data := await reader.read(1 << 16):
                counts[way] += len(data)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        active.add(asyncio.current_task())
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
            await asyncio.gather(pump(reader, up_writer, "up"), pump(up_reader, writer, "down"))
            writer.close()
            up_writer.close()
        finally:
            active.discard(asyncio.current_task())

    async def serve() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await stop.wait()
        # The measured client has finished; let its connection's last bytes (the SSH
        # disconnect) through before counting.
        if active:
            await asyncio.wait(list(active), timeout=5)
        print(json.dumps(counts), flush=True)
        for task in active:
            task.cancel()

    asyncio.run(serve())


class Relay:
    """One relay per measurement, so its count is that measurement's."""

    def __init__(self, target: int) -> None:
        self.proc, self.port = spawn(__file__, str(target))
        self.bytes = 0

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=10)
        counts = json.loads(out.strip().splitlines()[-1])
        self.bytes = counts["up"] + counts["down"]


if __name__ == "__main__":
    serve_relay(int(sys.argv[1]))
