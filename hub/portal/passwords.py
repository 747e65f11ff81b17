"""Password and API-token hashes (argon2id), for the portal's users and scripts.

Kept free of web imports: `hubd hash-password` and `hubd make-token` use it alone.
A token reads NAME.SECRET, so one hash is checked per request, not one per token.
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
# Passwords longer than this are refused before hashing: argon2 would hash megabytes.
MAX_SECRET_CHARS = 1024


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def secret_matches(secret_hash: str, secret: str) -> bool:
    if not secret or len(secret) > MAX_SECRET_CHARS:
        return False
    try:
        return _hasher.verify(secret_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@functools.cache
def decoy_hash() -> str:
    """A well-formed hash nobody's password matches: unknown users cost the same time as
    known ones, so a login's timing does not tell which names exist. Made on first use, not
    at import: every hubd and hubctl imports this module, and one hash costs ~0.3 s of CPU."""
    return hash_secret(secrets.token_urlsafe(16))


def new_token(name: str) -> tuple[str, str]:
    """A fresh API token for `name` and its hash: (NAME.SECRET, argon2 hash of SECRET)."""
    secret = secrets.token_urlsafe(32)
    return f"{name}.{secret}", hash_secret(secret)
