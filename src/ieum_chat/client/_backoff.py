"""Reconnect and retry delays: capped exponential backoff with full jitter.

"Full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter"): the delay before
attempt n is uniform in [0, min(cap, base * 2**n)], so that clients dropped at the same
moment (a server restart) do not come back at the same moment.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Backoff"]

# 2**64 * any sane base is far past any cap; larger exponents would only risk OverflowError.
_MAX_EXPONENT: Final = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float = 0.1
    """Seconds; the ceiling of the first delay."""
    cap: float = 10.0
    """Seconds; no delay is ever longer."""
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)
    """A uniform [0, 1) source; tests pass a fixed one."""

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.cap >= self.base):
            raise ValueError("Backoff needs 0 < base <= cap")

    def ceiling(self, attempt: int) -> float:
        """The largest delay before retry number `attempt` (0 for the first retry)."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        return min(self.cap, self.base * 2.0 ** min(attempt, _MAX_EXPONENT))

    def delay(self, attempt: int) -> float:
        return self.random() * self.ceiling(attempt)
