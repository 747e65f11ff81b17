"""Release transfers (manifest delta + packed stream): bad input is refused in one line.

Real parts: hub SSH services on loopback, the real agent and peer sync, streams produced by
the hub's own packer. What is checked: a truncated stream, a file whose hash mismatches, a
path escaping the tree (`..`, absolute, a symlink on the hub or planted on the receiver),
malformed requests to the hub; each time nothing half-built is live and what arrived
intact is kept for the next attempt.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import zlib

import pytest

from client_agent.agent_run import run_agent
from hub import masterfiles
from hub.masterfiles import (
    build_manifest,
    current_release_id,
    manifest_path,
    publish_release,
    release_dir,
    switch_current,
)
from hub.release_service import files_packer
from hubcluster.hub_session import HubRefused, open_hub
from hubcluster.messages import ManifestEntry, MessageError, encode_manifest, release_id
from hubcluster.release_fetch import FileStreamReceiver
from hubcluster.release_tree import ReleaseTreeError, file_sha256
from hubcluster.release_wire import apply_delta, decode_want, encode_delta, encode_want
from tests.agent.test_policy_update import bootstrapped, read_whole_tree, tree, update
from tests.peersync.peers import sync, write_tree
from tests.sshsvc.harness import PROMISES


def packed_stream(hubs, release: str, wanted: list[int] | None = None) -> bytes:
    """The stream the hub sends for `release`, made by the hub's own packer."""
    root = hubs.masterfiles()
    count = len(build_manifest(release_dir(root, release)))
    wanted = list(range(count)) if wanted is None else wanted
    packer = files_packer(root, release, encode_want(wanted, count))
    out = []
    while not packer.done:
        out.append(packer.step())
    return b"".join(out)


