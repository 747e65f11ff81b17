"""The lab's hubs on disk: each hub's files, its config, and the key pair all hubs share.

`hubctl lab up` and `hubctl lab replace` both make hubs through here, so a replacement hub
is laid out, configured and keyed exactly as the first ones were (and as the deploy does).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hub.keystore import KeyStore
from hubctl.lab.child_commands import HUBD
from hubctl.lab.ports import free_port

if TYPE_CHECKING:
    from hubctl.lab.cluster import LabCluster


@dataclass
class LabHub:
    name: str
    member: str
    service_port: int
    config: Path
    workdir: Path
    log: Path
    proc: subprocess.Popen | None = None
    portal_port: int = field(default_factory=free_port)

    @classmethod
    def at(cls, directory: Path, name: str, member: str) -> LabHub:
        """A new hub `name` on `member`, its files under `directory`, on a free port."""
        return cls(
            name,
            member,
            free_port(),
            directory / f"{name}.toml",
            directory / name,
            directory / f"{name}.log",
        )

    @property
    def service(self) -> str:
        return f"127.0.0.1:{self.service_port}"

    @property
    def portal_url(self) -> str:
        return f"http://127.0.0.1:{self.portal_port}/"


def share_hub_key(source: LabHub, target: LabHub) -> None:
    """Give `target` the hub key pair `source` has: one pair for all hubs, as deployed."""
    first = KeyStore(source.workdir / "ppkeys").hub_private_key_path
    copy = KeyStore(target.workdir / "ppkeys").hub_private_key_path
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(first, copy)
    shutil.copy2(first.with_suffix(".pub"), copy.with_suffix(".pub"))


def init_hubs(hubs: list[LabHub]) -> None:
    """`hubd init` every hub, all at once; RuntimeError naming the first that fails."""
    inits = [
        subprocess.Popen(
            HUBD + ["init", "--config", str(h.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for h in hubs
    ]
    for h, proc in zip(hubs, inits, strict=True):
        _, err = proc.communicate(timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"hubd init of {h.name} failed: {err.decode().strip()}")


def hub_password_file(lab: LabCluster, hub: LabHub) -> Path:
    """`hub`'s copy of the hubd user's password, mode 0600, as the deploy puts it."""
    path = hub.workdir.parent / f"{hub.name}-mongo-password"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(lab.credentials.password_file("hubd").read_text())
    return path


def _replset_section(lab: LabCluster, hub: LabHub) -> str:
    password_file = hub_password_file(lab, hub) if lab.credentials.auth else None
    access = lab.credentials.config_lines("hubd", password_file)
    return f'[replset]\nuri = "{lab.uri}"\n{access}\n'


def write_hub_config(lab: LabCluster, hub: LabHub) -> None:
    """`hub`'s config; its [[hubs]] are the lab's hubs as they are now; hubd logs in as
    the hubd user, checking mongod's certificate against the lab's CA."""
    entries = "".join(
        f'[[hubs]]\nname = "{h.name}"\nmongo = "{h.member}"\nservice = "{h.service}"\n\n'
        for h in lab.hubs
    )
    hub.config.write_text(
        f'[hub]\nname = "{hub.name}"\nworkdir = "{hub.workdir}"\nlisten = "{hub.service}"\n'
        'trust_keys_from = ["127.0.0.0/8"]\n'
        f'state_interval = "{lab.state_interval}s"\n\n'
        f"{_replset_section(lab, hub)}"
        f'[collector]\ninterval = "{lab.collect_interval}s"\nifelapsed = "0s"\n'
        'connect_timeout = "2s"\nhost_timeout = "5s"\nexpireafter = "30s"\n\n'
        f'[sync]\ninterval = "{lab.sync_interval}s"\n\n'
        f'[portal]\nbind = "127.0.0.1"\nport = {hub.portal_port}\n\n'
        f"{lab.portal.config()}{entries}{lab.hub_config_extra}"
    )
