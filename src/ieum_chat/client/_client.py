"""`ChatClient`: one member's view of one couple's chat, kept alive across reconnects.

Tasks, all owned: `start()` creates the supervisor (`_run`), which owns one session at a
time; a session owns its reader, heart-beat and control tasks and cancels them when any one
ends. `close()` cancels the supervisor and waits for it. Nothing waits without a bound: every
network wait has a timeout or ends with the connection, every queue has a limit.

What survives a reconnect: the last seq delivered (resubscribe with `x-resume-after-seq`),
the outbox (re-sent with the same tempIds), the events not yet read by the application.

The couple's stream holds messages and the changes made to them under one numbering; every
payload with a seq goes through the one sequencer (once, in order, a gap resyncs). Messages
and the changes the member makes (edit, unsend, delete for me, reactions) share the outbox,
so a change survives a reconnect as a message does and is written after what it names.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import tzinfo
from typing import Final

import orjson
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from ieum_chat.stomp import Frame

from ._actions import MessageActions
from ._backoff import Backoff
from ._errors import ClientClosed, ConnectionLost
from ._events import (
    Connected,
    Disconnected,
    Event,
    SendReceipt,
)
from ._flow import SendWindow
from ._frames import FrameHandler
from ._link import HeartbeatTimeout, LinkOptions, ServerError, StompLink
from ._outbox import Outbox
from ._queue import EventQueue
from ._requests import AppRequest
from ._sequencer import Sequencer
from ._stats import ClientStats
from ._view import RoomView

__all__ = ["ChatClient", "EventStream", "TokenProvider"]

log = logging.getLogger(__name__)

# STOMP ERROR codes after which no reconnect would be admitted: the client ends itself.
ENDED = frozenset({"COUPLE_DISSOLVED", "ACCOUNT_DELETED"})

TokenProvider = Callable[[], str | Awaitable[str]]
"""Returns a fresh JWT; called before every (re)connect."""

ERRORS_QUEUE: Final = "/user/queue/errors"
# This user's own events (a message deleted for them on one device reaches the others here).
EVENTS_QUEUE: Final = "/user/queue/events"


class EventStream:
    """`async for event in client.events()`; cancelling one `__anext__` loses nothing."""

    def __init__(self, client: ChatClient) -> None:
        self._client = client

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        event = await self._client._next_event()
        if event is None:
            raise StopAsyncIteration
        return event


class ChatClient(MessageActions, FrameHandler):
    """An asyncio client of one couple's chat.

    ``async with ChatClient(url, token_provider, couple_id=...) as client:`` connects in the
    background (``await client.wait_ready()`` to wait for it), reconnects with capped
    exponential backoff and full jitter until closed, and delivers every entry of the couple's
    stream (messages and their changes) once, in seq order. ``resume_after_seq`` is where to
    start: ``0`` replays the whole history, ``None`` (the default) starts with live messages.
    ``view``: a RoomView the client keeps up to date with everything it receives (``client.view``).
    """

    def __init__(
        self,
        url: str,
        token_provider: TokenProvider,
        *,
        couple_id: uuid.UUID | str,
        resume_after_seq: int | None = None,
        heartbeat: tuple[float, float] = (10.0, 10.0),
        heartbeat_grace: float = 2.0,
        backoff: Backoff | None = None,
        retry_backoff: Backoff | None = None,
        max_send_retries: int = 10,
        max_inflight_sends: int = 64,
        max_outbox: int = 1000,
        max_events: int = 1000,
        connect_timeout: float = 10.0,
        max_frame_size: int = 1 << 20,
        timezone: tzinfo | None = None,
        view: RoomView | None = None,
    ) -> None:
        self._url = url
        self._token_provider = token_provider
        self.couple_id = uuid.UUID(str(couple_id))
        self._topic = f"/topic/couple/{self.couple_id}"
        self._send_destination = f"/app/chat/{self.couple_id}"
        self._options = LinkOptions(heartbeat, heartbeat_grace, connect_timeout, max_frame_size)
        self._backoff = backoff or Backoff(0.1, 10.0)
        self._retry_backoff = retry_backoff or Backoff(0.5, 10.0)
        self._max_send_retries = max_send_retries
        self._connect_timeout = connect_timeout
        self._tz = timezone
        self.stats = ClientStats()

        self._seq = Sequencer(resume_after_seq)
        self._view = view
        self._outbox = Outbox(max_outbox)
        self._flow = SendWindow(self._retry_backoff, max_inflight_sends)
        self._flow_blocked = False
        self._events: EventQueue[Event] = EventQueue(max_events)
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._closed = False
        self._close_done = asyncio.Event()

        # Per connection (reset by each session).
        self._link: StompLink | None = None
        self._generation = 0
        self._ids = 0
        self._receipts: dict[str, str | asyncio.Future[None]] = {}
        # Read marks awaiting their RECEIPT, oldest first: an error payload without a tempId
        # answers the oldest (the server handles a session's frames in order).
        self._pending_reads: deque[str] = deque()
        self._errors_sub: str | None = None
        self._events_sub: str | None = None
        self._topic_sub: str | None = None
        self._topic_live = False
        self._pending_topic: asyncio.Future[None] | None = None
        self._resync = False
        self._overflowed = False
        self._was_ready = False
        self._user_id: uuid.UUID | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> ChatClient:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start connecting in the background (idempotent)."""
        if self._closed:
            raise ClientClosed("the client is closed")
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name=f"chat-client-{self.couple_id}")

    async def wait_ready(self) -> None:
        """Wait until connected and subscribed (raises ClientClosed); bound it with
        `asyncio.timeout()`: while the server is unreachable this waits for it."""
        self.start()
        await self._ready_link()

    async def close(self) -> None:
        """DISCONNECT politely (at most 1 s), stop every task, fail the sends still pending
        with ClientClosed. Events already received stay readable, then `events()` ends."""
        if self._closed:
            await self._close_done.wait()  # another close() is under way
            return
        self._closed = True
        try:
            link = self._link
            if link is not None and self._ready.is_set():
                try:
                    async with asyncio.timeout(1.0):
                        done = self._expect_receipt("bye")
                        await link.write(Frame("DISCONNECT", (("receipt", "bye"),)))
                        await done
                except (TimeoutError, ConnectionClosed, ConnectionLost, OSError):
                    pass
        finally:
            # Even when this call is cancelled: no task may outlive the client.
            runner, self._runner = self._runner, None
            if runner is not None:
                runner.cancel()
                await asyncio.wait({runner})
            self._outbox.fail_all(ClientClosed("the client was closed before the RECEIPT"))
            self._fail_receipts(ClientClosed("the client was closed"))
            self._events.close()
            self._ready.set()  # wakes wait_ready() callers, who then see _closed
            self._close_done.set()

    async def reconnect(self) -> None:
        """Drop the current connection as a network failure would; the client reconnects."""
        if self._link is not None:
            self._link.abort()

    # -- state -------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int | None:
        """The seq of the last stream entry (message or change) handed to `events()`, read
        or not."""
        return self._seq.last_seq

    @property
    def view(self) -> RoomView | None:
        """The RoomView given to the constructor, with every entry up to `last_seq` applied
        (ahead of what the application has read from `events()`)."""
        return self._view

    @property
    def connected(self) -> bool:
        return self._ready.is_set() and not self._closed

    @property
    def user_id(self) -> uuid.UUID | None:
        """This member's id, as the server named it in CONNECTED."""
        return self._user_id

    @property
    def pending_sends(self) -> int:
        return len(self._outbox)

    # -- receiving ---------------------------------------------------------------------------

    def events(self) -> EventStream:
        return EventStream(self)

    async def next_event(self) -> Event:
        """The next event; raises ClientClosed once closed and drained. Cancelling it (e.g.
        `asyncio.timeout()`) loses nothing."""
        event = await self._next_event()
        if event is None:
            raise ClientClosed("the client is closed")
        return event

    async def _next_event(self) -> Event | None:
        event = await self._events.get()
        if self._overflowed and len(self._events) <= self._events.maxsize // 2:
            # The application caught up: fetch what was refused meanwhile, by seq.
            self._overflowed = False
            self._request_resync()
        return event

    async def _submit(self, temp_id: str, request: AppRequest) -> SendReceipt:
        """Queue ``request`` in the outbox under ``temp_id`` (or join the pending one) and
        wait for its RECEIPT."""
        if self._closed:
            raise ClientClosed("the client is closed")
        entry = self._outbox.get(temp_id)
        if entry is None:
            await self._outbox.wait_for_space()
            if self._closed:
                raise ClientClosed("the client is closed")
            entry = self._outbox.add(temp_id, request.body, request.suffix)
            self._wake.set()
        if entry.suffix != request.suffix:
            raise ValueError(f"temp_id {temp_id!r} is pending for another kind of request")
        return await asyncio.shield(entry.future)

    async def mark_read(
        self,
        *,
        up_to_seq: int | None = None,
        message_ids: Sequence[uuid.UUID | str] | None = None,
    ) -> None:
        """Mark the partner's messages read; returns once the server committed it. Retried on
        the next connection if this one drops (it is idempotent), so it waits while the
        server is unreachable: bound it with `asyncio.timeout()`. Raises SendError when the
        server refuses it."""
        if (up_to_seq is None) == (message_ids is None):
            raise ValueError("give exactly one of up_to_seq and message_ids")
        payload: dict[str, object] = (
            {"upToSeq": up_to_seq}
            if up_to_seq is not None
            else {"messageIds": [str(m) for m in message_ids or ()]}
        )
        body = orjson.dumps(payload)
        while True:
            link = await self._ready_link()
            receipt_id = self._new_id("r")
            done = self._expect_receipt(receipt_id)
            self._pending_reads.append(receipt_id)
            try:
                await link.write(self._app_send("/read", body, receipt_id))
                await done
                return
            except (ConnectionClosed, ConnectionLost):
                continue
            finally:
                with contextlib.suppress(ValueError):
                    self._pending_reads.remove(receipt_id)

    async def typing(self, typing: bool = True) -> bool:
        """Tell the partner this member is (not) typing; False when not connected (typing
        state is ephemeral: it is not queued)."""
        link = self._link
        if link is None or not self._ready.is_set():
            return False
        body = orjson.dumps({"typing": bool(typing)})
        try:
            await link.write(self._app_send("/typing", body, None))
        except ConnectionClosed:
            return False
        return True

    # -- supervisor --------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while True:
            self._was_ready = False
            wait_at_least = 0.0
            try:
                await self._session()
                reason = "session ended"
            except ServerError as exc:
                reason = f"server error {exc.event.code}"
                self._emit(exc.event)
                if exc.event.code in ENDED:
                    self._end(exc.event.code)
                    return
            except ConnectionClosed as exc:
                reason = f"connection closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
            except HeartbeatTimeout as exc:
                reason = str(exc)
            except InvalidStatus as exc:
                # A refused handshake: 503 from a node admitting no more new sessions this
                # second (or draining) says how long to stay away.
                reason = f"handshake refused: HTTP {exc.response.status_code}"
                wait_at_least = _retry_after(exc.response.headers.get("Retry-After"))
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a failing token provider, or a bug: keep trying
                log.warning("chat client session failed", exc_info=True)
                reason = f"{type(exc).__name__}: {exc}"
            if self._closed:
                return
            if self._was_ready:
                attempt = 0
            # Retry-After is a floor; the jittered backoff on top spreads the clients a node
            # refused together over the following seconds instead of one instant.
            delay = wait_at_least + self._backoff.delay(attempt)
            attempt += 1
            self.stats.disconnects += 1
            log.info("chat client disconnected (%s); reconnecting in %.2f s", reason, delay)
            self._emit(Disconnected(reason, delay))
            await asyncio.sleep(delay)

    def _end(self, code: str) -> None:
        """The couple or the account is gone for good: no reconnect would be admitted. Close
        as :meth:`close` does, from the supervisor itself (the events already received stay
        readable, then ``events()`` ends)."""
        log.info("chat client ended by the server (%s)", code)
        self._closed = True
        self._runner = None
        self._outbox.fail_all(ClientClosed(f"ended by the server ({code}) before the RECEIPT"))
        self._fail_receipts(ClientClosed(f"ended by the server ({code})"))
        self._events.close()
        self._ready.set()
        self._close_done.set()

    async def _fresh_token(self) -> str:
        async with asyncio.timeout(self._connect_timeout):
            token = self._token_provider()
            if inspect.isawaitable(token):
                token = await token
        if not isinstance(token, str) or not token:
            raise TypeError("token_provider must return a non-empty str")
        return token

    async def _session(self) -> None:
        link = await StompLink.open(self._url, await self._fresh_token(), self._options)
        self._generation += 1
        generation = self._generation
        self._link = link
        self._receipts = {}
        self._flow.reset()
        if link.user_name:
            try:
                self._user_id = uuid.UUID(link.user_name)
            except ValueError:
                self._user_id = None
        self.stats.connects += 1
        tasks = {
            asyncio.create_task(self._read_loop(link), name="chat-client-read"),
            asyncio.create_task(self._control_loop(link, generation), name="chat-client-control"),
        }
        if link.send_interval:
            tasks.add(asyncio.create_task(link.heartbeat_loop(), name="chat-client-heartbeat"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and (exc := task.exception()) is not None:
                    raise exc
        finally:
            self._ready.clear()
            self._link = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._fail_receipts(ConnectionLost("the connection dropped"))
            link.abort()

    # -- one connection ----------------------------------------------------------------------

    async def _read_loop(self, link: StompLink) -> None:
        while True:
            self._on_frame(await link.next_frame())

    async def _control_loop(self, link: StompLink, generation: int) -> None:
        """Subscribe, then write the outbox and resubscribe when asked, until cancelled."""
        self._resync = False
        self._topic_sub = None
        self._topic_live = False
        self._errors_sub = self._new_id("errors")
        self._events_sub = self._new_id("events")
        # The user's queues first: what a resume tells of (this user's deletes since the last
        # seq) goes to the event queue once it is there.
        queues_done = [
            await self._subscribe(link, self._errors_sub, ERRORS_QUEUE),
            await self._subscribe(link, self._events_sub, EVENTS_QUEUE),
        ]
        resumed = self._seq.last_seq
        topic_done = None if self._overflowed else await self._subscribe_topic(link)
        async with asyncio.timeout(self._connect_timeout):
            for done in queues_done:
                await done
            if topic_done is not None:
                await topic_done
        self._pending_topic = None
        self._ready.set()
        self._was_ready = True
        self._emit(Connected(link.session, link.version, resumed))
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            if self._resync:
                self._resync = False
                self.stats.resyncs += 1
                if self._topic_sub is not None:
                    await link.write(Frame("UNSUBSCRIBE", (("id", self._topic_sub),)))
                topic_done = await self._subscribe_topic(link)
                async with asyncio.timeout(self._connect_timeout):
                    await topic_done
                self._pending_topic = None
            await self._flush(link, generation, loop.time())
            now = loop.time()
            waits = [
                d
                for d in (self._outbox.next_due(generation, now), self._flow.paused_for(now))
                if d is not None
            ]
            delay = min(waits) if waits else None
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _subscribe(self, link: StompLink, sub_id: str, queue: str) -> asyncio.Future[None]:
        done = self._expect_receipt(sub_id)
        headers = (("id", sub_id), ("destination", queue), ("receipt", sub_id))
        await link.write(Frame("SUBSCRIBE", headers))
        return done

    async def _subscribe_topic(self, link: StompLink) -> asyncio.Future[None]:
        sub_id = self._new_id("topic")
        headers = [("id", sub_id), ("destination", self._topic), ("receipt", sub_id)]
        if self._seq.last_seq is not None:
            headers.append(("x-resume-after-seq", str(self._seq.last_seq)))
        done = self._pending_topic = self._expect_receipt(sub_id)
        self._topic_sub = sub_id
        self._topic_live = True
        await link.write(Frame("SUBSCRIBE", tuple(headers)))
        return done

    async def _flush(self, link: StompLink, generation: int, now: float) -> None:
        """Write every outbox entry not yet written on this connection, oldest first."""
        for entry in self._outbox.due(generation, now):
            if self._outbox.get(entry.temp_id) is not entry or entry.written_on == generation:
                continue  # answered or deferred while an earlier one was being written
            if entry.not_before > now:
                continue
            if not self._flow.can_write(now):
                self._flow_blocked = True  # a RECEIPT (or the pause's end) wakes us
                return
            self._flow.on_write()
            if entry.receipt_id is not None:
                self._receipts.pop(entry.receipt_id, None)
            receipt_id = self._new_id("s")
            self._receipts[receipt_id] = entry.temp_id
            self._outbox.mark_written(entry, generation, receipt_id)
            if entry.attempts > 1:
                self.stats.resent += 1
            await link.write(self._app_send(entry.suffix, entry.body, receipt_id))

    def _app_send(self, suffix: str, body: bytes, receipt_id: str | None) -> Frame:
        headers = [
            ("destination", self._send_destination + suffix),
            ("content-type", "application/json"),
        ]
        if receipt_id is not None:
            headers.append(("receipt", receipt_id))
        return Frame("SEND", tuple(headers), body)

    # -- helpers -----------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-{self._generation}-{self._ids}"

    def _expect_receipt(self, receipt_id: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._receipts[receipt_id] = future
        return future

    def _fail_receipts(self, exc: BaseException) -> None:
        receipts, self._receipts = self._receipts, {}
        for target in receipts.values():
            if not isinstance(target, str) and not target.done():
                target.set_exception(exc)
                target.exception()  # retrieved: nobody may be waiting for it any more

    async def _ready_link(self) -> StompLink:
        while True:
            if self._closed:
                raise ClientClosed("the client is closed")
            link = self._link
            if link is not None and self._ready.is_set():
                return link
            await self._ready.wait()
            if not self._closed and self._link is None:
                await asyncio.sleep(0)  # a stale wake-up: the session is tearing down


_RETRY_AFTER_MAX: Final = 300.0


def _retry_after(value: str | None) -> float:
    """Seconds of a ``Retry-After`` header (the delay form; a date or garbage counts as
    none), capped so that a wrong header cannot park the client for long."""
    try:
        seconds = float(value) if value is not None else 0.0
    except ValueError:
        return 0.0
    if math.isnan(seconds):
        return 0.0
    return min(max(seconds, 0.0), _RETRY_AFTER_MAX)