def test_a_truncated_stream_keeps_what_arrived_and_installs_nothing(make_hubs, tmp_path):
    hubs = make_hubs()
    files = {f"d/f{i}.txt": os.urandom(8192).hex() for i in range(20)}
    rid = hubs.publish(files)
    entries = build_manifest(release_dir(hubs.masterfiles(), rid))
    stream = packed_stream(hubs, rid)
    partial = tmp_path / "partial"
    partial.mkdir()
    receiver = FileStreamReceiver(partial, entries, list(range(len(entries))))
    receiver.feed(stream[: len(stream) // 2])
    with pytest.raises(ReleaseTreeError, match=r"the file stream ended after \d+ of 21 files"):
        receiver.finish()
    kept = sorted(p.relative_to(partial).as_posix() for p in partial.rglob("*") if p.is_file())
    assert 3 < receiver.files == len(kept) < 21
    # Every file left behind is whole and verified; the one cut half way was removed.
    by_path = {e.path: e for e in entries}
    assert all(file_sha256(partial / p) == by_path[p].sha256 for p in kept)

    # Garbage in the middle of a stream, and bytes past its end, are refused too.
    receiver = FileStreamReceiver(tmp_path / "p2", entries, [0])
    with pytest.raises(ReleaseTreeError, match="the file stream is corrupt"):
        receiver.feed(b"\x78\x9c\xff\xff\xff\xff")  # a block of a type that does not exist
    one = packed_stream(hubs, rid, [0])
    receiver = FileStreamReceiver(tmp_path / "p3", entries, [0])
    (tmp_path / "p3").mkdir()
    with pytest.raises(ReleaseTreeError, match="goes on past its end"):
        receiver.feed(one + b"more")


def test_a_same_size_mismatch_is_refused_and_the_other_files_kept(make_hubs, tmp_path):
    hubs = make_hubs()
    first = hubs.publish(tree("A", 10))
    config, state = bootstrapped(hubs, tmp_path)
    second = hubs.publish(tree("B", 10))
    victim = hubs.release_file(second, "d3/f3.txt")
    good = victim.read_bytes()
    victim.write_bytes(good.replace(b"B", b"X"))  # same size, other content

    result = asyncio.run(run_agent(config))
    assert result.exit_code == 3
    note = [n for n in result.notes if "update to release" in n]
    assert len(note) == 1 and "\n" not in note[0]
    assert "d3/f3.txt: fetched content does not match the manifest" in note[0]
    assert state.current_release() == first and read_whole_tree(state.inputs) == ({"A"}, 10)
    partial = state.inputs_store / f"{second}.partial"
    assert not (partial / "d3/f3.txt").exists()
    assert (partial / "d4/f4.txt").read_text() == tree("B", 10)["d4/f4.txt"]

    victim.write_bytes(good)
    result = asyncio.run(run_agent(config))
    assert result.exit_code == 0, result.summary()
    assert result.update.files_fetched == 1 and read_whole_tree(state.inputs) == ({"B"}, 10)


def publish_listing(hubs, files: dict[str, bytes], listed: list[ManifestEntry]) -> str:
    """A release on the hub whose manifest is `listed` (however wrong), its tree `files`."""
    rid = release_id(listed)
    tree_dir = release_dir(hubs.masterfiles(), rid)
    for rel, content in files.items():
        (tree_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree_dir / rel).write_bytes(content)
    tree_dir.mkdir(parents=True, exist_ok=True)
    manifest_path(hubs.masterfiles(), rid).write_bytes(encode_manifest(listed))
    switch_current(hubs.masterfiles(), rid)
    return rid


def entry(path: str, content: bytes) -> ManifestEntry:
    import hashlib

    return ManifestEntry(path, hashlib.sha256(content).hexdigest(), len(content), 0o644)


@pytest.mark.parametrize("bad", ["../escape.txt", "/etc/escape.txt", "a/../../escape.txt"])
def test_a_manifest_path_leaving_the_tree_is_refused(make_hubs, tmp_path, bad):
    hubs = make_hubs()
    first = hubs.publish({"a.txt": "a"})
    config, state = bootstrapped(hubs, tmp_path)
    promises = PROMISES.encode()
    evil = publish_listing(
        hubs,
        {"promises.toml": promises},
        [entry("promises.toml", promises), entry(bad, b"owned\n")],
    )
    result = asyncio.run(run_agent(config))
    assert result.exit_code == 3
    assert f"update to release {evil} failed: manifest of release {evil}" in result.summary()
    assert "is not a clean path inside the tree" in result.summary() or (
        "is not a relative POSIX path" in result.summary()
    )
    assert state.current_release() == first
    assert not list(tmp_path.rglob("escape.txt"))


def test_a_symlink_in_a_hub_release_is_never_read(make_hubs, tmp_path):
    hubs = make_hubs()
    first = hubs.publish({"a.txt": "a"})
    config, state = bootstrapped(hubs, tmp_path)
    secret = b"the hub's secret\n"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(secret)
    promises = PROMISES.encode()
    evil = publish_listing(
        hubs,
        {"promises.toml": promises},
        [
            entry("promises.toml", promises),
            entry("link.txt", secret),
            entry("dir/secret.txt", secret),
        ],
    )
    tree_dir = release_dir(hubs.masterfiles(), evil)
    (tree_dir / "link.txt").symlink_to(outside / "secret.txt")
    (tree_dir / "dir").symlink_to(outside)

    result = asyncio.run(run_agent(config))
    assert result.exit_code == 3
    assert "the hub could not read it (and 1 more)" in result.summary()
    assert state.current_release() == first
    partial = state.inputs_store / f"{evil}.partial"
    assert not [p for p in partial.rglob("*") if p.is_file() and p.read_bytes() == secret]


def test_a_symlink_planted_in_a_partial_tree_is_removed_not_followed(make_hubs, tmp_path):
    hubs = make_hubs()
    hubs.publish(tree("A", 14))
    config, state = bootstrapped(hubs, tmp_path)
    second = hubs.publish(tree("B", 14))
    outside = tmp_path / "outside"
    outside.mkdir()
    partial = state.inputs_store / f"{second}.partial"
    partial.mkdir()
    (partial / "d3").symlink_to(outside)
    (partial / "promises.toml").symlink_to(outside / "promises.toml")

    result = asyncio.run(update(hubs, state, second))
    assert result.changed and state.current_release() == second
    assert list(outside.iterdir()) == []
    assert not (state.inputs / "d3").is_symlink()
    assert read_whole_tree(state.inputs) == ({"B"}, 14)


def test_the_hub_refuses_malformed_requests_in_one_line_and_keeps_serving(make_hubs):
    hubs = make_hubs()
    rid = hubs.publish({"a.txt": "a"})
    other = "0123456789abcdef"

    async def ask(command: str, stdin: bytes = b"") -> tuple[int | None, bytes]:
        async with open_hub(hubs.addresses[0], hubs.hub_key, hubs.hub_key, 5.0) as session:
            async with session.conn.create_process(command, encoding=None) as process:
                process.stdin.write(stdin)
                process.stdin.write_eof()
                await process.stdout.read()
                err = await process.stderr.read()
                done = await process.wait()
        return done.exit_status, err

    cases = [
        ("release-manifest not json", b"", 2, "release-manifest request: not JSON"),
        ('release-manifest {"release": "x"}', b"", 2, "expected"),
        (f'release-manifest {{"release": "{other}", "base": null}}', b"", 1, "not held"),
        (f"release-files {other}", encode_want([0], 1), 1, "not held by this hub"),
        ("release-files ../../etc", b"", 2, "not a release id"),
        (f"release-files {rid}", b"not zlib", 2, "want bitmap: not a zlib stream"),
        (f"release-files {rid}", encode_want([0], 9), 2, "want bitmap: unpacks to more than 1"),
        (f"release-files {rid}", zlib.compress(b"\xff"), 2, "bits set past the last file"),
    ]
    for command, stdin, status, words in cases:
        got, err = hubs.loop.run(ask(command, stdin))
        text = err.decode()
        assert (got, text.count("\n")) == (status, 1), (command, got, text)
        assert words in text, (command, text)

    async def master() -> str:
        async with open_hub(hubs.addresses[0], hubs.hub_key, hubs.hub_key, 5.0) as session:
            return await session.run("master")

    assert json.loads(hubs.loop.run(master()))["release"] == rid

    async def no_release() -> None:
        async with open_hub(hubs.addresses[0], hubs.hub_key, hubs.hub_key, 5.0) as session:
            await session.run("release-files")

    with pytest.raises(HubRefused, match="not a release id"):
        hubs.loop.run(no_release())


def test_deltas_are_checked_against_the_release_they_claim(tmp_path):
    a = [entry("promises.toml", b"p"), entry("x/a.txt", b"a"), entry("x/b.txt", b"b")]
    b = [a[0], entry("x/a.txt", b"A"), entry("y.txt", b"y")]
    ra, rb = release_id(a), release_id(b)
    delta = encode_delta(rb, b, ra, a)
    entries, encoded = apply_delta(delta, rb, ra, a)
    assert entries == sorted(b, key=lambda e: e.path) and encoded == encode_manifest(b)
    assert len(json.loads(zlib.decompress(delta))["files"]) == 2  # only what changed
    # The hub answering with a whole manifest (it lacks our base) is fine too.
    assert apply_delta(encode_delta(rb, b, None, None), rb, ra, a)[0] == entries

    def doc(**change: object) -> bytes:
        base = json.loads(zlib.decompress(delta))
        return zlib.compress(json.dumps({**base, **change}).encode())

    with pytest.raises(MessageError, match=f"the hub sent release '{rb}'"):
        apply_delta(delta, ra, ra, a)
    for data, words in [
        (doc(files=[["x/a.txt", "00" * 32, 1, 0o644]]), "content hashes to release"),
        (doc(base="ffffffffffffffff"), "which we did not offer"),
        (doc(removed=["nope.txt"]), "which the base does not hold"),
        (doc(files=[["x/a.txt", "00" * 32, 1, 0o644]] * 2), "listed twice"),
        (doc(files=[["x", "00" * 32, 1, 0o644]]), "'x' is both a file and a directory"),
        (doc(files=[["promises.toml/z", "00" * 32, 1, 0o644]]), "'promises.toml' is both"),
        (doc(files=[["ok", "00" * 32, -1, 0o644]]), "size: expected an integer"),
        (zlib.compress(b"[" * 100_000), "not JSON"),
        (delta[:-3], "truncated"),
    ]:
        with pytest.raises(MessageError, match=words):
            apply_delta(data, rb, ra, a)
    with pytest.raises(MessageError, match="hashes to tree"):
        apply_delta(delta, rb, ra, a, expected_tree_hash="00" * 32)
    assert decode_want(encode_want([0, 9, 15], 16), 16) == [0, 9, 15]
    with pytest.raises(MessageError, match="unpacks to more than 2 bytes"):
        decode_want(zlib.compress(bytes(1 << 20)), 16)  # a small bomb, refused unpacked


def test_a_mirror_trusts_its_recorded_manifest_only_when_it_proves_itself(make_hubs, tmp_path):
    hubs = make_hubs(2)
    files = tree("A", 30)
    first = publish_release(hubs.masterfiles(0), write_tree(tmp_path / "src", files))
    sync(hubs, 1)
    # The mirror's recorded manifest of its release is damaged, and hubd restarted (so it no
    # longer holds the manifest it proved in memory): it is not used as a base.
    damaged = manifest_path(hubs.masterfiles(1), first)
    damaged.write_bytes(damaged.read_bytes().replace(b"d1/f1.txt", b"d1/f9.txt"))
    masterfiles._PROVED.clear()
    files["d3/f3.txt"] = "changed\n"
    second = publish_release(hubs.masterfiles(0), write_tree(tmp_path / "src", files))
    result = sync(hubs, 1)
    assert result.release_after == second and not result.mirror_failed, result.mirror
    assert (result.files_fetched, result.files_reused) == (31, 0)
    assert current_release_id(hubs.masterfiles(1)) == second
    assert build_manifest(release_dir(hubs.masterfiles(1), second)) == build_manifest(
        release_dir(hubs.masterfiles(0), second)
    )


def test_old_releases_are_removed_behind_the_switch(make_hubs, tmp_path):
    hubs = make_hubs(2)
    mirror = hubs.masterfiles(1)
    for marker in "ABCDE":
        publish_release(hubs.masterfiles(0), write_tree(tmp_path / "src", tree(marker, 20)))
        assert not sync(hubs, 1).mirror_failed
    releases = mirror / "releases"
    assert len(masterfiles.list_releases(mirror)) == masterfiles.KEEP_RELEASES
    deadline = time.monotonic() + 10
    while list(releases.glob(".trash-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Only the kept trees and their manifests are left, and the one in force is intact.
    kept = set(masterfiles.list_releases(mirror))
    assert {p.name for p in releases.iterdir()} == kept | {r + ".manifest.json" for r in kept}
    assert masterfiles.verify_release(mirror, current_release_id(mirror)) == []
