"""ppkeys/: adding keys atomically, tombstones that win forever, bad files skipped."""

from __future__ import annotations

import json

import asyncssh
import pytest

from hub.keystore import KeyRevoked, KeyStore
from hubcluster.keys import ensure_key_pair, key_sha, ppkey_filename


def test_add_list_revoke(tmp_path):
    store = KeyStore(tmp_path / "ppkeys")
    assert store.keys() == {}
    ensure_key_pair(tmp_path / "ppkeys" / "localhost.priv")  # the hub's own pair is no client
    key = asyncssh.generate_private_key("ssh-ed25519")
    sha, new = store.add(key)
    assert new and sha == key_sha(key)
    assert store.add(key) == (sha, False)
    assert list(store.keys()) == [sha] and store.is_known(sha)
    assert store.get(sha).public_data == key.public_data

    assert store.revoke(sha, "lost")
    assert not store.is_known(sha) and store.is_revoked(sha) and store.keys() == {}
    tombstone = json.loads((tmp_path / "ppkeys" / (ppkey_filename(sha) + ".revoked")).read_text())
    assert tombstone["reason"] == "lost" and tombstone["key"].startswith("ssh-ed25519 ")
    with pytest.raises(KeyRevoked):
        store.add(key)
    assert store.revoke(sha) is False


def test_a_key_file_copied_back_after_revocation_stays_revoked(tmp_path):
    store = KeyStore(tmp_path)
    key = asyncssh.generate_private_key("ssh-ed25519")
    sha, _ = store.add(key)
    saved = (tmp_path / ppkey_filename(sha)).read_bytes()
    store.revoke(sha)
    (tmp_path / ppkey_filename(sha)).write_bytes(saved)  # a slow peer copies it back
    assert store.get(sha) is None and sha not in store.keys()


def test_bad_and_misnamed_files_are_skipped(tmp_path, caplog):
    store = KeyStore(tmp_path)
    good, _ = store.add(asyncssh.generate_private_key("ssh-ed25519"))
    other = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / ppkey_filename("a" * 64)).write_text("not a key")
    (tmp_path / ppkey_filename("b" * 64)).write_bytes(other.export_public_key())
    assert list(store.keys()) == [good]
    assert store.get("b" * 64) is None
    assert "whose SHA-256 is" in caplog.text and "not an OpenSSH public key" in caplog.text


def test_a_key_file_changed_after_it_was_read_is_read_again(tmp_path):
    # Keys are kept parsed between lookups (the collector looks one up per connection):
    # what is on disk must still decide.
    store = KeyStore(tmp_path)
    key = asyncssh.generate_private_key("ssh-ed25519")
    sha, _ = store.add(key)
    assert store.get(sha).public_data == key.public_data
    other = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / ppkey_filename(sha)).write_bytes(other.export_public_key())
    assert store.get(sha) is None  # a file not holding the key its name says
    (tmp_path / ppkey_filename(sha)).unlink()
    assert store.get(sha) is None
