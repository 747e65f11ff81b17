"""The release generation a client runs, so it never moves to a lower one.

Hubs tell clients the generation of the release they serve (`master` answers, see
hub.release_generations). A hub that lost the newest publish in a failover, or one still
mirroring, may serve an older release; the client keeps the newer one it runs. The number
is kept beside the workdir's `inputs` link, in `policy_generation.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from client_agent.state import ClientState
from hubcluster.atomic import atomic_write_bytes

FILE = "policy_generation.json"


@dataclass(frozen=True)
class Running:
    generation: int
    release: str


def running(state: ClientState) -> Running | None:
    """The generation of the release in force, or None when it was never told one."""
    try:
        doc = json.loads((state.workdir / FILE).read_bytes())
        return Running(int(doc["generation"]), str(doc["release"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: the next release a hub names with a generation fixes it


def refusal(state: ClientState, release: str, generation: int | None) -> str | None:
    """Why moving to `release` at `generation` would go back, or None when it would not."""
    mine = running(state)
    if mine is None or release == mine.release:
        return None
    if generation is None or generation < mine.generation:
        offered = "an unknown generation" if generation is None else f"generation {generation}"
        return (
            f"the hub serves release {release} ({offered}), older than generation "
            f"{mine.generation} (release {mine.release}) in force here; keeping it"
        )
    return None


def record(state: ClientState, release: str, generation: int | None) -> None:
    """Remember the generation of the release now in force (never lowering it)."""
    if generation is None:
        return
    mine = running(state)
    if mine is not None and mine.generation >= generation and mine.release == release:
        return
    data = json.dumps({"generation": generation, "release": release}).encode()
    atomic_write_bytes(state.workdir / FILE, data)
