"""The master hub's part in replacing a hub: make a new member electable once it caught up.

A person should not have to come back to finish a replacement: the master's hubd looks at
the promotions `hubctl member add|replace` left, and raises a new member's priority when
its mongod is a caught-up secondary and its hubd holds the set's newest release generation
and as many client keys as the master (hub.membership.promote_caught_up).
"""

from __future__ import annotations

import logging

from pymongo.errors import PyMongoError

from hub import release_generations as generations
from hub.keystore import KeyStore
from hub.membership import Membership
from hub.replset import ReplicaSet, ReplsetError
from hub.store import HubStore

log = logging.getLogger("hubcluster.hubd")

# How often the master looks; a look with nothing pending is one small read.
LOOK_SECONDS = 2.0


class MemberPromoter:
    def __init__(self, uri: str, store: HubStore, keystore: KeyStore) -> None:
        self.rs = ReplicaSet(uri, timeout=5.0)
        self.membership = Membership(self.rs)
        self.store = store
        self.keystore = keystore

    def look(self) -> list[str]:
        """Promote what has caught up; one sentence per member raised."""
        try:
            if not self.membership.pending():
                return []
            newest = generations.latest(self.store)
            keys = len(self.keystore.keys())
            return self.membership.promote_caught_up(
                self.store.hub_states(), newest.number if newest else None, keys
            )
        except (ReplsetError, PyMongoError) as exc:
            log.warning("new members not looked at (next look in %gs): %s", LOOK_SECONDS, exc)
            return []

    def close(self) -> None:
        self.rs.close()
