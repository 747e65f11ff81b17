"""The restart action the rolling-upgrade test gives the hub play instead of systemd.

    python hubd_process.py restart --venv V --config C --pidfile P --log L --port N

Stops the hubd whose pid is in P (SIGTERM, then SIGKILL after a bound), starts
`V/bin/hubd run --config C` in a session of its own (it outlives this command, as a
service outlives systemctl), writes its pid to P, and returns once its SSH service
accepts connections on 127.0.0.1:N, or exits 1 with one line saying why.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

STOP_TIMEOUT = 30.0
START_TIMEOUT = 30.0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (stopped, not yet reaped by its parent) counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop(pidfile: Path) -> None:
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start(venv: Path, config: Path, pidfile: Path, log: Path, port: int) -> None:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(venv / "bin" / "hubd"), "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pidfile.write_text(str(proc.pid))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            sys.exit(f"hubd exited with {proc.returncode}: {tail[0]}")
        if listening(port):
            return
        time.sleep(0.05)
    sys.exit(f"hubd did not listen on 127.0.0.1:{port} within {START_TIMEOUT:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["restart"])
    parser.add_argument("--venv", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--pidfile", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    stop(args.pidfile)
    start(args.venv, args.config, args.pidfile, args.log, args.port)


if __name__ == "__main__":
    main()
