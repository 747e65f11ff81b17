"""pymongo's read preferences by name, typed with its public classes only."""

from __future__ import annotations

from pymongo.read_preferences import (
    Nearest,
    Primary,
    PrimaryPreferred,
    Secondary,
    SecondaryPreferred,
)

# pymongo's common base class is private (`_ServerMode`); this union is its public face.
ReadMode = Primary | PrimaryPreferred | Secondary | SecondaryPreferred | Nearest

# The modes that may read a secondary, so take a max_staleness bound (primary takes none).
STALENESS_MODES: dict[str, type[PrimaryPreferred | Secondary | SecondaryPreferred | Nearest]] = {
    "primaryPreferred": PrimaryPreferred,
    "secondary": Secondary,
    "secondaryPreferred": SecondaryPreferred,
    "nearest": Nearest,
}
MODES: dict[str, type[ReadMode]] = {"primary": Primary, **STALENESS_MODES}
