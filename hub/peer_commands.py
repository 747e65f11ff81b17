"""What a hub tells its peers: its client keys with tombstones, and its current release.

The SSH service offers these to `peer` connections only (the shared hub key); peer sync
(hub.peer_sync) is the other end. Both answers are read from disk on every call, since
registrations, revocations and publishes change them at any time.
"""

from __future__ import annotations

from pathlib import Path

from hub.keystore import KeyStore
from hub.masterfiles import current_tree_hash
from hubcluster.messages import KeysReply, MasterfilesReply, Tombstone


def keys_reply(keystore: KeyStore) -> KeysReply:
    """Every registered key as OpenSSH text, and every tombstone with its time and reason."""
    keys = {
        sha: key.export_public_key().decode("ascii").strip() for sha, key in keystore.keys().items()
    }
    revoked = {
        sha: Tombstone(stone["time"], stone["reason"])
        for sha, stone in keystore.tombstones().items()
    }
    return KeysReply(keys, revoked)


def masterfiles_reply(masterfiles_root: Path) -> MasterfilesReply:
    """The current release and its full tree hash (nulls when nothing is published)."""
    current = current_tree_hash(masterfiles_root)
    if current is None:
        return MasterfilesReply(None, None)
    return MasterfilesReply(*current)
