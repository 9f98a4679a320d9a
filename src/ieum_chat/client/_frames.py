"""What a connection receives, taken as it comes: MESSAGE frames of the couple's stream (each
entry once, in seq order, through the sequencer; a gap resumes from the last seq), this
session's error payloads (answering the outbox entry or read mark they are about), RECEIPTs
(completing the outbox and the send window) and ERROR. All synchronous: the reader never waits
for the application (a full event queue pauses the stream instead).

:class:`FrameHandler` is part of :class:`ChatClient`, whose state it reads and changes (the
attributes below are the client's, set in its ``__init__``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import tzinfo

from ieum_chat.stomp import Frame

from ._errors import SendError
from ._events import ErrorEvent, Event, MalformedEvent, event_seq, parse_event, payload_seq
from ._flow import SendWindow, is_transient
from ._link import ServerError, error_from_frame
from ._outbox import Outbox
from ._queue import EventQueue
from ._sequencer import Sequencer, Verdict
from ._stats import ClientStats
from ._view import RoomView

__all__ = ["FrameHandler"]

log = logging.getLogger(__name__)


class FrameHandler:
    """The receiving side of :class:`ChatClient`."""

    stats: ClientStats
    _tz: tzinfo | None
    _seq: Sequencer
    _view: RoomView | None
    _events: EventQueue[Event]
    _outbox: Outbox
    _flow: SendWindow
    _flow_blocked: bool
    _wake: asyncio.Event
    _max_send_retries: int
    _receipts: dict[str, str | asyncio.Future[None]]
    _pending_reads: deque[str]
    _errors_sub: str | None
    _events_sub: str | None
    _topic_sub: str | None
    _topic_live: bool
    _pending_topic: asyncio.Future[None] | None
    _resync: bool
    _overflowed: bool

    def _on_frame(self, frame: Frame) -> None:
        command = frame.command
        if command == "MESSAGE":
            sub = frame.get("subscription")
            if sub is None:
                return
            if sub == self._errors_sub:
                self._on_error_payload(frame.body)
            elif (sub == self._topic_sub and self._topic_live) or sub == self._events_sub:
                self._on_payload(frame.body)
            # else: a subscription replaced by a resync; its messages come again by seq.
        elif command == "RECEIPT":
            receipt_id = frame.get("receipt-id") or ""
            if receipt_id == self._topic_sub:
                self._start_after(frame.get("x-last-seq"))
            target = self._receipts.pop(receipt_id, None)
            if isinstance(target, str):
                self._flow.on_receipt()
                if self._flow_blocked:
                    self._flow_blocked = False
                    self._wake.set()
                if self._outbox.complete(target) is not None:
                    self.stats.receipts += 1
            elif target is not None and not target.done():
                target.set_result(None)
        elif command == "ERROR":
            raise ServerError(error_from_frame(frame))

    def _start_after(self, value: str | None) -> None:
        """The topic's RECEIPT says which seq the subscription starts after (servers that do
        not say leave a live-only start as it was)."""
        if value is not None and value.isdigit() and len(value) <= 19:
            self._seq.start_after(int(value))

    def _on_payload(self, body: bytes) -> None:
        """A payload of the couple topic or of this user's event queue: with a seq, the next
        entry of the stream or not; without, delivered as it comes."""
        try:
            event = parse_event(body, self._tz)
        except MalformedEvent as exc:
            log.warning("unreadable event from the server: %s", exc)
            if exc.seq is not None and self._in_order(exc.seq):
                self._seq.advance(exc.seq)  # skip it rather than resync on it forever
            return
        if event is None:
            # A newer server's kind of event: it still holds its place in the stream.
            seq = payload_seq(body)
            if seq is not None and self._in_order(seq):
                self._seq.advance(seq)
            return
        seq = event_seq(event)
        if seq is None:
            if self._view is not None:
                self._view.apply(event)  # even when the application's queue is full
            self._emit(event)
        elif not self._in_order(seq):
            return
        elif self._events.put_nowait(event):
            self._seq.advance(seq)
            if self._view is not None:
                self._view.apply(event)
        else:
            # The application is not reading: refuse the stream (the server keeps it) until
            # it has read half the queue, then resubscribe from the last seq.
            self.stats.overflows += 1
            self._overflowed = True
            self._topic_live = False

    def _in_order(self, seq: int) -> bool:
        """Whether ``seq`` is the stream's next entry; a duplicate is dropped, a gap makes the
        client resume from the last seq."""
        verdict = self._seq.check(seq)
        if verdict is Verdict.DUPLICATE:
            self.stats.duplicates_dropped += 1
        elif verdict is Verdict.GAP:
            self.stats.gaps += 1
            log.info("seq %d after %s: resuming from the last seq", seq, self._seq.last_seq)
            self._request_resync()
        return verdict is Verdict.NEXT

    def _on_error_payload(self, body: bytes) -> None:
        try:
            event = parse_event(body, self._tz)
        except MalformedEvent as exc:
            log.warning("unreadable error payload from the server: %s", exc)
            return
        if not isinstance(event, ErrorEvent):
            return
        if event.temp_id is None:
            pending = self._pending_topic
            if event.code == "UNAUTHORIZED" and pending is not None and not pending.done():
                # The topic SUBSCRIBE was refused (not a member): no RECEIPT will come. The
                # session ends with it (and the supervisor reports it, backs off, retries).
                pending.set_exception(ServerError(event))
                return
            self._emit(event)
            if self._pending_reads:
                target = self._receipts.pop(self._pending_reads.popleft(), None)
                if isinstance(target, asyncio.Future) and not target.done():
                    target.set_exception(SendError(event.code, event.message, detail=event.detail))
            return
        self._emit(event)
        entry = self._outbox.get(event.temp_id)
        if entry is None:
            return
        in_flight = (
            entry.receipt_id is not None and self._receipts.pop(entry.receipt_id, None) is not None
        )
        transient = is_transient(event.code, event.detail)
        if transient and entry.retries < self._max_send_retries:
            # Back off the whole outbox, not just this message (see _flow).
            now = asyncio.get_running_loop().time()
            self._outbox.defer(event.temp_id, self._flow.on_refused(now, in_flight=in_flight))
            self.stats.retries += 1
            self._wake.set()
            return
        if in_flight:
            self._flow.on_failed()
        self.stats.send_failures += 1
        error = SendError(
            event.code,
            event.message,
            detail=event.detail,
            temp_id=event.temp_id,
            transient=transient,
        )
        self._outbox.fail(event.temp_id, error)

    def _emit(self, event: Event) -> None:
        if not self._events.put_nowait(event):
            self.stats.events_dropped += 1

    def _request_resync(self) -> None:
        self._topic_live = False
        self._resync = True
        self._wake.set()
