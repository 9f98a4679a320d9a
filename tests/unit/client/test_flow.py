"""Send flow control after RATE_LIMITED or a database failure: pause, AIMD window."""

from __future__ import annotations

import pytest

from ieum_chat.client import Backoff
from ieum_chat.client._flow import SendWindow, is_transient


def window(max_window: int = 8) -> SendWindow:
    return SendWindow(Backoff(0.5, 10.0, random=lambda: 0.5), max_window)


@pytest.mark.parametrize(
    ("code", "detail", "transient"),
    [
        ("RATE_LIMITED", "too many messages; slow down", True),
        ("RATE_LIMITED", None, True),
        ("SEND_FAILED", "the message could not be stored", True),
        ("SEND_FAILED", "TEXT needs a non-blank 'content'", False),
        ("SEND_FAILED", None, False),
        ("UNAUTHORIZED", "not a member of this couple", False),
    ],
)
def test_transient_errors(code: str, detail: str | None, transient: bool) -> None:
    assert is_transient(code, detail) is transient


def test_window_limits_sends_in_flight() -> None:
    flow = window(2)
    assert flow.can_write(0.0)
    flow.on_write()
    flow.on_write()
    assert not flow.can_write(0.0)
    flow.on_receipt()
    assert flow.can_write(0.0)
    flow.reset()
    assert flow.inflight == 0


def test_refusal_pauses_and_halves_once_per_episode() -> None:
    flow = window(8)
    for _ in range(8):
        flow.on_write()
    until = flow.on_refused(10.0)
    assert until == pytest.approx(10.0 + 0.5 + 0.25)  # base + jitter * ceiling(0)
    assert flow.size == 4
    assert not flow.can_write(10.1)
    assert flow.paused_for(10.25) == pytest.approx(0.5)
    # More refusals of the same burst arrive while paused: same episode, no more halving.
    assert flow.on_refused(10.2) == until
    assert flow.size == 4
    assert flow.inflight == 6
    # Past the pause, a further refusal starts a new, longer episode.
    flow.reset()
    second = flow.on_refused(11.0, in_flight=False)
    assert second == pytest.approx(11.0 + 0.5 + 0.5)
    assert flow.size == 2
    assert flow.paused_for(20.0) is None


def test_window_grows_back_additively() -> None:
    flow = window(8)
    flow.on_refused(0.0, in_flight=False)
    flow.on_refused(5.0, in_flight=False)
    assert flow.size == 2
    for _ in range(3):
        flow.on_receipt()  # +1/window each: 2.5, 2.9, 3.24
    assert flow.size == 3
    for _ in range(200):
        flow.on_receipt()
    assert flow.size == 8  # never past the maximum


def test_window_never_below_one() -> None:
    flow = window(2)
    for t in range(10):
        flow.on_refused(float(t * 100), in_flight=False)
    assert flow.size == 1
    assert flow.can_write(10_000.0)
