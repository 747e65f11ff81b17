"""Masterfiles mirrored from the master: delta moves, one round trip when equal, atomic switch."""

from __future__ import annotations

import json
import threading

import pytest

from hub.masterfiles import (
    build_manifest,
    current_release_id,
    manifest_path,
    publish_release,
    release_dir,
    verify_release,
)
from hubcluster.messages import MasterfilesReply, MessageError
from tests.agent.test_policy_update import read_whole_tree, tree
from tests.peersync.peers import sync, write_tree


def test_mirror_moves_only_changed_files_and_an_equal_tree_costs_one_round_trip(
    make_hubs, tmp_path
):
    hubs = make_hubs(2)
    files = tree("A", 60)
    first = publish_release(hubs.masterfiles(0), write_tree(tmp_path / "src", files))

    full = sync(hubs, 1)
    assert (full.release_before, full.release_after) == (None, first)
    assert full.files_fetched == 61 and full.files_reused == 0  # 60 + promises.toml
    assert verify_release(hubs.masterfiles(1), first) == []
    assert manifest_path(hubs.masterfiles(1), first).read_bytes() == (
        manifest_path(hubs.masterfiles(0), first).read_bytes()
    )
    old_inode = (release_dir(hubs.masterfiles(1), first) / "d1/f1.txt").stat().st_ino

    files["d3/f3.txt"] = "changed\n"
    second = publish_release(hubs.masterfiles(0), write_tree(tmp_path / "src", files))
    delta = sync(hubs, 1)
    assert (delta.release_before, delta.release_after) == (first, second)
    assert (delta.files_fetched, delta.files_reused) == (1, 60)
    assert delta.file_bytes == len("changed\n")
    # The manifest comes as a delta against the release the mirror holds: one entry, not 61.
    manifest_size = manifest_path(hubs.masterfiles(0), second).stat().st_size
    assert delta.bytes_fetched < 300 < manifest_size
    # One command for the manifest delta, one for the file stream.
    assert (delta.masterfiles_commands, delta.transfer_commands) == (1, 2)
    assert current_release_id(hubs.masterfiles(1)) == second
    assert build_manifest(release_dir(hubs.masterfiles(1), second)) == build_manifest(
        release_dir(hubs.masterfiles(0), second)
    )
    # Unchanged files are links to the release already there, not copies.
    assert (release_dir(hubs.masterfiles(1), second) / "d1/f1.txt").stat().st_ino == old_inode

    same = sync(hubs, 1)
    assert (same.masterfiles_commands, same.transfer_commands, same.bytes_fetched) == (1, 0, 0)
    assert same.files_fetched == 0 and same.mirror == f"in sync at release {second}"

    # The master going back to a release the mirror still holds moves no file at all.
    publish_release(hubs.masterfiles(0), write_tree(tmp_path / "src", tree("A", 60)))
    back = sync(hubs, 1)
    assert (
        back.release_after == first
        and back.transfer_commands == 0
        and "already here" in back.mirror
    )

    # The master itself, and a hub while there is no master, leave their masterfiles alone.
    assert "this hub is the master" in sync(hubs, 0).mirror
    assert "no master now" in sync(hubs, 1, master=None).mirror


def test_the_switch_is_atomic_under_a_concurrent_reader(make_hubs, tmp_path):
    hubs = make_hubs(2)
    count = 150
    releases = []
    for marker in "ABC":
        src = write_tree(tmp_path / f"src{marker}", tree(marker, count))
        releases.append(src)
    publish_release(hubs.masterfiles(0), releases[0])
    sync(hubs, 1)
    current = hubs.masterfiles(1) / "current"
    stop = threading.Event()
    seen: list[tuple[set[str], int]] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                seen.append(read_whole_tree(current))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        # Three distinct releases (KEEP_RELEASES): first built, then switched back to.
        for src in releases[1:] + releases * 2:
            rid = publish_release(hubs.masterfiles(0), src)
            result = sync(hubs, 1)
            assert result.release_after == rid and not result.mirror_failed, result.mirror
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors
    assert len(seen) > 5
    mixed = [s for s in seen if len(s[0]) != 1 or s[1] != count]
    assert mixed == [], f"a reader saw a mix or a partial tree: {mixed[:3]}"
    assert {next(iter(s[0])) for s in seen} == {"A", "B", "C"}


def test_a_tampered_release_on_the_master_is_refused_and_ours_kept(make_hubs, tmp_path):
    hubs = make_hubs(2)
    first = publish_release(hubs.masterfiles(0), write_tree(tmp_path / "src", {"a.txt": "a"}))
    sync(hubs, 1)
    second = publish_release(hubs.masterfiles(0), write_tree(tmp_path / "src", {"a.txt": "b"}))
    (release_dir(hubs.masterfiles(0), second) / "a.txt").write_text("evil")

    result = sync(hubs, 1)
    assert result.mirror_failed and "a.txt: fetched content does not match" in result.mirror
    assert current_release_id(hubs.masterfiles(1)) == first
    assert result.peers_reached == [hubs.addresses[0]]

    (release_dir(hubs.masterfiles(0), second) / "a.txt").write_text("b")
    manifest = manifest_path(hubs.masterfiles(0), second)
    manifest.write_bytes(manifest.read_bytes().replace(b'"size":1', b'"size":2'))
    result = sync(hubs, 1)
    assert result.mirror_failed and "masterfiles failed on the hub" in result.mirror
    assert current_release_id(hubs.masterfiles(1)) == first

    manifest.unlink()
    publish_release(hubs.masterfiles(0), write_tree(tmp_path / "src", {"a.txt": "b"}))
    result = sync(hubs, 1)
    assert result.release_after == second and result.files_fetched == 1, result.mirror


def test_masterfiles_answers_are_checked():
    digest = "ab" * 32
    assert MasterfilesReply.from_json('{"release": null, "tree_hash": null}').release is None
    assert MasterfilesReply.from_json(
        json.dumps({"release": digest[:16], "tree_hash": digest})
    ) == MasterfilesReply(digest[:16], digest)
    for bad, problem in [
        ("[]", "expected a JSON object"),
        ('{"release": null}', "missing tree_hash"),
        (json.dumps({"release": "xyz", "tree_hash": digest}), "not a release id"),
        (json.dumps({"release": digest[:16], "tree_hash": "12"}), "not a hex SHA-256"),
        (json.dumps({"release": "cd" * 8, "tree_hash": digest}), "is not release cdcd"),
    ]:
        with pytest.raises(MessageError, match=problem):
            MasterfilesReply.from_json(bad)
