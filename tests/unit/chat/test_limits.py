"""Token buckets: a per-user limiter and the node's one admission bucket, on a fake clock."""

from __future__ import annotations

import uuid

import pytest

from ieum_chat.chat.limits import RateLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_spends_its_burst_then_says_how_long_to_wait() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=4.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.25)
    assert bucket.take() == pytest.approx(0.25)  # a refusal spends nothing
    clock.now += 0.1
    assert bucket.take() == pytest.approx(0.15)
    clock.now += 0.15
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.25)


def test_bucket_refills_up_to_its_burst_only() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10.0, burst=2, clock=clock)
    bucket.take()
    bucket.take()
    clock.now += 60.0
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, pytest.approx(0.1)]


def test_clock_going_backwards_adds_no_tokens() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)
    bucket.take()
    clock.now -= 50.0
    assert bucket.take() == pytest.approx(1.0)


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_limits_need_a_positive_rate_and_burst(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket(rate, burst)
    with pytest.raises(ValueError, match="rate > 0"):
        RateLimiter(rate, burst)


def test_rate_limiter_keeps_a_bucket_per_key() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=2, clock=clock)
    a, b = uuid.uuid4(), uuid.uuid4()
    assert [limiter.allow(a) for _ in range(3)] == [True, True, False]
    assert limiter.allow(b)
    clock.now += 1.0
    assert limiter.allow(a)
    assert not limiter.allow(a)
