"""Hypothesis profiles for the property tier.

`ci` (the default) is derandomized, so a run in CI is reproducible, and sized so the whole
tier stays well under a minute on two cores. `thorough` is for hunting locally:
HYPOTHESIS_PROFILE=thorough pytest tests/properties
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=_QUIET,
)
settings.register_profile(
    "thorough",
    max_examples=3000,
    deadline=None,
    suppress_health_check=_QUIET,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
