"""The JSON documents hubs and clients exchange, one definition each, checked on receipt.

Every parser takes the raw text or bytes as received and raises MessageError naming the
message and the problem, so a bad answer from the other side is reported, never half-used.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import asdict, dataclass
from typing import Any

from hubcluster.config_check import split_address

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
RELEASE_ID_LENGTH = 16
# A release's manifest sits beside its tree: `<release>.manifest.json` next to `<release>/`.
MANIFEST_SUFFIX = ".manifest.json"
_RELEASE_ID = re.compile(rf"^[0-9a-f]{{{RELEASE_ID_LENGTH}}}$")
REPORT_FIELDS = ("seq", "time", "kind", "payload")
# Sent after seq when the spool has one (every spool created since epochs exist).
REPORT_EPOCH = "epoch"


class MessageError(ValueError):
    """A message that cannot be used; the text names the message and what is wrong."""


def _load_object(data: str | bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"{what}: not JSON ({exc})") from None
    except RecursionError:
        raise MessageError(f"{what}: nested too deeply to read") from None
    if not isinstance(value, dict):
        raise MessageError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _check_fields(obj: dict[str, Any], what: str, required: tuple[str, ...]) -> None:
    missing = [k for k in required if k not in obj]
    if missing:
        raise MessageError(f"{what}: missing {', '.join(missing)}")
    unknown = sorted(set(obj) - set(required))
    if unknown:
        raise MessageError(f"{what}: unknown fields {', '.join(unknown)}")


def _address(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise MessageError(f"{what}: expected a host:port string, got {value!r}")
    try:
        split_address(value)
    except ValueError as exc:
        raise MessageError(f"{what}: {exc}") from None
    return value


def _optional_str(value: Any, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise MessageError(f"{what}: expected a string or null, got {value!r}")
    return value


def is_release_id(text: object) -> bool:
    return isinstance(text, str) and bool(_RELEASE_ID.match(text))


# ----- master ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MasterInfo:
    """The answer to `master`: who is master, every hub in failover order, the release served.

    `master` is None when the replica set has no primary; `reason` then says why, and
    clients keep the server they have.
    """

    master: str | None
    hubs: list[str]
    release: str | None = None
    reason: str | None = None
    # The release's generation (hub.release_generations): clients never move to a lower one.
    generation: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, data: str | bytes) -> MasterInfo:
        what = "master info"
        obj = _load_object(data, what)
        generation = obj.pop("generation", None)  # optional: hubs before generations omit it
        if generation is not None and (
            not isinstance(generation, int) or isinstance(generation, bool) or generation < 1
        ):
            raise MessageError(
                f"{what}.generation: expected a positive integer, got {generation!r}"
            )
        _check_fields(obj, what, ("master", "hubs", "release", "reason"))
        master = obj["master"]
        if master is not None:
            _address(master, f"{what}.master")
        hubs = obj["hubs"]
        if not isinstance(hubs, list):
            raise MessageError(f"{what}.hubs: expected a list of host:port, got {hubs!r}")
        for i, hub in enumerate(hubs):
            _address(hub, f"{what}.hubs[{i}]")
        release = _optional_str(obj["release"], f"{what}.release")
        if release is not None and not is_release_id(release):
            raise MessageError(f"{what}.release: not a release id: {release!r}")
        reason = _optional_str(obj["reason"], f"{what}.reason")
        return cls(master, list(hubs), release, reason, generation)


# ----- registration ---------------------------------------------------------------------------


def host_name_problem(name: object) -> str | None:
    """Why `name` cannot be the name a client registers under, or None. Clients check their
    configured name with this too, so a name the hub would refuse is refused at start."""
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        return f"expected a host name of 1-255 characters, got {name!r:.60}"
    if any(c.isspace() or not c.isprintable() for c in name):
        return "must not contain spaces or control characters"
    return None


@dataclass(frozen=True)
class RegisterRequest:
    """What a client sends with `register`: its name and the port of its report service."""

    hostname: str
    report_port: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, data: str | bytes) -> RegisterRequest:
        what = "register request"
        obj = _load_object(data, what)
        _check_fields(obj, what, ("hostname", "report_port"))
        hostname = obj["hostname"]
        problem = host_name_problem(hostname)
        if problem:
            raise MessageError(f"{what}.hostname: {problem}")
        port = obj["report_port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise MessageError(f"{what}.report_port: expected a port 1-65535, got {port!r}")
        return cls(hostname, port)


@dataclass(frozen=True)
class RegisterReply:
    """The hub's answer to a successful `register`: the identity it stored, as it sees it."""

    sha: str
    hostname: str
    address: str
    report_port: int
    new_key: bool

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, data: str | bytes) -> RegisterReply:
        what = "register reply"
        obj = _load_object(data, what)
        _check_fields(obj, what, ("sha", "hostname", "address", "report_port", "new_key"))
        if not isinstance(obj["sha"], str) or not _SHA256.match(obj["sha"]):
            raise MessageError(f"{what}.sha: not a hex SHA-256: {obj['sha']!r}")
        for key in ("hostname", "address"):
            if not isinstance(obj[key], str):
                raise MessageError(f"{what}.{key}: expected a string, got {obj[key]!r}")
        port = obj["report_port"]
        if isinstance(port, bool) or not isinstance(port, int):
            raise MessageError(f"{what}.report_port: expected an integer, got {port!r}")
        if not isinstance(obj["new_key"], bool):
            raise MessageError(f"{what}.new_key: expected true or false")
        return cls(obj["sha"], obj["hostname"], obj["address"], port, obj["new_key"])


