"""Reconnect delays: capped exponential backoff with full jitter, and the floor a refused
handshake's Retry-After puts under it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ieum_chat.client import Backoff
from ieum_chat.client._client import _retry_after


def test_ceiling_doubles_up_to_the_cap() -> None:
    backoff = Backoff(0.1, 10.0)
    assert [backoff.ceiling(n) for n in range(9)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0]
    )
    assert backoff.ceiling(10_000) == 10.0  # no overflow, however long the outage


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    assert Backoff(0.1, 10.0, random=lambda: 0.0).delay(5) == 0.0
    assert Backoff(0.1, 10.0, random=lambda: 0.999999).delay(5) == pytest.approx(3.2, rel=1e-5)
    assert Backoff(0.1, 10.0, random=lambda: 0.5).delay(3) == pytest.approx(0.4)


@given(
    base=st.floats(0.001, 5.0),
    extra=st.floats(0.0, 100.0),
    attempt=st.integers(0, 500),
    r=st.floats(0.0, 1.0, exclude_max=True),
)
def test_delay_is_always_within_bounds(base: float, extra: float, attempt: int, r: float) -> None:
    backoff = Backoff(base, base + extra, random=lambda: r)
    delay = backoff.delay(attempt)
    assert 0.0 <= delay <= backoff.cap
    assert delay <= backoff.ceiling(attempt)
    assert backoff.ceiling(attempt) <= backoff.ceiling(attempt + 1)


def test_real_randomness_is_jittered() -> None:
    backoff = Backoff(0.1, 10.0)
    delays = {backoff.delay(6) for _ in range(50)}
    assert len(delays) > 40
    assert all(0.0 <= d <= 6.4 for d in delays)


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_invalid_settings(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base"):
        Backoff(base, cap)


def test_negative_attempt() -> None:
    with pytest.raises(ValueError, match="attempt"):
        Backoff().ceiling(-1)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("1e9", 300.0),
        ("nan", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        (None, 0.0),
    ],
)
def test_retry_after_is_a_bounded_floor(header: str | None, seconds: float) -> None:
    assert _retry_after(header) == seconds
