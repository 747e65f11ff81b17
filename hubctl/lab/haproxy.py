"""Debian's HAProxy on loopback in front of the lab hubs' portals, as the haproxy role ships it.

The config is the role's own template (ansible/roles/haproxy/templates/haproxy.cfg.j2)
rendered with the lab's ports, so what the lab measures is what a deployment runs. HAProxy
runs in the foreground as a child of the lab, its log in the lab directory.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import jinja2

from hubctl.lab.ports import free_port, wait_port
from hubctl.lab.processes import stop_process

TEMPLATE = (
    Path(__file__).parents[2] / "ansible" / "roles" / "haproxy" / "templates" / "haproxy.cfg.j2"
)
READY_SECONDS = 15.0
# Debian installs it in /usr/sbin, which is not on every user's PATH.
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class HaproxyMissing(RuntimeError):
    """No haproxy binary (Debian: apt-get install haproxy) or no template (not a checkout)."""


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or shutil.which("haproxy", path=SEARCH_PATH)


def render_config(
    backends: Sequence[tuple[str, str, int]],
    read_port: int,
    master_port: int,
    bind: str = "127.0.0.1",
    system: bool = False,
    **settings: object,
) -> str:
    """The role's haproxy.cfg for `backends` (hub name, address, portal port).

    Rendered as Ansible renders templates (trim_blocks, the final newline kept); without
    `system` the parts for a system service (chroot, user, daemon, syslog) are left out, for
    a foreground child.
    """
    if not TEMPLATE.exists():  # an installed hubctl has no ansible/ beside it
        raise HaproxyMissing(f"no HAProxy template at {TEMPLATE} (run from a checkout)")
    env = jinja2.Environment(
        trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined
    )
    template = env.from_string(TEMPLATE.read_text())
    return template.render(
        haproxy_backends=[{"name": n, "address": a, "port": p} for n, a, p in backends],
        haproxy_bind_address=bind,
        haproxy_read_port=read_port,
        haproxy_master_port=master_port,
        haproxy_system=system,
        **settings,
    )


class LabHaproxy:
    def __init__(self, directory: Path, backends: Sequence[tuple[str, int]]) -> None:
        """`backends`: (hub name, its portal port on 127.0.0.1)."""
        self.directory = directory / "haproxy"
        self.backends = [(name, "127.0.0.1", port) for name, port in backends]
        self.read_port = 0
        self.master_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def read_url(self) -> str:
        return f"http://127.0.0.1:{self.read_port}/"

    @property
    def master_url(self) -> str:
        return f"http://127.0.0.1:{self.master_port}/"

    @property
    def config_file(self) -> Path:
        return self.directory / "haproxy.cfg"

    def lines(self) -> list[str]:
        """What `hubctl lab up` prints: where the balanced portal answers."""
        return [
            f"portal via haproxy (any hub passing /read): {self.read_url}",
            f"portal via haproxy (the master, /master): {self.master_url}",
        ]

    def start(self) -> None:
        binary = haproxy_binary()
        if binary is None:
            raise HaproxyMissing("no haproxy binary (Debian: apt-get install haproxy)")
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.read_port:  # a restart keeps the ports `hubctl lab up` printed
            self.read_port, self.master_port = free_port(), free_port()
        self.config_file.write_text(render_config(self.backends, self.read_port, self.master_port))
        log_path = self.directory / "haproxy.log"
        with log_path.open("ab") as log:
            # -db: foreground, no daemon; the lab stops it with the rest.
            self.proc = subprocess.Popen(
                [binary, "-db", "-f", str(self.config_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        deadline = time.monotonic() + READY_SECONDS
        try:
            for port in (self.read_port, self.master_port):
                wait_port(port, max(0.1, deadline - time.monotonic()), "haproxy")
        except RuntimeError:
            code = self.proc.poll()
            self.stop()
            said = log_path.read_text(errors="replace").strip().splitlines()[-1:]
            raise RuntimeError(
                f"haproxy did not listen (exit {code}): {said[0] if said else 'no output'}"
            ) from None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def repoint(self, backends: Sequence[tuple[str, int]]) -> None:
        """Front these hubs instead (after `hubctl lab replace`), on the same ports."""
        self.backends = [(name, "127.0.0.1", port) for name, port in backends]
        self.stop()
        self.start()
