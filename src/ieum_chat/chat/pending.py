"""What travels through the chat service's write pipeline: a send or a change waiting for
its couple's writer (its future resolves at commit, its acknowledger writes the RECEIPT), what
a committed batch publishes, and what a refusal of the store tells the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ieum_chat.errors import (
    ChangeFailed,
    ChatError,
    Forbidden,
    NotFound,
    SendFailed,
    Unauthorized,
    WindowExpired,
)
from ieum_chat.store.records import (
    Event,
    Hide,
    Message,
    NewChange,
    NewMessage,
    Refusal,
    Refused,
    User,
)

__all__ = [
    "REFUSAL_ERRORS",
    "Acknowledge",
    "Outgoing",
    "Pending",
    "PendingChange",
    "PendingMessage",
    "refusal_error",
]

log = logging.getLogger(__name__)

# Called in the writer right after the commit (or its failure) with the resolved future
# (a Message for a send, an Applied for a change).
Acknowledge = Callable[["asyncio.Future[Any]"], None]


REFUSAL_ERRORS: dict[Refusal, type[ChatError]] = {
    Refusal.NOT_FOUND: NotFound,
    Refusal.FORBIDDEN: Forbidden,
    Refusal.WINDOW_EXPIRED: WindowExpired,
}


def refusal_error(refused: Refused, temp_id: str | None) -> ChatError:
    """What the sender of a message or change the store refused is told: UNAUTHORIZED when
    its couple is gone or it is not a member (as for any SEND by a non-member), NOT_FOUND,
    FORBIDDEN or WINDOW_EXPIRED for a change, else SEND_FAILED."""
    if refused.reason is Refusal.NOT_A_MEMBER:
        return Unauthorized("no such couple, or not a member", temp_id=temp_id)
    failed = ChangeFailed if isinstance(refused.new, NewChange) else SendFailed
    return REFUSAL_ERRORS.get(refused.reason, failed)(refused.detail, temp_id=temp_id)


@dataclass(slots=True, kw_only=True)
class Pending:
    """A send or a change queued for its couple's writer; its future resolves at commit."""

    future: asyncio.Future[Any] = field(repr=False)
    acknowledge: Acknowledge | None = field(default=None, repr=False)
    queued_at: float = field(default_factory=time.perf_counter)

    def succeed(self, result: object) -> None:
        if not self.future.done():
            self.future.set_result(result)
            self._acknowledge()

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)
            self._acknowledge()

    def _acknowledge(self) -> None:
        """The sender's RECEIPT (or error), written now: before the writer publishes the
        batch, not whenever the loop gets round to the future's callbacks."""
        if self.acknowledge is not None:
            try:
                self.acknowledge(self.future)
            except Exception:
                log.exception("acknowledging a message failed")


@dataclass(slots=True, kw_only=True)
class PendingMessage(Pending):
    new: NewMessage
    sender: User
    quoted: Message | None = None  # the message it answers (replyTo)


@dataclass(slots=True, kw_only=True)
class PendingChange(Pending):
    new: NewChange


# What a committed batch publishes: a new message (with its sender and the message it
# answers), a stored change's event, or a hide (for its member's sessions only).
Outgoing = tuple[Message, User, Message | None] | Event | Hide
