"""`hubctl lab replace hub1`: a hub's hardware is gone for good; a new machine takes its place.

What an operator does, in the lab's terms: the dead hub's mongod and hubd are gone; a new,
empty mongod starts (in no set yet); the new hub gets the cluster's hub key pair (as the
deploy gives it to every hub) and a config naming the hubs as they are now; its hubd starts
and pulls the client keys and masterfiles from its peers; `hubctl member replace --wait` swaps
the members and makes the new one electable once it has caught up.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from hub.replset import ReplicaSet
from hubctl.lab.child_commands import HUBCTL, HUBD
from hubctl.lab.lab_hubs import LabHub, share_hub_key, write_hub_config

if TYPE_CHECKING:
    from hubctl.lab.cluster import LabCluster

# How long the new hub may take to catch up before the lab calls the replacement failed.
CATCH_UP_WAIT = 90.0


def _next_name(lab: LabCluster, old: str) -> str:
    numbers = [int(n[3:]) for n in [old, *(h.name for h in lab.hubs)] if n[3:].isdigit()]
    return f"hub{max(numbers, default=0) + 1}"


def replace_hub(lab: LabCluster, name: str) -> str:
    """Kill hub `name` for good and replace it by a new hub; returns one line saying so."""
    old = lab.hub(name)
    assert lab.standin is not None
    lab.kill(old.name)
    rs = ReplicaSet(lab.uri)
    try:
        rs.wait_for_primary(60, exclude=old.member)
    finally:
        rs.close()
    member = lab.standin.add_member()
    new_name = _next_name(lab, old.name)
    new = LabHub.at(lab.directory, new_name, member)
    survivor = next(h for h in lab.hubs if h is not old)
    # Appended: the failover order of the hubs that stay is kept, as in their configs.
    lab.hubs.remove(old)
    lab.hubs.append(new)
    write_hub_config(lab, new)
    share_hub_key(survivor, new)
    init = subprocess.run(
        HUBD + ["init", "--config", str(new.config)], capture_output=True, text=True, timeout=60
    )
    if init.returncode != 0:
        raise RuntimeError(f"hubd init of {new.name} failed: {init.stderr.strip()}")
    lab.start_hub(new)
    swap = subprocess.run(
        HUBCTL
        + ["member", "replace", old.name, f"{new.name}={member}", "--yes"]
        + ["--wait", f"{CATCH_UP_WAIT:g}s", "--mongo", lab.uri],
        capture_output=True,
        text=True,
        timeout=CATCH_UP_WAIT + 60,
        env=lab.child_env("operator"),  # its credentials, never on the command line
    )
    if swap.returncode != 0:
        said = swap.stderr.strip().splitlines() or ["no output"]
        raise RuntimeError(f"replacing {old.name} by {new.name} failed: {said[-1]}")
    if lab.haproxy is not None:  # it would still send readers to the dead hub's portal
        lab.haproxy.repoint([(h.name, h.portal_port) for h in lab.hubs])
    return f"{old.name} replaced by {new.name} (mongod {member}, service {new.service})"
