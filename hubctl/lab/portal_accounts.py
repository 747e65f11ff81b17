"""The lab portal's accounts: an admin and a viewer with one password, and a viewer token.

Made once per process: argon2 costs about half a second of CPU per hash by design, and a
test session starts dozens of labs. Every lab of one process shares them; each is a local,
loopback-only lab.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass


@dataclass(frozen=True)
class LabPortalAccounts:
    password: str
    token: str
    password_hash: str
    token_hash: str

    def config(self) -> str:
        """The [[portal.users]] and [[portal.tokens]] tables of every lab hub."""
        users = "".join(
            f'[[portal.users]]\nname = "{role}"\nrole = "{role}"\n'
            f'password_hash = "{self.password_hash}"\n\n'
            for role in ("admin", "viewer")
        )
        return (
            f'{users}[[portal.tokens]]\nname = "lab"\nrole = "viewer"\n'
            f'token_hash = "{self.token_hash}"\n\n'
        )


@functools.cache
def lab_portal_accounts() -> LabPortalAccounts:
    from hub.portal.passwords import hash_secret, new_token

    password = secrets.token_urlsafe(12)
    token, token_hash = new_token("lab")
    return LabPortalAccounts(password, token, hash_secret(password), token_hash)
