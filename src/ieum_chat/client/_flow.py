"""Send flow control: how many SENDs may await their RECEIPT, and when writing may resume.

The server refuses a sender past its message rate with RATE_LIMITED and fails a commit the
database could not take with SEND_FAILED ("could not be stored"). Both are transient: the
whole outbox backs off, not just the refused message. The window is AIMD, as TCP's
congestion window: halved once per refusal episode, grown by 1/window per RECEIPT, so after a
refusal the client settles near the rate the server admits instead of re-sending a burst.
"""

from __future__ import annotations

from typing import Final

from ._backoff import Backoff
from ._errors import TRANSIENT_STORE_DETAIL

__all__ = ["SendWindow", "is_transient"]

_TRANSIENT_CODES: Final = frozenset({"RATE_LIMITED"})


def is_transient(code: str, detail: str | None) -> bool:
    """RATE_LIMITED, or SEND_FAILED because the database failed: worth retrying as is."""
    return code in _TRANSIENT_CODES or (
        code == "SEND_FAILED" and TRANSIENT_STORE_DETAIL in (detail or "")
    )


class SendWindow:
    __slots__ = ("_backoff", "_max", "_paused_until", "_streak", "_window", "inflight")

    def __init__(self, backoff: Backoff, max_window: int = 64) -> None:
        if max_window < 1:
            raise ValueError("max_window must be positive")
        self._backoff = backoff
        self._max = float(max_window)
        self._window = float(max_window)
        self._paused_until = 0.0
        self._streak = 0
        self.inflight = 0

    @property
    def size(self) -> int:
        return int(self._window)

    def reset(self) -> None:
        """A new connection: nothing is in flight on it."""
        self.inflight = 0

    def can_write(self, now: float) -> bool:
        return now >= self._paused_until and self.inflight < int(self._window)

    def paused_for(self, now: float) -> float | None:
        """Seconds until writing may resume after a refusal; None when not paused."""
        return self._paused_until - now if now < self._paused_until else None

    def on_write(self) -> None:
        self.inflight += 1

    def on_receipt(self) -> None:
        self.inflight = max(0, self.inflight - 1)
        self._streak = 0
        if self._window < self._max:
            self._window = min(self._max, self._window + 1.0 / self._window)

    def on_refused(self, now: float, *, in_flight: bool = True) -> float:
        """A transient refusal; returns the loop time before which nothing is written.
        Refusals that arrive while already paused belong to the same episode."""
        if in_flight:
            self.inflight = max(0, self.inflight - 1)
        if now >= self._paused_until:
            self._window = max(1.0, self._window / 2)
            self._paused_until = now + self._backoff.base + self._backoff.delay(self._streak)
            self._streak += 1
        return self._paused_until

    def on_failed(self) -> None:
        """A permanent refusal: the SEND is no longer in flight."""
        self.inflight = max(0, self.inflight - 1)
