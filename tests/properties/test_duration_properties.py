"""Durations as operators type them: seconds a clock can take, or ValueError."""

from __future__ import annotations

import datetime as dt
import math

from hypothesis import given
from hypothesis import strategies as st

from hubcluster.durations import DurationRange, parse_duration
from hubctl import duration_option
from tests.properties.strategies import hostile_text, numbers

RANGES = [v for v in vars(duration_option).values() if isinstance(v, DurationRange)]

durations = st.one_of(
    numbers,
    st.booleans(),
    hostile_text,
    st.from_regex(r"\A-?[0-9]{1,25}(\.[0-9]{1,5})?(ms|s|m|h|d)?([0-9]{1,20}(ms|s|m|h|d))?\Z"),
    st.integers(0, 400).map(lambda n: "9" * n + "d"),
)


@given(durations)
def test_parse_duration_gives_finite_seconds_or_value_error(text):
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 300
    else:
        assert isinstance(seconds, float) and math.isfinite(seconds) and seconds >= 0


@given(st.sampled_from(RANGES), durations)
def test_a_range_accepts_only_what_clocks_and_timedeltas_take(allowed, text):
    try:
        seconds = allowed.parse(text)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert allowed.low <= seconds <= allowed.high
        # what hubctl does with it: a deadline from now
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


def test_the_stated_ranges_were_found():
    assert len(RANGES) >= 5, "hubctl.duration_option lost its ranges; this tier tests them"
