"""The GCRA arithmetic of shared rate limits, and rate strings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowledger import gcra
from flowledger.errors import ConfigurationError
from flowledger.rates import format_rate, parse_rate, step_rate

SECOND = 1_000_000


def test_an_idle_bucket_starts_at_once_then_spaces_calls() -> None:
    start, tat = gcra.reserve(0, 5 * SECOND, 1, SECOND, 20, 1)
    assert (start, tat) == (5 * SECOND, 5 * SECOND + 50_000)
    start, tat = gcra.reserve(tat, 5 * SECOND, 1, SECOND, 20, 1)
    assert start == 5 * SECOND + 50_000


def test_a_burst_starts_at_once_and_then_the_rate_applies() -> None:
    tat, starts = 0, []
    for _ in range(5):
        start, tat = gcra.reserve(tat, SECOND, 1, SECOND, 10, 3)
        starts.append(start - SECOND)
    assert starts == [0, 0, 0, 100_000, 200_000]


def test_a_large_request_goes_at_once_on_an_idle_bucket_and_the_next_one_pays() -> None:
    start, tat = gcra.reserve(0, SECOND, 2000, 60 * SECOND, 90_000, 1)
    assert start == SECOND
    start, _ = gcra.reserve(tat, SECOND, 1, 60 * SECOND, 90_000, 1)
    assert start == SECOND + gcra.cost_us(2000, 60 * SECOND, 90_000)


def test_admits_is_the_zero_wait_case_of_reserve() -> None:
    assert gcra.admits(0, SECOND, SECOND, 10, 1)
    _, tat = gcra.reserve(0, SECOND, 1, SECOND, 10, 1)
    assert not gcra.admits(tat, SECOND, SECOND, 10, 1)
    assert gcra.admits(tat, SECOND + 100_000, SECOND, 10, 1)


requests = st.lists(st.tuples(st.integers(0, 2 * SECOND), st.integers(1, 5)),
                    min_size=1, max_size=60)


@given(requests, st.integers(1, 100), st.integers(1, 10), st.integers(1, 5))
def test_reservations_keep_the_rate_in_every_window(
        arrivals: list[tuple[int, int]], rate: int, seconds: int, burst: int) -> None:
    """Requests arriving in any order of time start first come, first served, and the
    units started between any two starts never exceed what the rate allows plus the
    burst: s_j - s_i >= (units of i..j-1 - (burst - 1)) * interval."""
    period = seconds * SECOND
    burst = min(burst, rate)
    now, tat = 0, 0
    starts: list[tuple[int, int]] = []
    for gap, units in arrivals:
        now += gap
        start, tat = gcra.reserve(tat, now, units, period, rate, burst)
        assert start >= now
        starts.append((start, units))
    for i in range(len(starts)):
        paid = 0
        for j in range(i + 1, len(starts)):
            paid += starts[j - 1][1]
            assert starts[j][0] >= starts[i][0]  # FIFO
            needed = gcra.cost_us(paid, period, rate) - gcra.cost_us(burst - 1, period, rate)
            # Costs are rounded up per request: allow one microsecond per request.
            assert starts[j][0] - starts[i][0] >= needed - (j - i)


@given(st.integers(0, 10 * SECOND), st.integers(0, 10 * SECOND), st.floats(0.5, 5000),
       st.integers(1, 100), st.integers(1, 10 * SECOND), st.integers(1, 100))
def test_the_start_follows_from_the_new_state(tat: int, now: int, units: float, rate: int,
                                              period: int, burst: int) -> None:
    """What a one-statement reservation returns (the new tat) is enough to know the start."""
    burst = min(burst, rate)
    start, new_tat = gcra.reserve(tat, now, units, period, rate, burst)
    assert gcra.start_from(new_tat, now, units, period, rate, burst) == start


@given(st.integers(0, 10 * SECOND), st.integers(1, 1000), st.integers(1, 10 * SECOND))
def test_a_request_never_waits_on_an_idle_bucket(now: int, rate: int, period: int) -> None:
    start, _ = gcra.reserve(now, now, 1, period, rate, 1)
    assert start == now


@pytest.mark.parametrize(("text", "expected"), [
    ("500/min", (500, 60 * SECOND)), ("100/s", (100, SECOND)), ("10/h", (10, 3600 * SECOND)),
    ("20/10s", (20, 10 * SECOND)), (" 3 / day ", (3, 86400 * SECOND)),
    ("7/Minute", (7, 60 * SECOND))])
def test_rates_parse(text: str, expected: tuple[int, int]) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["", "fast", "0/s", "-5/s", "5", "5/", "5/0s",
                                  "5/fortnight", "1.5/s", "5/s/s", "5/400d"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="a rate is a positive whole number"):
        parse_rate(text)


@given(st.integers(1, 10**6), st.sampled_from([1, 2, 10, 60, 120, 3600, 7200, 86400]))
def test_format_and_parse_agree(units: int, seconds: int) -> None:
    assert parse_rate(format_rate(units, seconds * SECOND)) == (units, seconds * SECOND)


def test_format_names_the_period() -> None:
    assert format_rate(500, 60 * SECOND) == "500/min"
    assert format_rate(5, 10 * SECOND) == "5/10s"
    assert format_rate(1, 500_000) == "1/0.5s"


@pytest.mark.parametrize("value", [5, "", ("x", 0), ("x", -1), ("x", True), ("x",),
                                   ("x", "many"), ["x", 1]])
def test_bad_step_rate_limits_are_refused(value: object) -> None:
    with pytest.raises(ConfigurationError):
        step_rate(value)


def test_step_rate_limits_parse() -> None:
    assert step_rate(None) is None
    assert step_rate("openai").name == "openai"  # type: ignore[union-attr]
    computed = step_rate(("tokens", lambda prompt: len(prompt) / 4))
    assert computed is not None and computed.cost(("abcdefgh",), {}) == 2.0
    with pytest.raises(ConfigurationError, match="positive number"):
        computed.cost(("",), {})
