"""The wire formats of a release transfer, shared by the hub that sends and whoever receives.

A receiver (a mirroring hub, a client agent) takes a release in two commands on one SSH
connection:

    release-manifest {"release": R, "base": B}   ->  a manifest delta (zlib'd JSON)
    release-files R  <- want bitmap (stdin)      ->  a packed file stream (zlib'd frames)

The delta lists the entries of R that differ from B (the release the receiver holds, whose
manifest it trusts) and the paths R drops; with no base, or one the hub no longer has,
`base` comes back null and every entry is listed. The receiver applies it to its own copy
of B's manifest and proves the result is R by its hash (the release id is a manifest hash).

The want bitmap has one bit per entry of R in manifest order (bit i = entry i, most
significant bit first): the files the receiver still lacks. The stream answers with one
frame per wanted file, in order: an 8-byte big-endian length and that many bytes, or the
length MISSING alone when the hub cannot read the file. Nothing else is in the stream; the
receiver knows from the manifest how many frames and how many bytes to expect.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from hubcluster.messages import (
    ManifestEntry,
    MessageError,
    check_relative_path,
    encode_manifest,
    is_release_id,
)

MANIFEST_COMMAND = "release-manifest"
FILES_COMMAND = "release-files"
FRAME = struct.Struct(">Q")
MISSING = (1 << 64) - 1
# Level 1: policy text compresses well even at the cheapest level, and the hub streams to
# every client that needs a new release.
STREAM_LEVEL = 1
MANIFEST_LEVEL = 6
# A delta unpacks to at most this much JSON (a million-file manifest is about 130 MB).
MAX_DELTA_JSON = 256 * 1024 * 1024
MAX_FILE_SIZE = 1 << 40
_SHA256 = re.compile(r"\A[0-9a-f]{64}\Z")


def _inflate(data: bytes, limit: int, what: str) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise MessageError(f"{what}: not a zlib stream ({exc})") from None
    if len(out) > limit:
        raise MessageError(f"{what}: unpacks to more than {limit} bytes; refused")
    if not inflater.eof or inflater.unused_data:
        raise MessageError(f"{what}: truncated or followed by stray bytes")
    return out


# ----- the request ----------------------------------------------------------------------------


def manifest_request(release: str, base: str | None) -> str:
    return MANIFEST_COMMAND + " " + json.dumps({"release": release, "base": base})


def parse_manifest_request(args: str) -> tuple[str, str | None]:
    """(release, base) of a `release-manifest` request; MessageError names what is wrong."""
    what = "release-manifest request"
    try:
        obj = json.loads(args)
    except (ValueError, RecursionError):
        raise MessageError(f"{what}: not JSON") from None
    if not isinstance(obj, dict) or set(obj) != {"release", "base"}:
        raise MessageError(f'{what}: expected {{"release": ID, "base": ID or null}}')
    release, base = obj["release"], obj["base"]
    if not is_release_id(release):
        raise MessageError(f"{what}: release: not a release id: {release!r}")
    if base is not None and not is_release_id(base):
        raise MessageError(f"{what}: base: not a release id: {base!r}")
    return release, base


# ----- manifests --------------------------------------------------------------------------------


def load_trusted_manifest(data: bytes, release: str) -> list[ManifestEntry]:
    """A manifest this side wrote itself after checking it: proved by its hash, not re-checked.

    Only manifests read from our own disk come here; what a peer sends goes through
    `apply_delta`. Bytes that do not hash to `release` are refused (a damaged file).
    """
    digest = hashlib.sha256(data).hexdigest()
    if not digest.startswith(release):
        raise MessageError(f"manifest of release {release}: hashes to {digest[:16]}; damaged")
    try:
        rows = json.loads(data)
        return [ManifestEntry(r["path"], r["sha256"], r["size"], r["mode"]) for r in rows]
    except (ValueError, TypeError, KeyError, RecursionError):
        raise MessageError(f"manifest of release {release}: unreadable") from None


def encode_delta(
    release: str,
    entries: list[ManifestEntry],
    base: str | None,
    base_entries: list[ManifestEntry] | None,
) -> bytes:
    """What a receiver holding `base` needs to know `release`'s manifest (base None: all)."""
    known: Mapping[str, ManifestEntry] = {}
    removed: list[str] = []
    if base is not None and base_entries is not None:
        known = {e.path: e for e in base_entries}
        paths = {e.path for e in entries}
        removed = sorted(p for p in known if p not in paths)
    else:
        base = None
    rows = [[e.path, e.sha256, e.size, e.mode] for e in entries if known.get(e.path) != e]
    doc = {"release": release, "base": base, "files": rows, "removed": removed}
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), MANIFEST_LEVEL)