# ----- peer sync ------------------------------------------------------------------------------

# An OpenSSH public key line is a few hundred bytes; this bounds one entry, not the fleet.
MAX_KEY_TEXT = 16 * 1024


def _sha_map(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MessageError(f"{what}: expected an object keyed by hex SHA-256")
    for sha in value:
        if not _SHA256.match(sha):
            raise MessageError(f"{what}: {sha[:80]!r} is not a hex SHA-256")
    return value


@dataclass(frozen=True)
class Tombstone:
    """A revocation as hubs pass it on: when it was made (ISO 8601) and why."""

    time: str
    reason: str


@dataclass(frozen=True)
class KeysReply:
    """A peer's answer to `keys`: its client keys (OpenSSH text) and its tombstones, by SHA.

    Whether a key's text really hashes to its SHA is checked per key by the receiver, so one
    bad entry is refused without discarding the rest.
    """

    keys: dict[str, str]
    revoked: dict[str, Tombstone]

    def to_json(self) -> str:
        revoked = {sha: asdict(t) for sha, t in self.revoked.items()}
        return json.dumps({"keys": self.keys, "revoked": revoked}, sort_keys=True)

    @classmethod
    def from_json(cls, data: str | bytes) -> KeysReply:
        what = "keys reply"
        obj = _load_object(data, what)
        _check_fields(obj, what, ("keys", "revoked"))
        keys = _sha_map(obj["keys"], f"{what}.keys")
        for sha, text in keys.items():
            where = f"{what}.keys[{sha[:12]}]"
            if not isinstance(text, str) or not text.strip():
                raise MessageError(f"{where}: expected an OpenSSH public key line")
            if len(text) > MAX_KEY_TEXT or "\n" in text.strip():
                raise MessageError(f"{where}: not a single public key line")
        revoked: dict[str, Tombstone] = {}
        for sha, stone in _sha_map(obj["revoked"], f"{what}.revoked").items():
            where = f"{what}.revoked[{sha[:12]}]"
            if not isinstance(stone, dict):
                raise MessageError(f"{where}: expected an object with time and reason")
            _check_fields(stone, where, ("time", "reason"))
            for key in ("time", "reason"):
                if not isinstance(stone[key], str):
                    raise MessageError(f"{where}.{key}: expected a string, got {stone[key]!r}")
            revoked[sha] = Tombstone(stone["time"], stone["reason"])
        return cls(dict(keys), revoked)


@dataclass(frozen=True)
class MasterfilesReply:
    """A peer's answer to `masterfiles`: its current release and the full tree hash, or nulls.

    One round trip tells a mirror whether it is in sync: equal tree hashes, equal trees.
    """

    release: str | None
    tree_hash: str | None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, data: str | bytes) -> MasterfilesReply:
        what = "masterfiles reply"
        obj = _load_object(data, what)
        _check_fields(obj, what, ("release", "tree_hash"))
        release, digest = obj["release"], obj["tree_hash"]
        if release is None and digest is None:
            return cls(None, None)
        if not is_release_id(release):
            raise MessageError(f"{what}.release: not a release id: {release!r}")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise MessageError(f"{what}.tree_hash: not a hex SHA-256: {digest!r}")
        if not digest.startswith(release):
            raise MessageError(f"{what}: tree hash {digest[:16]}... is not release {release}")
        return cls(release, digest)


