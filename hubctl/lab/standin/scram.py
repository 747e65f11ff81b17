"""The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677), as mongod runs it.

mongod keeps per user a salt, an iteration count, StoredKey and ServerKey, never the
password; it checks the client's proof against StoredKey and proves itself with ServerKey.
The password is SASLprep'd but, unlike SCRAM-SHA-1, not pre-hashed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from pymongo.saslprep import saslprep

MECHANISM = "SCRAM-SHA-256"
ITERATIONS = 15_000  # mongod's scramSHA256IterationCount default
_SALT_BYTES = 28


class ScramFailed(Exception):
    """The conversation cannot succeed: unknown user, wrong proof or a malformed message."""


@dataclass(frozen=True)
class ScramCredential:
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def make_credential(password: str, iterations: int = ITERATIONS) -> ScramCredential:
    salt = os.urandom(_SALT_BYTES)
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode(), salt, iterations)
    client_key = _hmac(salted, b"Client Key")
    return ScramCredential(
        salt=salt,
        iterations=iterations,
        stored_key=hashlib.sha256(client_key).digest(),
        server_key=_hmac(salted, b"Server Key"),
    )


def _attributes(message: str) -> dict[str, str]:
    attrs = {}
    for part in message.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1:
            raise ScramFailed(f"malformed SCRAM attribute {part[:20]!r}")
        attrs[key] = value
    return attrs


def _username(escaped: str) -> str:
    # RFC 5802: ',' and '=' travel as =2C and =3D; any other '=' is malformed.
    if "=" in escaped.replace("=2C", "").replace("=3D", ""):
        raise ScramFailed("malformed SCRAM user name")
    return escaped.replace("=2C", ",").replace("=3D", "=")


class ScramConversation:
    """One login: first() answers the client-first message, final() the client-final one."""

    def __init__(self, lookup: Callable[[str], ScramCredential | None]) -> None:
        self._lookup = lookup
        self.username = ""
        self._credential: ScramCredential | None = None
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    def first(self, payload: bytes) -> bytes:
        message = payload.decode("utf-8", "replace")
        # gs2 header: no channel binding ("n,," or "y,,"); mongod supports none.
        if not message.startswith(("n,", "y,")):
            raise ScramFailed("SCRAM channel binding is not supported")
        flag, _, rest = message.partition(",")
        authzid, _, bare = rest.partition(",")
        self._gs2_header = f"{flag},{authzid},"
        attrs = _attributes(bare)
        if "n" not in attrs or "r" not in attrs:
            raise ScramFailed("SCRAM client-first message lacks n= or r=")
        self.username = _username(attrs["n"])
        credential = self._lookup(self.username)
        if credential is None:
            raise ScramFailed(f"no such user {self.username!r}")
        self._credential = credential
        self._client_first_bare = bare
        self._nonce = attrs["r"] + base64.b64encode(os.urandom(24)).decode()
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={credential.iterations}"
        return self._server_first.encode()

    def final(self, payload: bytes) -> bytes:
        if self._credential is None:
            raise ScramFailed("saslContinue before saslStart")
        message = payload.decode("utf-8", "replace")
        without_proof, sep, proof_part = message.rpartition(",p=")
        if not sep:
            raise ScramFailed("SCRAM client-final message lacks a proof")
        attrs = _attributes(without_proof)
        if attrs.get("r") != self._nonce:
            raise ScramFailed("SCRAM nonce mismatch")
        if attrs.get("c") != base64.b64encode(self._gs2_header.encode()).decode():
            raise ScramFailed("SCRAM channel binding mismatch")
        try:
            proof = base64.b64decode(proof_part, validate=True)
        except ValueError:
            raise ScramFailed("SCRAM proof is not base64") from None
        auth_message = ",".join((self._client_first_bare, self._server_first, without_proof))
        signature = _hmac(self._credential.stored_key, auth_message.encode())
        if len(proof) != len(signature):
            raise ScramFailed("SCRAM proof has the wrong length")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(
            hashlib.sha256(client_key).digest(), self._credential.stored_key
        ):
            raise ScramFailed("SCRAM proof does not match")
        server_signature = _hmac(self._credential.server_key, auth_message.encode())
        return b"v=" + base64.b64encode(server_signature)
