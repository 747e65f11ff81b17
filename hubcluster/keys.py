"""Key pairs and their names: one digest (SHA-256 of the public key blob) in two spellings.

`root-SHA=<hex>.pub` names a client key in a hub's `ppkeys/`; `SHA256:<base64>` is the
OpenSSH-style fingerprint operators pin. Both come from the same digest, so they never drift.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import asyncssh

from hubcluster.atomic import atomic_write_bytes

KEY_FILE_RE = re.compile(r"^root-SHA=([0-9a-f]{64})\.pub$")
TOMBSTONE_SUFFIX = ".revoked"


class KeyFileError(ValueError):
    """A key that cannot be read or does not match; the message says which and why."""


def key_digest(key: asyncssh.SSHKey) -> bytes:
    return hashlib.sha256(key.public_data).digest()


def key_sha(key: asyncssh.SSHKey) -> str:
    """Hex SHA-256 of the public key blob: the client's identity across the cluster."""
    return key_digest(key).hex()


def key_fingerprint(key: asyncssh.SSHKey) -> str:
    """OpenSSH-style `SHA256:...` fingerprint of the same digest."""
    return "SHA256:" + base64.b64encode(key_digest(key)).decode().rstrip("=")


def fingerprint_from_sha(sha: str) -> str:
    return "SHA256:" + base64.b64encode(bytes.fromhex(sha)).decode().rstrip("=")


def ppkey_filename(sha: str) -> str:
    return f"root-SHA={sha}.pub"


def sha_from_filename(name: str) -> str | None:
    match = KEY_FILE_RE.match(name)
    return match.group(1) if match else None


def normalize_fingerprint(text: str) -> str:
    """Accept `SHA256:abc` or bare `abc`; refuse anything that is not a SHA-256 fingerprint."""
    value = text.strip()
    if value.startswith("SHA256:"):
        value = value[len("SHA256:") :]
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except ValueError:
        raise KeyFileError(
            f"{text!r} is not a SHA256 fingerprint (expected SHA256:<base64>)"
        ) from None
    if len(raw) != 32:
        raise KeyFileError(f"{text!r} is not a SHA256 fingerprint (wrong length)")
    return "SHA256:" + base64.b64encode(raw).decode().rstrip("=")


def sha_from_fingerprint(text: str) -> str:
    """The hex SHA behind a `SHA256:<base64>` fingerprint (the inverse of fingerprint_from_sha)."""
    value = normalize_fingerprint(text)[len("SHA256:") :]
    return base64.b64decode(value + "=" * (-len(value) % 4)).hex()


def import_public_key(data: bytes | str, what: str = "public key") -> asyncssh.SSHKey:
    """Parse an OpenSSH public key, naming `what` when it is not one."""
    try:
        return asyncssh.import_public_key(data)
    except (asyncssh.KeyImportError, ValueError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{what}: not an OpenSSH public key ({exc})") from None


def load_private_key(path: Path) -> asyncssh.SSHKey:
    try:
        return asyncssh.read_private_key(str(path))
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a private key ({exc})") from None


def ensure_key_pair(private_path: Path) -> tuple[asyncssh.SSHKey, bool]:
    """Load the ed25519 pair at `private_path` (public beside it as `.pub`), making it if absent.

    Returns the key and whether it was created now.
    """
    public_path = private_path.with_suffix(".pub")
    if private_path.exists():
        key = load_private_key(private_path)
        if not public_path.exists():
            atomic_write_bytes(public_path, key.export_public_key())
        return key, False
    key = asyncssh.generate_private_key("ssh-ed25519")
    atomic_write_bytes(private_path, key.export_private_key(), mode=0o600)
    atomic_write_bytes(public_path, key.export_public_key())
    return key, True
