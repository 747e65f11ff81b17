"""Masterfiles releases: content-addressed ids, validated publishes, atomic current, pruning."""

from __future__ import annotations

import os

import pytest

from hub.masterfiles import (
    MasterfilesError,
    build_manifest,
    current_release,
    current_release_id,
    list_releases,
    manifest_path,
    publish_release,
    release_dir,
    verify_release,
)
from hubcluster.messages import MessageError, encode_manifest, parse_manifest, tree_hash

PROMISES = '[[promise]]\nname = "a"\ncheck = "true"\n'


def source(tmp_path, name: str, files: dict[str, str]):
    root = tmp_path / name
    for rel, content in {"promises.toml": PROMISES, **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    return root


def test_equal_trees_have_equal_ids_on_two_hubs(tmp_path):
    src = source(tmp_path, "src", {"a.txt": "a", "sub/b.sh": "#!/bin/sh\n"})
    os.chmod(src / "sub" / "b.sh", 0o755)
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref")
    one = publish_release(tmp_path / "hub1", src)
    two = publish_release(tmp_path / "hub2", src)
    assert one == two and len(one) == 16
    rid, entries = current_release(tmp_path / "hub1")
    assert rid == one and tree_hash(entries).startswith(rid)
    assert [(e.path, e.mode) for e in entries] == [
        ("a.txt", 0o644),
        ("promises.toml", 0o644),
        ("sub/b.sh", 0o755),
    ]
    assert manifest_path(tmp_path / "hub1", rid).read_bytes() == encode_manifest(entries)
    assert (tmp_path / "hub1" / "current").resolve() == release_dir(tmp_path / "hub1", rid)
    assert verify_release(tmp_path / "hub1", rid) == []


def test_bad_promises_are_refused_and_nothing_changes(tmp_path):
    good = publish_release(tmp_path / "hub", source(tmp_path, "good", {}))
    bad = source(tmp_path, "bad", {})
    (bad / "promises.toml").write_text('[[promise]]\nname = "x"\nif = "Monday&"\ncheck = "true"\n')
    with pytest.raises(MasterfilesError, match=r"refusing to publish: .*promises.toml:3: 'if'"):
        publish_release(tmp_path / "hub", bad)
    (bad / "promises.toml").unlink()
    with pytest.raises(MasterfilesError, match="no promises.toml"):
        publish_release(tmp_path / "hub", bad)
    assert current_release_id(tmp_path / "hub") == good
    assert list_releases(tmp_path / "hub") == [good]


def test_symlinks_in_the_source_are_refused(tmp_path):
    src = source(tmp_path, "src", {})
    os.symlink("/etc/passwd", src / "passwd")
    with pytest.raises(MasterfilesError, match="is a symlink"):
        publish_release(tmp_path / "hub", src)


def test_keeps_the_last_three_and_republishing_switches_back(tmp_path):
    hub = tmp_path / "hub"
    ids = []
    for i in range(5):
        ids.append(publish_release(hub, source(tmp_path, f"s{i}", {"n.txt": str(i)})))
        os.utime(manifest_path(hub, ids[-1]), (1000 + i, 1000 + i))  # distinct publish times
    assert list_releases(hub) == ids[:1:-1]
    assert not release_dir(hub, ids[0]).exists() and not manifest_path(hub, ids[0]).exists()
    assert publish_release(hub, source(tmp_path, "again", {"n.txt": "2"})) == ids[2]
    assert current_release_id(hub) == ids[2] and list_releases(hub)[0] == ids[2]
    leftovers = [p.name for p in (hub / "releases").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_verify_release_names_damage(tmp_path):
    hub = tmp_path / "hub"
    rid = publish_release(hub, source(tmp_path, "s", {"a.txt": "a", "b.txt": "b"}))
    (release_dir(hub, rid) / "a.txt").write_text("changed")
    (release_dir(hub, rid) / "b.txt").unlink()
    (release_dir(hub, rid) / "extra").write_text("x")
    assert verify_release(hub, rid) == [
        "a.txt: content differs from the manifest",
        "b.txt: missing",
        "extra: not in the manifest",
    ]


@pytest.mark.parametrize(
    "entry, problem",
    [
        ({"path": "../x", "sha256": "0" * 64, "size": 1, "mode": 420}, "not a clean path"),
        ({"path": "/etc/x", "sha256": "0" * 64, "size": 1, "mode": 420}, "not a relative"),
        ({"path": "a", "sha256": "zz", "size": 1, "mode": 420}, "not a hex SHA-256"),
        ({"path": "a", "sha256": "0" * 64, "size": -1, "mode": 420}, "size"),
        ({"path": "a", "sha256": "0" * 64, "size": 1}, "missing mode"),
    ],
)
def test_manifest_parse_refuses_bad_entries(entry, problem):
    import json

    with pytest.raises(MessageError, match=problem):
        parse_manifest(json.dumps([entry]).encode())


def test_manifest_must_hash_to_its_release(tmp_path):
    src = source(tmp_path, "s", {})
    entries = build_manifest(src)
    data = encode_manifest(entries)
    with pytest.raises(MessageError, match="not 0000000000000000"):
        parse_manifest(data, expected_release="0" * 16)
