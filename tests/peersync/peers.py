"""Hub configs for the harness's hubs, and one peer sync run from the test thread."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from hub.config import HubConfig, HubEntry
from hub.peer_sync import SyncResult, sync_with_peers
from tests.sshsvc.harness import PROMISES, Hubs


def hub_config(hubs: Hubs, i: int, members: list[str] | None = None) -> HubConfig:
    """Hub `i` of `hubs` as hubd would see it; `members` are the replica-set members, if any."""
    count = len(hubs.workdirs)
    members = members or [f"127.0.0.1:{27017 + j}" for j in range(count)]
    return HubConfig(
        name=f"{hubs.name}{i}",
        workdir=hubs.workdirs[i],
        listen=hubs.addresses[i],
        trust_keys_from=[],
        replset_name="CFEngineNova",
        mongo_uri="mongodb://" + ",".join(members) + "/?replicaSet=CFEngineNova",
        max_staleness=90.0,
        hubs=[HubEntry(f"{hubs.name}{j}", members[j], hubs.addresses[j]) for j in range(count)],
    )


def sync(hubs: Hubs, i: int, master: int | None = 0, timeout: float = 3.0) -> SyncResult:
    """Run hub i's peer sync, mirroring hub `master` (None: no master)."""
    config = hub_config(hubs, i)
    service = hubs.addresses[master] if master is not None else None
    return asyncio.run(sync_with_peers(config, hubs.keystore(i), hubs.hub_key, service, timeout))


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """A policy source directory holding `files` and a valid promises file."""
    if root.exists():
        shutil.rmtree(root)
    for rel, content in {"promises.toml": PROMISES, **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root
