"""The socket loop around one :class:`StompSession`, for any transport that carries frames.

The raw WebSocket endpoint and the SockJS sessions both drive this class: they feed it the
bytes they receive and give it a :class:`Transport` to write frames to. Everything the
connection holds is bounded: the outbound queue (a consumer that falls that far behind is
closed), the SENDs awaiting commit, the subscriptions (the STOMP session counts those).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ieum_chat.auth import Principal, bearer_token
from ieum_chat.chat import codec
from ieum_chat.chat.envelope import channel_for
from ieum_chat.chat.requests import (
    SendRequest,
    parse_read_request,
    parse_send_request,
    parse_typing_request,
)
from ieum_chat.chat.service import ChatService
from ieum_chat.config import Settings
from ieum_chat.errors import (
    AuthError,
    ChatError,
    ErrorCode,
    SendFailed,
    Unauthorized,
    error_payload,
)
from ieum_chat.gateway.hub import Hub
from ieum_chat.gateway.routing import (
    ERRORS_QUEUE,
    Route,
    parse_app_destination,
    parse_subscription,
)
from ieum_chat.stomp import (
    Ack,
    ConnectRequested,
    Disconnect,
    Nack,
    RemoteProtocolError,
    Send,
    SessionState,
    StompSession,
    Subscribe,
    TimerAction,
    Unsubscribe,
)
from ieum_chat.store.records import Message, User

__all__ = ["Gateway", "StompConnection", "Transport"]

log = logging.getLogger(__name__)

_session_ids = itertools.count(1)
MAX_INFLIGHT_SENDS = 64


class Transport(Protocol):
    """Where a connection writes. ``send`` carries one whole STOMP frame (or a heart-beat EOL)."""

    async def send(self, frame: bytes) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


@dataclass(slots=True)
class Gateway:
    """What every connection of this process shares."""

    settings: Settings
    chat: ChatService
    hub: Hub


class _Subscription:
    """One SUBSCRIBE to a couple topic: a hub listener writing MESSAGE frames for its id."""

    __slots__ = ("conn", "destination", "held", "id", "min_seq", "replaying")

    def __init__(self, conn: StompConnection, sub_id: str, destination: str) -> None:
        self.conn = conn
        self.id = sub_id
        self.destination = destination
        # Chat messages with seq <= min_seq were already delivered by a replay.
        self.min_seq = 0
        self.replaying = False
        self.held: list[tuple[int, bytes]] = []

    def deliver(self, seq: int, body: bytes) -> None:
        if self.replaying:
            self.held.append((seq, body))
            return
        if seq and seq <= self.min_seq:
            return
        if seq:
            self.min_seq = seq
        self.conn.push_message(self.destination, self.id, body)


_CLOSE = object()


class StompConnection:
    def __init__(
        self,
        gateway: Gateway,
        transport: Transport,
        *,
        transport_name: str,
        principal: Principal | None = None,
        user: User | None = None,
        preferred_version: str | None = None,
        remote: str | None = None,
    ) -> None:
        settings = gateway.settings
        self.gateway = gateway
        self.chat = gateway.chat
        self.transport = transport
        self.transport_name = transport_name
        self.remote = remote
        self.session_id = f"{next(_session_ids):x}-{uuid.uuid4().hex[:8]}"
        self.session = StompSession(
            now=time.monotonic(),
            server_heartbeat=settings.heartbeat_ms,
            connect_timeout=settings.connect_timeout,
            max_frame_size=settings.max_frame_size,
            preferred_version=preferred_version,
        )
        self._handshake_principal = principal
        self._handshake_user = user
        self.user: User | None = None
        self._subscriptions: dict[str, _Subscription] = {}
        self._errors_sub: str | None = None
        self._out: deque[bytes | object] = deque()
        self._out_limit = settings.outbound_queue_frames
        self._out_ready = asyncio.Event()
        self._closing = False
        self._message_ids = itertools.count(1)
        self._inflight: deque[asyncio.Future[Message]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._announced = False

    # -- driving --------------------------------------------------------------------------

    async def run(self, receive: Callable[[], Awaitable[bytes | None]]) -> None:
        """Serve until the peer goes away or the connection is closed; then clean up."""
        self._schedule_timer()
        reader = asyncio.create_task(self._read_loop(receive), name=f"stomp-read-{self.session_id}")
        writer = asyncio.create_task(self._write_loop(), name=f"stomp-write-{self.session_id}")
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done and self._closing and not writer.done():
                # Let the writer flush the last frames (an ERROR, a RECEIPT) and close.
                await asyncio.wait({writer}, timeout=5.0)
        finally:
            for task in (reader, writer):
                task.cancel()
            for result in await asyncio.gather(reader, writer, return_exceptions=True):
                if isinstance(result, Exception):
                    log.error("session %s failed", self.session_id, exc_info=result)
            await self._teardown()

    async def _read_loop(self, receive: Callable[[], Awaitable[bytes | None]]) -> None:
        while not self._closing:
            data = await receive()
            if data is None:
                return
            await self.feed(data)

    async def feed(self, data: bytes) -> None:
        try:
            self.session.receive_data(data, time.monotonic())
            while not self._closing:
                event = self.session.next_event()
                if event is None:
                    break
                await self._handle(event)
        except RemoteProtocolError as exc:
            log.info("session %s: protocol error: %s", self.session_id, exc.message)
            self._fail(exc.message)

    # -- events ---------------------------------------------------------------------------

    async def _handle(self, event: object) -> None:
        if isinstance(event, Send):
            await self._on_send(event)
        elif isinstance(event, Subscribe):
            await self._on_subscribe(event)
        elif isinstance(event, Unsubscribe):
            await self._on_unsubscribe(event)
        elif isinstance(event, ConnectRequested):
            await self._on_connect(event)
        elif isinstance(event, Ack | Nack):
            if event.receipt:
                self._push(self.session.receipt(event.receipt))
        elif isinstance(event, Disconnect):
            await self._on_disconnect(event)

    async def _on_connect(self, event: ConnectRequested) -> None:
        token = _connect_token(event.headers)
        try:
            if token is not None:
                principal, user = await self.chat.authenticate(token)
            elif self._handshake_principal is not None and self._handshake_user is not None:
                principal, user = self._handshake_principal, self._handshake_user
                if principal.expires_at <= time.time():
                    raise AuthError("token expired")
            else:
                raise AuthError("missing token")
        except AuthError as exc:
            log.info("session %s: authentication failed: %s", self.session_id, exc.detail)
            self._fail(ErrorCode.AUTH_FAILED.value, exc.payload())
            return
        self.user = user
        self._push(
            self.session.accept(
                time.monotonic(),
                (("session", self.session_id), ("user-name", str(user.id))),
            )
        )
        self.session.set_expiry(time.monotonic() + (principal.expires_at - time.time()))
        self._schedule_timer()
        self._announced = True
        log.info(
            "session %s: user %s connected over %s (STOMP %s)",
            self.session_id,
            user.id,
            self.transport_name,
            self.session.version,
        )
        await self.chat.session_opened(user)

    async def _on_subscribe(self, event: Subscribe) -> None:
        target = parse_subscription(event.destination)
        if target is None:
            self._fail(f"no such destination: {event.destination[:100]}")
            return
        if target.route is Route.ERRORS:
            self._errors_sub = event.id
        else:
            assert self.user is not None
            try:
                if target.couple_id is None:
                    raise Unauthorized("no such couple")
                await self.chat.member_couple(self.user.id, target.couple_id)
            except ChatError as exc:
                # Refused: the id is free again, so the client may retry with it.
                self.session.discard_subscription(event.id)
                self._send_error(exc)
                return
            sub = _Subscription(self, event.id, event.destination)
            self._subscriptions[event.id] = sub
            resume = _header(event.headers, "x-resume-after-seq")
            await self._start_subscription(sub, target.couple_id, resume, event.receipt)
            return
        if event.receipt:
            self._push(self.session.receipt(event.receipt))

    async def _start_subscription(
        self,
        sub: _Subscription,
        couple_id: uuid.UUID,
        resume: str | None,
        receipt: str | None,
    ) -> None:
        """Listen (the RECEIPT goes out once listening), then replay when asked to resume."""
        channel = channel_for(couple_id)
        after: int | None = None
        if resume is not None:
            try:
                after = int(resume)
                if after < 0:
                    raise ValueError
            except ValueError:
                self._send_error(SendFailed("'x-resume-after-seq' must be a non-negative integer"))
        # Listen first and hold live messages, then replay from the database, then release
        # the held ones above the replayed seq: no gap and no duplicate at the seam.
        sub.replaying = after is not None
        sub.min_seq = after or 0
        await self.gateway.hub.add(channel, sub)
        if receipt:
            self._push(self.session.receipt(receipt))
        if after is None:
            return
        try:
            while True:
                batch = await self.chat.db.get_messages(
                    couple_id,
                    after_seq=sub.min_seq,
                    limit=500,
                    ascending=True,
                )
                senders = await self.chat.db.get_users({m.sender_id for m in batch})
                for message in batch:
                    body = codec.message_json(
                        message, senders.get(message.sender_id), self.chat.zone
                    )
                    self.push_message(sub.destination, sub.id, body)
                    sub.min_seq = message.seq
                if len(batch) < 500 or self._closing:
                    break
        finally:
            sub.replaying = False
            held, sub.held = sub.held, []
            for seq, body in held:
                sub.deliver(seq, body)

    async def _on_unsubscribe(self, event: Unsubscribe) -> None:
        if event.id == self._errors_sub:
            self._errors_sub = None
        sub = self._subscriptions.pop(event.id, None)
        if sub is not None:
            target = parse_subscription(sub.destination)
            if target is not None and target.couple_id is not None:
                await self.gateway.hub.remove(channel_for(target.couple_id), sub)
        if event.receipt:
            self._push(self.session.receipt(event.receipt))

    async def _on_send(self, event: Send) -> None:
        assert self.user is not None
        user = self.user
        target = parse_app_destination(event.destination)
        try:
            if target is None:
                raise Unauthorized(
                    f"SEND is accepted only on /app/chat/{{coupleId}}[/read|/typing], "
                    f"not {event.destination[:100]}"
                )
            if target.couple_id is None:
                raise Unauthorized("no such couple")
            if target.route is Route.SEND:
                request = parse_send_request(
                    event.body, max_text_length=self.gateway.settings.max_text_length
                )
                try:
                    await self.chat.member_couple(user.id, target.couple_id)
                except Unauthorized as exc:
                    exc.temp_id = request.temp_id
                    raise
                await self._submit(user, target.couple_id, request, event.receipt)
                return
            receipt = event.receipt

            def acknowledge() -> None:
                if receipt:
                    self._push(self.session.receipt(receipt))

            if target.route is Route.READ:
                await self.chat.mark_read(
                    user, target.couple_id, parse_read_request(event.body), acknowledge=acknowledge
                )
            else:
                await self.chat.typing(
                    user,
                    target.couple_id,
                    parse_typing_request(event.body),
                    acknowledge=acknowledge,
                )
        except ChatError as exc:
            self._send_error(exc)

    async def _submit(
        self,
        user: User,
        couple_id: uuid.UUID,
        request: SendRequest,
        receipt: str | None,
    ) -> None:
        """Queue the message for commit without waiting: the RECEIPT (or the error) is written
        when the commit resolves, so a client may pipeline SENDs. At most
        MAX_INFLIGHT_SENDS wait at once; past that, reading from this socket pauses."""
        while len(self._inflight) >= MAX_INFLIGHT_SENDS:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._inflight[0])
        future = await self.chat.enqueue(user, couple_id, request)
        self._inflight.append(future)

        def done(fut: asyncio.Future[Message]) -> None:
            with contextlib.suppress(ValueError):
                self._inflight.remove(fut)
            if fut.cancelled() or self._closing:
                return
            exc = fut.exception()
            if exc is None:
                if receipt:
                    self._push(self.session.receipt(receipt))
            elif isinstance(exc, ChatError):
                self._send_error(exc)
            else:
                self._send_error(
                    SendFailed("the message could not be stored", temp_id=request.temp_id)
                )

        future.add_done_callback(done)

    async def _on_disconnect(self, event: Disconnect) -> None:
        # A DISCONNECT receipt promises that everything before it was processed.
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
            await asyncio.sleep(0)  # let the done-callbacks queue their receipts
        if event.receipt:
            self._push(self.session.receipt(event.receipt))
        self.session.close_after_disconnect()
        self._close(1000, "disconnect")

    # -- output ---------------------------------------------------------------------------

    def push_message(self, destination: str, sub_id: str, body: bytes) -> None:
        if self._closing:
            return
        frame = self.session.message(
            destination=destination,
            subscription=sub_id,
            message_id=f"{self.session_id}-{next(self._message_ids)}",
            body=body,
        )
        self._push(frame)

    def _push(self, frame: bytes) -> None:
        if self._closing:
            return
        if len(self._out) >= self._out_limit:
            log.warning(
                "session %s: outbound queue full (%d frames): closing slow consumer",
                self.session_id,
                len(self._out),
            )
            self._out.clear()
            self._fail("slow consumer: too many undelivered frames; reconnect and resume")
            return
        self._out.append(frame)
        self._out_ready.set()

    def _send_error(self, exc: ChatError) -> None:
        """An error payload on this session's ``/user/queue/errors`` subscription."""
        log.info("session %s: %s %s", self.session_id, exc.code.value, exc.detail)
        if self._errors_sub is None or self.session.state is not SessionState.CONNECTED:
            return
        self.push_message(ERRORS_QUEUE, self._errors_sub, codec.dumps(exc.payload()))

    def _fail(self, message: str, payload: dict[str, object] | None = None) -> None:
        """STOMP ERROR, then close (STOMP 1.2: the server closes after sending ERROR)."""
        if self._closing or self.session.state is SessionState.CLOSED:
            self._close(1000, message)
            return
        body = codec.dumps(payload) if payload is not None else b""
        frame = self.session.error(message, body=body)
        self._out.append(frame)
        self._close(1000, message)

    def _close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self._out.append(_CLOSE)
        self._out_ready.set()
        self._cancel_timer()

    async def _write_loop(self) -> None:
        while True:
            await self._out_ready.wait()
            self._out_ready.clear()
            while self._out:
                item = self._out.popleft()
                if item is _CLOSE:
                    with contextlib.suppress(Exception):
                        await self.transport.close(1000, "")
                    return
                assert isinstance(item, bytes)
                try:
                    await self.transport.send(item)
                except Exception:
                    # The peer is gone; the reader sees the disconnect and tears down.
                    self._closing = True
                    return
            self.session.note_sent(time.monotonic())

    # -- timers ---------------------------------------------------------------------------

    def _schedule_timer(self) -> None:
        self._cancel_timer()
        deadline = self.session.get_timer()
        if deadline is None or self._closing:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - time.monotonic())
        self._timer = loop.call_at(loop.time() + delay, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        action = self.session.handle_timer(time.monotonic())
        if action is TimerAction.SEND_HEARTBEAT:
            self._push(b"\n")
        elif action is TimerAction.CONNECT_TIMEOUT:
            log.info("session %s: no CONNECT in time", self.session_id)
            self._fail("no CONNECT frame received in time")
        elif action is TimerAction.PEER_TIMEOUT:
            log.info("session %s: peer heart-beats stopped", self.session_id)
            self._close(1000, "heart-beat timeout")
        elif action is TimerAction.EXPIRED:
            log.info("session %s: token expired", self.session_id)
            self._fail(ErrorCode.TOKEN_EXPIRED.value, error_payload(ErrorCode.TOKEN_EXPIRED))
        self._schedule_timer()

    # -- teardown -------------------------------------------------------------------------

    async def _teardown(self) -> None:
        self._closing = True
        self._cancel_timer()
        subs, self._subscriptions = self._subscriptions, {}
        for sub in subs.values():
            target = parse_subscription(sub.destination)
            if target is not None and target.couple_id is not None:
                with contextlib.suppress(Exception):
                    await self.gateway.hub.remove(channel_for(target.couple_id), sub)
        if self._announced and self.user is not None:
            self._announced = False
            log.info("session %s: user %s disconnected", self.session_id, self.user.id)
            with contextlib.suppress(Exception):
                await self.chat.session_closed(self.user)


def _header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _connect_token(headers: tuple[tuple[str, str], ...]) -> str | None:
    """The token of a CONNECT frame: ``Authorization`` (any case), else ``passcode``/``token``."""
    fallback: str | None = None
    for key, value in headers:
        lowered = key.lower()
        if lowered == "authorization":
            return bearer_token(value)
        if lowered in ("passcode", "token") and fallback is None and value:
            fallback = value
    return bearer_token(fallback)
