"""The baseline the masterfiles sync is measured against: rsync through OpenSSH's sshd.

Sshd runs sshd on a loopback high port, in the foreground, as a child with its own config,
host key and authorized_keys under one directory, and pulls trees through it with rsync
(or only connects, for the connection's fixed cost). Used by benchmarks/masterfiles_sync.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path


class Sshd:
    """sshd on a loopback high port, in the foreground, configured entirely from `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        for name in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True
            )
        shutil.copy(root / "client_key.pub", root / "authorized_keys")
        os.chmod(root / "authorized_keys", 0o600)
        self.port = self._free_port()
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile none\nUsePAM no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nStrictModes no\nLogLevel ERROR\n"
            "Subsystem sftp internal-sftp\n"
        )
        # sshd running as root insists on its privilege-separation directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(root / "sshd_config")],
            stderr=open(root / "sshd.log", "w"),  # noqa: SIM115 (lives as long as sshd)
        )
        self._wait_listening()

    @staticmethod
    def _free_port() -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def _wait_listening(self) -> None:
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"sshd exited: {(self.root / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        sys.exit("sshd did not start listening")

    def ssh(self, port: int) -> str:
        return (
            f"ssh -p {port} -i {self.root / 'client_key'} -o BatchMode=yes "
            f"-o UserKnownHostsFile={self.root / 'known_hosts'} "
            "-o StrictHostKeyChecking=accept-new -o LogLevel=ERROR"
        )

    def connect_only(self, port: int) -> None:
        """`ssh host true`: what the connection alone costs rsync."""
        subprocess.run([*self.ssh(port).split(), "127.0.0.1", "true"], check=True)

    def rsync(self, port: int, source: Path, target: Path, flags: str = "-a") -> int:
        """Pull `source/` into `target/` through `port`; returns rsync's bytes sent + received."""
        ssh = self.ssh(port)
        out = subprocess.run(
            [
                "rsync",
                flags,
                "--delete",
                "--stats",
                "-e",
                ssh,
                f"127.0.0.1:{source}/",
                f"{target}/",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        sent = int(re.search(r"Total bytes sent: ([\d,.]+)", out).group(1).replace(",", ""))
        got = int(re.search(r"Total bytes received: ([\d,.]+)", out).group(1).replace(",", ""))
        return sent + got

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
