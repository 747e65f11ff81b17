"""The hub's `ppkeys/` directory: registered client keys and their revocation tombstones.

A client key lives in `root-SHA=<hex>.pub`; revoking it writes `root-SHA=<hex>.pub.revoked`
first and removes the key after, so a crash in between still leaves the key revoked. A
tombstone wins forever: a revoked key is never added again, here or (by peer sync) anywhere.
The hub's own pair (`localhost.priv`/`.pub`) sits in the same directory and is not a client.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import asyncssh

from hubcluster.atomic import atomic_write_bytes, atomic_write_text
from hubcluster.keys import (
    TOMBSTONE_SUFFIX,
    KeyFileError,
    import_public_key,
    key_sha,
    ppkey_filename,
    sha_from_filename,
)

log = logging.getLogger("hubcluster.keystore")

HUB_PRIVATE_KEY = "localhost.priv"
HUB_PUBLIC_KEY = "localhost.pub"


class KeyRevoked(KeyFileError):
    """A key that was revoked; it may not be registered again."""


class KeyStore:
    """Client keys under one `ppkeys/` directory, looked up on disk on every call (peers may
    write); a key file is parsed again whenever it changed."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        # Parsed keys by SHA and the file they came from (inode, size, mtime): a collector
        # looks a key up for every connection it opens, and parsing costs more than a stat.
        self._parsed: dict[str, tuple[tuple[int, int, int], asyncssh.SSHKey]] = {}

    @property
    def hub_private_key_path(self) -> Path:
        return self.directory / HUB_PRIVATE_KEY

    def _key_path(self, sha: str) -> Path:
        return self.directory / ppkey_filename(sha)

    def _tombstone_path(self, sha: str) -> Path:
        return self.directory / (ppkey_filename(sha) + TOMBSTONE_SUFFIX)

    def keys(self) -> dict[str, asyncssh.SSHKey]:
        """Every registered, unrevoked key by hex SHA; unreadable files are logged and skipped."""
        found: dict[str, asyncssh.SSHKey] = {}
        revoked = self.revoked()
        try:
            names = sorted(p.name for p in self.directory.iterdir())
        except FileNotFoundError:
            return found
        for name in names:
            sha = sha_from_filename(name)
            if sha is None or sha in revoked:
                continue
            try:
                found[sha] = self._read(sha)
            except KeyFileError as exc:
                log.warning("ppkeys: skipping %s: %s", name, exc)
        return found

    def revoked(self) -> set[str]:
        """The hex SHAs that have a tombstone."""
        try:
            names = [p.name for p in self.directory.iterdir()]
        except FileNotFoundError:
            return set()
        found = set()
        for name in names:
            if name.endswith(TOMBSTONE_SUFFIX):
                sha = sha_from_filename(name[: -len(TOMBSTONE_SUFFIX)])
                if sha is not None:
                    found.add(sha)
        return found

    def tombstones(self) -> dict[str, dict[str, str]]:
        """Each revoked SHA with the `time` and `reason` its tombstone records ("" if unreadable).

        An unreadable tombstone still revokes: the file's presence is what counts.
        """
        found: dict[str, dict[str, str]] = {}
        for sha in sorted(self.revoked()):
            try:
                record = json.loads(self._tombstone_path(sha).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                record = {}
            if not isinstance(record, dict):
                record = {}
            time, reason = record.get("revoked"), record.get("reason")
            found[sha] = {
                "time": time if isinstance(time, str) else "",
                "reason": reason if isinstance(reason, str) else "",
            }
        return found

    def _read(self, sha: str) -> asyncssh.SSHKey:
        path = self._key_path(sha)
        st = path.stat()
        file = (st.st_ino, st.st_size, st.st_mtime_ns)
        known = self._parsed.get(sha)
        if known is not None and known[0] == file:
            return known[1]
        key = import_public_key(path.read_bytes(), str(path))
        if key_sha(key) != sha:
            # A file whose name is not its content's digest would let one key pose as another.
            raise KeyFileError(f"{path}: holds a key whose SHA-256 is {key_sha(key)}, not {sha}")
        self._parsed[sha] = (file, key)
        return key

    def get(self, sha: str) -> asyncssh.SSHKey | None:
        """The registered key with this SHA, or None if unknown, revoked or unreadable."""
        if self.is_revoked(sha):
            return None
        try:
            return self._read(sha)
        except FileNotFoundError:
            return None
        except KeyFileError as exc:
            log.warning("ppkeys: %s", exc)
            return None

    def is_known(self, sha: str) -> bool:
        return self.get(sha) is not None

    def is_revoked(self, sha: str) -> bool:
        return self._tombstone_path(sha).exists()

    def add(self, key: asyncssh.SSHKey) -> tuple[str, bool]:
        """Store a client key; returns (sha, whether it is new). Refuses a revoked key."""
        sha = key_sha(key)
        if self.is_revoked(sha):
            raise KeyRevoked(f"key {sha} was revoked and cannot be registered again")
        if self.get(sha) is not None:
            return sha, False
        atomic_write_bytes(self._key_path(sha), key.export_public_key())
        return sha, True

    def revoke(self, sha: str, reason: str = "", when: str | None = None) -> bool:
        """Tombstone a key and remove it; returns False if it was already revoked.

        `when` (ISO 8601) keeps the time of a revocation made elsewhere (a peer, the DB).
        """
        if self.is_revoked(sha):
            self._key_path(sha).unlink(missing_ok=True)
            return False
        try:
            public = self._key_path(sha).read_text(encoding="ascii", errors="replace").strip()
        except FileNotFoundError:
            public = None
        record = {
            "sha": sha,
            "revoked": when or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "reason": reason,
            "key": public,
        }
        atomic_write_text(self._tombstone_path(sha), json.dumps(record, sort_keys=True) + "\n")
        self._key_path(sha).unlink(missing_ok=True)
        log.info("ppkeys: revoked %s%s", sha, f" ({reason})" if reason else "")
        return True