# ----- masterfiles manifest -------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestEntry:
    """One file of a masterfiles release: where it goes, what it holds, its permission bits."""

    path: str
    sha256: str
    size: int
    mode: int


def encode_manifest(entries: list[ManifestEntry]) -> bytes:
    """The canonical bytes of a manifest: equal trees give equal bytes on every hub."""
    ordered = sorted(entries, key=lambda e: e.path)
    # Plain dicts rather than dataclasses.asdict: this runs on every manifest received.
    rows = [{"path": e.path, "sha256": e.sha256, "size": e.size, "mode": e.mode} for e in ordered]
    return json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def tree_hash(entries: list[ManifestEntry]) -> str:
    """SHA-256 (hex) of the canonical manifest bytes."""
    return hashlib.sha256(encode_manifest(entries)).hexdigest()


def release_id(entries: list[ManifestEntry]) -> str:
    """Content-addressed release id: the first 16 hex digits of the tree hash."""
    return tree_hash(entries)[:RELEASE_ID_LENGTH]


def check_relative_path(path: Any, what: str) -> str:
    """A clean relative POSIX path that stays inside its tree (no `..`, no absolute, no `.`)."""
    if not isinstance(path, str) or not path:
        raise MessageError(f"{what}: expected a relative path, got {path!r}")
    if path.startswith("/") or "\\" in path or "\x00" in path:
        raise MessageError(f"{what}: {path!r} is not a relative POSIX path")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts) or posixpath.normpath(path) != path:
        raise MessageError(f"{what}: {path!r} is not a clean path inside the tree")
    return path


def parse_manifest(data: bytes, expected_release: str | None = None) -> list[ManifestEntry]:
    """Check a manifest as received; with `expected_release`, prove it is that release."""
    what = "manifest" if expected_release is None else f"manifest of release {expected_release}"
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"{what}: not JSON ({exc})") from None
    except RecursionError:
        raise MessageError(f"{what}: nested too deeply to read") from None
    if not isinstance(raw, list):
        raise MessageError(f"{what}: expected a JSON list of files")
    entries: list[ManifestEntry] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"{what}[{i}]"
        if not isinstance(item, dict):
            raise MessageError(f"{where}: expected an object")
        _check_fields(item, where, ("path", "sha256", "size", "mode"))
        path = check_relative_path(item["path"], f"{where}.path")
        if path in seen:
            raise MessageError(f"{where}.path: {path!r} listed twice")
        seen.add(path)
        if not isinstance(item["sha256"], str) or not _SHA256.match(item["sha256"]):
            raise MessageError(f"{where}.sha256: not a hex SHA-256: {item['sha256']!r}")
        for key, limit in (("size", 1 << 40), ("mode", 0o7777)):
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
                raise MessageError(f"{where}.{key}: expected an integer 0..{limit}, got {value!r}")
        entries.append(ManifestEntry(path, item["sha256"], item["size"], item["mode"]))
    # A file and a directory of the same name cannot both exist in a tree.
    for path in seen:
        parent = posixpath.dirname(path)
        while parent:
            if parent in seen:
                raise MessageError(f"{what}: {parent!r} is both a file and a directory")
            parent = posixpath.dirname(parent)
    if expected_release is not None and release_id(entries) != expected_release:
        raise MessageError(
            f"{what}: content hashes to release {release_id(entries)}, not {expected_release}"
        )
    return entries


# ----- report records -------------------------------------------------------------------------


def report_line(record: dict[str, Any], epoch: str = "") -> str:
    """One spool record as the report service sends it: seq, epoch, time, kind, payload."""
    if set(record) != set(REPORT_FIELDS):
        raise MessageError(f"report record: expected fields {', '.join(REPORT_FIELDS)}")
    line = {"seq": record["seq"], REPORT_EPOCH: epoch} if epoch else {"seq": record["seq"]}
    line.update((k, record[k]) for k in REPORT_FIELDS[1:])
    return json.dumps(line, separators=(",", ":"))
