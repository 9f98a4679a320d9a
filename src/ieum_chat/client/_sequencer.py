"""Exactly once and in order: which entries of the couple's stream the application gets.

The server numbers each couple's stream 1, 2, 3, ...: its messages and the changes made to
them (edits, unsends, reactions, read marks) share the numbering, so message seqs may skip
but the stream, as one member sees it, has no gap (a message that member deleted for
themselves is replayed as its MESSAGE_DELETED, at its seq). The client remembers the last seq
it handed to the application and accepts only the next one: a lower seq is a duplicate
(dropped), a higher one means something was missed (the client resubscribes from the last
seq, and the server replays the rest). A client started live-only learns the seq its stream
starts after from the RECEIPT of its SUBSCRIBE (``x-last-seq``).
"""

from __future__ import annotations

import enum

__all__ = ["Sequencer", "Verdict"]


class Verdict(enum.Enum):
    NEXT = "NEXT"
    """Deliver it, then `advance()`."""
    DUPLICATE = "DUPLICATE"
    """Already delivered: drop."""
    GAP = "GAP"
    """Something before it is missing: drop, and resume from `last_seq`."""


class Sequencer:
    __slots__ = ("_last",)

    def __init__(self, last_seq: int | None = None) -> None:
        if last_seq is not None and last_seq < 0:
            raise ValueError("last_seq must be >= 0")
        self._last = last_seq

    @property
    def last_seq(self) -> int | None:
        """The seq of the last entry delivered; None before the first one of a live-only
        start (nothing known yet: the first entry seen sets it)."""
        return self._last

    def start_after(self, seq: int) -> None:
        """Where a live-only start begins, as the server said (the RECEIPT of the topic
        SUBSCRIBE): from then on the stream is checked from there, so the next subscription
        resumes after it. Nothing changes once a seq is known."""
        if seq < 0:
            raise ValueError("seq must be >= 0")
        if self._last is None:
            self._last = seq

    def check(self, seq: int) -> Verdict:
        last = self._last
        if last is None:
            return Verdict.NEXT
        if seq <= last:
            return Verdict.DUPLICATE
        if seq == last + 1:
            return Verdict.NEXT
        return Verdict.GAP

    def advance(self, seq: int) -> None:
        if self.check(seq) is not Verdict.NEXT:
            raise ValueError(f"seq {seq} does not follow {self._last}")
        self._last = seq