def _entry(row: Any, where: str) -> ManifestEntry:
    if not isinstance(row, list) or len(row) != 4:
        raise MessageError(f"{where}: expected [path, sha256, size, mode]")
    path, sha, size, mode = row
    check_relative_path(path, f"{where}.path")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise MessageError(f"{where}.sha256: not a hex SHA-256: {sha!r}")
    for name, value, limit in (("size", size, MAX_FILE_SIZE), ("mode", mode, 0o7777)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise MessageError(f"{where}.{name}: expected an integer 0..{limit}, got {value!r}")
    return ManifestEntry(path, sha, size, mode)


def apply_delta(
    data: bytes,
    release: str,
    base: str | None,
    base_entries: list[ManifestEntry] | None,
    expected_tree_hash: str | None = None,
) -> tuple[list[ManifestEntry], bytes]:
    """The manifest of `release` (entries, canonical bytes) from a delta against `base`.

    Every listed entry is checked (a path must stay inside the tree), and the result must
    hash to `release` (and to `expected_tree_hash` when given): a hub cannot make the
    receiver build anything but the release it asked for.
    """
    what = f"manifest of release {release}"
    text = _inflate(data, MAX_DELTA_JSON, what)
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise MessageError(f"{what}: not JSON") from None
    if not isinstance(doc, dict) or set(doc) != {"release", "base", "files", "removed"}:
        raise MessageError(f"{what}: expected an object with release, base, files, removed")
    if doc["release"] != release:
        raise MessageError(f"{what}: the hub sent release {doc['release']!r}")
    used = doc["base"]
    if used is not None and (used != base or base_entries is None):
        raise MessageError(f"{what}: a delta against {used!r}, which we did not offer")
    if not isinstance(doc["files"], list) or not isinstance(doc["removed"], list):
        raise MessageError(f"{what}: files and removed must be lists")
    merged = {e.path: e for e in base_entries} if used is not None and base_entries else {}
    for path in doc["removed"]:
        if not isinstance(path, str) or merged.pop(path, None) is None:
            raise MessageError(f"{what}: removes {path!r}, which the base does not hold")
    changed = []
    for i, row in enumerate(doc["files"]):
        entry = _entry(row, f"{what}: files[{i}]")
        merged[entry.path] = entry
        changed.append(entry.path)
    if len(changed) != len(set(changed)):
        raise MessageError(f"{what}: a path is listed twice")
    _check_no_file_is_a_directory(changed, merged.keys(), what)
    entries = sorted(merged.values(), key=lambda e: e.path)
    encoded = encode_manifest(entries)
    digest = hashlib.sha256(encoded).hexdigest()
    if not digest.startswith(release):
        raise MessageError(f"{what}: content hashes to release {digest[:16]}, not {release}")
    if expected_tree_hash not in (None, digest):
        raise MessageError(f"{what}: hashes to tree {digest}, not {expected_tree_hash}")
    return entries, encoded


def _check_no_file_is_a_directory(changed: list[str], paths: Iterable[str], what: str) -> None:
    """A new path may not be a directory of another file, nor sit under a file."""
    files = set(paths)
    dirs: set[str] = set()
    for path in files:
        cut = path.rfind("/")
        while cut > 0 and path[:cut] not in dirs:
            dirs.add(path[:cut])
            cut = path.rfind("/", 0, cut)
    for path in changed:
        if path in dirs:
            raise MessageError(f"{what}: {path!r} is both a file and a directory")
        cut = path.rfind("/")
        while cut > 0:
            if path[:cut] in files:
                raise MessageError(f"{what}: {path[:cut]!r} is both a file and a directory")
            cut = path.rfind("/", 0, cut)


# ----- the want bitmap --------------------------------------------------------------------------


def encode_want(indexes: Iterable[int], count: int) -> bytes:
    bits = bytearray((count + 7) // 8)
    for i in indexes:
        bits[i >> 3] |= 0x80 >> (i & 7)
    return zlib.compress(bytes(bits), MANIFEST_LEVEL)


def decode_want(data: bytes, count: int) -> list[int]:
    """The entry indexes a receiver wants, from its bitmap over `count` entries."""
    size = (count + 7) // 8
    bits = _inflate(data, size, "want bitmap")
    if len(bits) != size:
        raise MessageError(f"want bitmap: {len(bits)} bytes for {count} files, not {size}")
    wanted = [i for i in range(count) if bits[i >> 3] & (0x80 >> (i & 7))]
    if size and bits[-1] & (0xFF >> (count - (size - 1) * 8)):
        raise MessageError("want bitmap: bits set past the last file")
    return wanted
