"""The client's workdir: what it keeps between runs, each in its own small file.

ppkeys/localhost.priv, .pub   the client's ed25519 pair (its identity to every hub)
hub_key.pub                   the pinned hub key, shared by all hubs
policy_server.dat             one `host:port` line: the hub this client treats as its own
hubs.json                     every hub in failover order, and the last master that failed
inputs -> inputs.d/<release>  the policy in force, switched by renaming a new symlink
spool/                        reports waiting for the collector
state/                        promise locks
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from hubcluster.atomic import atomic_write_bytes, atomic_write_text
from hubcluster.config_check import split_address
from hubcluster.keys import KeyFileError, ensure_key_pair, import_public_key, load_private_key
from hubcluster.messages import is_release_id

# The name of the client's private key among a systemd service's credentials: the report
# service runs as its own user and gets a copy (LoadCredential=), the key itself stays root's.
KEY_CREDENTIAL = "client-key"


class StateError(ValueError):
    """The workdir lacks something a command needs (usually: bootstrap has not run)."""


@dataclass
class HubList:
    hubs: list[str] = field(default_factory=list)
    failed_master: str | None = None


def check_address(text: str) -> str | None:
    """The problem with a `host:port` string, or None if it is usable."""
    try:
        split_address(text)
    except ValueError as exc:
        return str(exc)
    return None


class ClientState:
    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.ppkeys = self.workdir / "ppkeys"
        self.private_key_path = self.ppkeys / "localhost.priv"
        # Where the key is read from: systemd's copy when this service was handed one.
        self.key_source = _credential(KEY_CREDENTIAL) or self.private_key_path
        self.hub_key_path = self.workdir / "hub_key.pub"
        self.policy_server_path = self.workdir / "policy_server.dat"
        self.hubs_path = self.workdir / "hubs.json"
        self.inputs = self.workdir / "inputs"
        self.inputs_store = self.workdir / "inputs.d"
        self.spool_dir = self.workdir / "spool"
        self.locks_dir = self.workdir / "state"

    # ----- keys -------------------------------------------------------------------------
    def ensure_key_pair(self) -> tuple[asyncssh.SSHKey, bool]:
        self.ppkeys.mkdir(parents=True, exist_ok=True)
        os.chmod(self.ppkeys, 0o700)
        return ensure_key_pair(self.private_key_path)

    def client_key(self) -> asyncssh.SSHKey:
        if not self.key_source.exists():
            raise StateError(f"{self.key_source}: no client key; run client-agent bootstrap")
        return load_private_key(self.key_source)

    def pinned_hub_key(self) -> asyncssh.SSHKey | None:
        try:
            data = self.hub_key_path.read_bytes()
        except FileNotFoundError:
            return None
        return import_public_key(data, str(self.hub_key_path))

    def pin_hub_key(self, key: asyncssh.SSHKey) -> None:
        atomic_write_bytes(self.hub_key_path, key.export_public_key())

    # ----- where the hubs are -----------------------------------------------------------
    def read_policy_server(self) -> tuple[str | None, str | None]:
        """(address, None) when usable, else (None, what is wrong with the file)."""
        try:
            raw = self.policy_server_path.read_bytes()
        except FileNotFoundError:
            return None, f"{self.policy_server_path}: missing"
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            return None, f"{self.policy_server_path}: not text"
        if not text:
            return None, f"{self.policy_server_path}: empty"
        lines = text.splitlines()
        problem = check_address(lines[0]) if len(lines) == 1 else f"{len(lines)} lines, not one"
        if problem:
            return None, f"{self.policy_server_path}: garbage ({problem[:120]})"
        return lines[0].strip(), None

    def write_policy_server(self, address: str) -> None:
        problem = check_address(address)
        if problem:
            raise StateError(f"refusing to write {address!r} to policy_server.dat: {problem}")
        atomic_write_text(self.policy_server_path, address + "\n")

    def read_hubs(self) -> tuple[HubList, str | None]:
        """The stored hub list, and what was wrong with the file if it had to be ignored."""
        try:
            data = json.loads(self.hubs_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return HubList(), f"{self.hubs_path}: missing"
        except (ValueError, UnicodeDecodeError) as exc:
            return HubList(), f"{self.hubs_path}: not JSON ({exc})"
        if not isinstance(data, dict) or not isinstance(data.get("hubs"), list):
            return HubList(), f"{self.hubs_path}: expected an object with a list of hubs"
        hubs = [h for h in data["hubs"] if isinstance(h, str) and check_address(h) is None]
        failed = data.get("failed_master")
        if not isinstance(failed, str) or check_address(failed) is not None:
            failed = None
        dropped = len(data["hubs"]) - len(hubs)
        problem = f"{self.hubs_path}: ignored {dropped} bad entries" if dropped else None
        return HubList(hubs, failed), problem

    def write_hubs(self, hubs: HubList) -> None:
        text = json.dumps({"hubs": hubs.hubs, "failed_master": hubs.failed_master}, indent=1)
        atomic_write_text(self.hubs_path, text + "\n")

    # ----- policy -----------------------------------------------------------------------
    def current_release(self) -> str | None:
        """The release `inputs` points at, if it points at a release tree."""
        try:
            target = os.readlink(self.inputs)
        except OSError:
            return None
        rid = os.path.basename(target.rstrip("/"))
        return rid if is_release_id(rid) else None

    def inputs_root(self) -> Path | None:
        """The release tree in force, resolved once so a run reads one release throughout."""
        rid = self.current_release()
        if rid is None:
            return None
        root = self.inputs_store / rid
        return root if root.is_dir() else None

    def bootstrap_problem(self) -> str | None:
        """Why this workdir cannot run the agent yet, or None."""
        if not self.key_source.exists():
            return f"no client key in {self.key_source.parent}"
        try:
            if self.pinned_hub_key() is None:
                return f"no pinned hub key at {self.hub_key_path}"
        except KeyFileError as exc:
            return str(exc)
        return None


def _credential(name: str) -> Path | None:
    """The file systemd handed this service under `name` (LoadCredential=), if any."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / name
    return path if path.is_file() else None
