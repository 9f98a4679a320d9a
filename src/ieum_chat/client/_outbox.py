"""Sends awaiting their RECEIPT: a bounded, ordered outbox keyed by tempId.

Every entry is written again, with the same tempId, on every new connection until its
RECEIPT arrives; the server stores a repeated tempId once (README "Payloads"), so a RECEIPT
lost with a dropped connection costs one more write, never a duplicate message. Changes of
sent messages (edits, unsends, reactions, deletes) wait here too, in the same order as the
messages: an edit queued after the message it names is written after it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ._events import SendReceipt

__all__ = ["Outbox", "PendingSend"]


@dataclass(slots=True, eq=False)
class PendingSend:
    temp_id: str
    body: bytes
    future: asyncio.Future[SendReceipt] = field(repr=False)
    attempts: int = 0
    """Times written to a connection."""
    retries: int = 0
    """Automatic retries after a transient error (RATE_LIMITED, a database failure)."""
    written_on: int | None = None
    """The connection generation it was last written on; None: write it again."""
    receipt_id: str | None = None
    not_before: float = 0.0
    """Loop time before which it is not written (a retry's backoff)."""
    suffix: str = ""
    """Its destination after ``/app/chat/{coupleId}``: "" for a message, "/edit", ..."""


def _retrieve(future: asyncio.Future[SendReceipt]) -> None:
    # A send whose caller went away still fails or succeeds; reading the exception here
    # keeps asyncio from logging "exception was never retrieved" for it.
    if not future.cancelled():
        future.exception()


class Outbox:
    """At most `limit` pending sends, in the order they were made."""

    __slots__ = ("_entries", "_limit", "_space")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the outbox limit must be positive")
        self._limit = limit
        self._entries: dict[str, PendingSend] = {}
        self._space = asyncio.Event()
        self._space.set()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, temp_id: object) -> bool:
        return temp_id in self._entries

    @property
    def limit(self) -> int:
        return self._limit

    def get(self, temp_id: str) -> PendingSend | None:
        return self._entries.get(temp_id)

    async def wait_for_space(self) -> None:
        """Backpressure: returns once an entry can be added."""
        while len(self._entries) >= self._limit:
            self._space.clear()
            await self._space.wait()

    def add(self, temp_id: str, body: bytes, suffix: str = "") -> PendingSend:
        """A new entry, or the pending one with this tempId (a repeated send joins it)."""
        entry = self._entries.get(temp_id)
        if entry is not None:
            return entry
        if len(self._entries) >= self._limit:
            raise OverflowError(f"the outbox holds {self._limit} pending sends")
        future: asyncio.Future[SendReceipt] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        entry = PendingSend(temp_id, body, future, suffix=suffix)
        self._entries[temp_id] = entry
        return entry

    def due(self, generation: int, now: float) -> list[PendingSend]:
        """Entries to write on connection `generation` now, oldest first."""
        return [
            entry
            for entry in self._entries.values()
            if entry.written_on != generation and entry.not_before <= now
        ]

    def next_due(self, generation: int, now: float) -> float | None:
        """Seconds until a deferred entry becomes due; None when none waits."""
        times = [
            entry.not_before
            for entry in self._entries.values()
            if entry.written_on != generation and entry.not_before > now
        ]
        return min(times) - now if times else None

    def mark_written(self, entry: PendingSend, generation: int, receipt_id: str) -> None:
        entry.written_on = generation
        entry.receipt_id = receipt_id
        entry.attempts += 1

    def defer(self, temp_id: str, until: float) -> PendingSend | None:
        """Write the entry again (on any connection) once the loop time passes `until`."""
        entry = self._entries.get(temp_id)
        if entry is not None:
            entry.retries += 1
            entry.written_on = None
            entry.receipt_id = None
            entry.not_before = until
        return entry

    def complete(self, temp_id: str) -> PendingSend | None:
        entry = self._pop(temp_id)
        if entry is not None and not entry.future.done():
            entry.future.set_result(SendReceipt(temp_id, entry.attempts))
        return entry

    def fail(self, temp_id: str, exc: BaseException) -> PendingSend | None:
        entry = self._pop(temp_id)
        if entry is not None and not entry.future.done():
            entry.future.set_exception(exc)
        return entry

    def fail_all(self, exc: BaseException) -> None:
        for temp_id in list(self._entries):
            self.fail(temp_id, exc)

    def _pop(self, temp_id: str) -> PendingSend | None:
        entry = self._entries.pop(temp_id, None)
        if len(self._entries) < self._limit:
            self._space.set()
        return entry
