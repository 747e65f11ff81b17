"""The hubs of the cluster as it is now: whom clients fail over to, and whom peers sync with.

[[hubs]] in a hub's config is where it starts; the replica set's config is the truth about
which hubs are members now. So a hub replaced with `hubctl member replace` drops out of
every hub's list, and its replacement joins it, at the SSH service its hubd publishes in
its state, once it may be elected: a hub still catching up would turn clients away.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError
from pymongo.read_preferences import PrimaryPreferred

from hub.config import HubEntry
from hub.store import HubStore
from hub.topology import Topology, hub_tags

log = logging.getLogger("hubcluster.hubd")


def current_hubs(
    configured: list[HubEntry],
    me: HubEntry,
    set_config: dict[str, Any] | None,
    states: list[dict[str, Any]],
) -> list[HubEntry]:
    """[[hubs]] that are still members, in their order, then the set's electable newcomers.

    A newcomer is named by its member's `hub` tag and reached at the service its hubd
    reported; one whose hubd never reported is left out until it does. This hub is always
    in its own list.
    """
    members = (set_config or {}).get("members") or []
    if not members:
        return list(configured)  # not initiated yet: nothing better to go by
    hosts = {c["host"] for c in members}
    hubs = [h for h in configured if h.mongo in hosts or h == me]
    known = {h.mongo for h in hubs}
    names = hub_tags(set_config or {})
    reported = {s["member"]: s for s in states if s.get("member") and s.get("service")}
    for c in members:
        host = c["host"]
        if host in known or not c.get("priority", 1) or host not in reported:
            continue
        state = reported[host]
        hubs.append(HubEntry(names.get(host) or str(state["_id"]), host, state["service"]))
    return hubs


def hub_names(configured: list[HubEntry], topology: Topology | None) -> list[str]:
    """The cluster's hubs by name, for counting a majority of hubs: [[hubs]] still members,
    then members [[hubs]] lacks, by their `hub` tag (a replacement not yet in the config).

    [[hubs]] as it is when the set cannot be read or none of its hubs is a member.
    """
    configured_names = [h.name for h in configured]
    if topology is None or not topology.members:
        return configured_names
    hosts = {m.name for m in topology.members}
    names = [h.name for h in configured if h.mongo in hosts]
    if not names:
        return configured_names
    known = {h.mongo for h in configured}
    for m in topology.members:
        if m.hub and m.name not in known and m.hub not in names:
            names.append(m.hub)
    return names


class HubDirectory:
    """Reads the set's config and the hubs' states for current_hubs(); None when it cannot."""

    def __init__(self, client: MongoClient, store: HubStore, configured: list[HubEntry]) -> None:
        self.client = client
        self.store = store
        self.configured = list(configured)

    def look(self, me: HubEntry) -> list[HubEntry] | None:
        try:
            config = self.client.admin.command(
                "replSetGetConfig", read_preference=PrimaryPreferred()
            )["config"]
            states = self.store.hub_states()
        except PyMongoError as exc:
            log.debug("hub list not refreshed: %s", exc)
            return None
        return current_hubs(self.configured, me, config, states)
