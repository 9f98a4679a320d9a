"""The socket side of one :class:`StompSession`, for any transport that carries frames.

The WebSocket endpoints and the SockJS sessions all drive this class: they feed it the bytes
they receive (:meth:`StompConnection.feed`) and give it a :class:`Transport` to write frames
to. This module is the shell: it runs the STOMP core over the transport (reading, the timers,
writing, closing); what each frame means is :mod:`~ieum_chat.gateway.dispatch`'s job, and the
couple topics are :mod:`~ieum_chat.gateway.subscriptions`'.

A frame is handled at once, inside ``feed``, whenever nothing has to be waited for (the
common SEND: membership cached, room in the write queue); the first frame that must wait (a
CONNECT, a SUBSCRIBE, a database lookup) continues in a task, and reading pauses until it is
done, so frames are still handled in order. An idle connection owns no task.

Everything the connection holds is bounded: the bytes waiting for the peer (a consumer that
falls that far behind, or takes nothing for ``Gateway.stall_timeout`` while history is
replayed to it, is closed), the SENDs awaiting commit, the subscriptions (the STOMP session
counts those). Every ERROR carries its code as the one-token ``message`` header and the rest
in its JSON body.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from ieum_chat.aio import stop_tasks_after
from ieum_chat.auth import Principal
from ieum_chat.chat import codec
from ieum_chat.chat.directory import Revocation
from ieum_chat.chat.limits import TokenBucket
from ieum_chat.chat.service import ChatService
from ieum_chat.config import Settings
from ieum_chat.errors import ErrorCode, error_body
from ieum_chat.gateway.deadlines import Deadlines
from ieum_chat.gateway.dispatch import Dispatcher
from ieum_chat.gateway.hub import Hub
from ieum_chat.gateway.subscriptions import Subscriptions
from ieum_chat.gateway.transports import Transport
from ieum_chat.observability import metrics
from ieum_chat.push.watch import DeviceWatch
from ieum_chat.stomp import (
    RemoteProtocolError,
    SessionState,
    StompSession,
    TimerAction,
)
from ieum_chat.store.records import User
from ieum_chat.store.schema import utcnow

__all__ = ["SERVER_NAME", "Gateway", "StompConnection"]

log = logging.getLogger(__name__)

_session_ids = itertools.count(1)

# STOMP 1.2 CONNECTED `server`: name/version, then optional comments.
SERVER_NAME = "ieum-chat/0.1"
_DELIVERED = metrics.counter_tally(metrics.MESSAGES_DELIVERED)
# Waiting for a socket to drain: the first look after one loop turn, then backing off.
_DRAIN_POLL_FIRST = 0.005
_DRAIN_POLL_MAX = 0.1


@dataclass(slots=True, eq=False)
class Gateway:
    """What every connection of this process shares."""

    settings: Settings
    chat: ChatService
    hub: Hub
    watch: DeviceWatch | None = None  # which devices watch their couple (push skips them)
    connections: set[StompConnection] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    accepting: bool = True
    server_name: str = SERVER_NAME  # the CONNECTED frame's ``server`` header
    stall_timeout: float = 20.0
    """Seconds a peer may take no bytes at all while history waits for it: then it is
    closed as a slow consumer (it reconnects and resumes by seq)."""
    admission: TokenBucket = field(init=False)
    """New sessions this node admits per second (``IEUM_ADMISSION_RATE``/``_BURST``)."""
    setups: int = 0
    """CONNECTs and SUBSCRIBEs being handled (the database work of new sessions)."""
    deadlines: Deadlines = field(default_factory=Deadlines)
    """Every session's next deadline, on one loop timer."""
    ws_message_limit: int = field(init=False)
    """Bytes of one WebSocket message: above the STOMP frame limit, so that an oversized
    frame reaches the STOMP parser (an ERROR). One int for every connection."""

    def __post_init__(self) -> None:
        self.admission = TokenBucket(self.settings.admission_rate, self.settings.admission_burst)
        self.ws_message_limit = self.settings.max_frame_size * 4

    async def drain(self, grace: float) -> int:
        """Graceful shutdown: refuse new connections, let each session finish the SENDs it
        has in flight, then send it an ERROR (SERVER_SHUTDOWN: reconnect) and close it, all
        within ``grace`` seconds. Returns how many sessions were told."""
        self.accepting = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        sessions = list(self.connections)
        if sessions:
            tasks = [asyncio.create_task(c.shutdown()) for c in sessions]
            await stop_tasks_after(tasks, deadline - loop.time(), "session shutdown")
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=max(0.0, deadline - loop.time()))
        return len(sessions)

    def session_count(self) -> int:
        return sum(1 for c in self.connections if c.user is not None)

    def backlog_bytes(self) -> int:
        return sum(c.transport.backlog() for c in self.connections)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in a task this gateway owns (a connection's teardown)."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def resync(self) -> None:
        """Called when the broker reconnected: every local subscription catches up by seq."""
        for connection in self.connections:
            connection.resync()

    def revoke(self, revocation: Revocation) -> None:
        """Users or couples lost access (deleted or re-paired, on any node, by anyone): each
        session that depended on it ends (:meth:`StompConnection.revoke`). The SYSTEM event
        each couple's sessions get first is rendered here, once per couple."""
        now = utcnow()
        events = {
            couple_id: codec.system_json(
                "COUPLE_DISSOLVED", None, now, self.chat.zone, couple_id=couple_id
            )
            for couple_id in revocation.couples
        }
        for connection in list(self.connections):
            connection.revoke(revocation, events)


class _SessionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Adds session, transport and user to every record (JSON logs carry them as fields)."""

    def __init__(self, conn: StompConnection) -> None:
        super().__init__(log, {})
        self.conn = conn

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        conn = self.conn
        kwargs["extra"] = {
            "session": conn.session_id,
            "transport": conn.transport_name,
            "user": str(conn.user.id) if conn.user is not None else None,
        }
        return msg, kwargs


class StompConnection:
    # Slots: thousands of these live in one process, most of them idle.
    __slots__ = (
        "__weakref__",
        "_busy",
        "_closing",
        "_dispatcher",
        "_draining",
        "_message_ids",
        "_message_prefix",
        "_serial",
        "_tag",
        "_tasks",
        "_timer",
        "_torn_down",
        "gateway",
        "session",
        "subscriptions",
        "transport",
        "transport_name",
        "user",
    )

    def __init__(
        self,
        gateway: Gateway,
        transport: Transport,
        *,
        transport_name: str,
        principal: Principal | None = None,
        user: User | None = None,
        preferred_version: str | None = None,
    ) -> None:
        settings = gateway.settings
        self.gateway = gateway
        self.transport = transport
        self.transport_name = transport_name
        # The session id, "<serial>-<tag>" in hex: a count within this process and 32
        # random bits, so that ids of several nodes and restarts do not meet. Kept as two
        # machine ints and written out when read, so that an idle session holds no string
        # for it (64 bytes each).
        self._serial = next(_session_ids)
        self._tag = int.from_bytes(os.urandom(4))
        self.session = StompSession(
            now=time.monotonic(),
            server_heartbeat=settings.heartbeat_ms,
            connect_timeout=settings.connect_timeout,
            max_frame_size=settings.max_frame_size,
            max_subscriptions=settings.max_subscriptions,
            preferred_version=preferred_version,
            server_name=gateway.server_name,
        )
        self.user: User | None = None
        self.subscriptions = Subscriptions(self, gateway.chat, gateway.hub, gateway.watch)
        handshake = (principal, user) if principal is not None and user is not None else None
        self._dispatcher = Dispatcher(self, self.subscriptions, handshake)
        self._closing = False
        self._draining = False
        self._torn_down = False
        self._message_ids = 0
        # "<session id>-", made at the first MESSAGE: a session that has had none holds no
        # string for its id.
        self._message_prefix: str | None = None
        # Created on first use: most connections are idle most of the time.
        self._tasks: set[asyncio.Task[None]] | None = None
        self._busy: asyncio.Task[None] | None = None
        self._timer: int | None = None  # the key of our deadline in gateway.deadlines

    @property
    def log(self) -> _SessionLog:
        # Made for each use, not kept: every session logs its CONNECT, and an adapter kept
        # for that one line would cost an idle session about 200 bytes.
        return _SessionLog(self)

    @property
    def closing(self) -> bool:
        return self._closing

    # -- driving --------------------------------------------------------------------------

    def open(self) -> None:
        """The transport is up: count the connection and start the CONNECT deadline."""
        self.gateway.connections.add(self)
        metrics.CONNECTIONS.labels(self.transport_name).inc()
        self.schedule_timer()

    def feed(self, data: bytes) -> None:
        """Bytes from the peer. Frames are handled now when possible, else in order by a
        task (while it runs, the transport is asked to pause reading)."""
        if self._closing:
            return
        try:
            self.session.receive_data(data, time.monotonic())
        except RemoteProtocolError as exc:
            self._protocol_error(exc)
            return
        if self._busy is None:
            self._pump()

    async def settled(self) -> None:
        """Wait until the frames fed so far have been handled (for transports that read by
        awaiting, instead of pausing)."""
        while self._busy is not None:
            await asyncio.wait({self._busy})

    def _next_event(self) -> object | None:
        if self._closing or self._draining:
            return None
        try:
            return self.session.next_event()
        except RemoteProtocolError as exc:
            self._protocol_error(exc)
            return None

    def _pump(self) -> None:
        while (event := self._next_event()) is not None:
            rest = self._dispatcher.handle(event)
            if rest is not None:
                self._busy = asyncio.create_task(
                    self._handle_in_order(rest), name=f"stomp-{self.session_id}"
                )
                self.transport.pause_reading()
                return

    async def _handle_in_order(self, rest: Awaitable[None]) -> None:
        try:
            await rest
            while (event := self._next_event()) is not None:
                more = self._dispatcher.handle(event)
                if more is not None:
                    await more
        except Exception:
            self.log.exception("session %s failed", self.session_id)
            self.fail(ErrorCode.UNAVAILABLE, "the server failed; reconnect")
        finally:
            self._busy = None
            if not self._closing:
                self.transport.resume_reading()

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        self.log.info("session %s: protocol error: %s", self.session_id, exc.message)
        try:
            code = ErrorCode(exc.code)
        except ValueError:
            code = ErrorCode.PROTOCOL_ERROR
        self.fail(code, exc.message)

    def resync(self) -> None:
        """The broker may have lost messages: catch every subscription up."""
        self.subscriptions.resync()

    @property
    def session_id(self) -> str:
        """This session's id, in its CONNECTED frame, its MESSAGE ids and its log lines."""
        return f"{self._serial:x}-{self._tag:08x}"

    def revoke(self, revocation: Revocation, events: Mapping[uuid.UUID, bytes]) -> None:
        """End this session if its user was deleted (ERROR ACCOUNT_DELETED), or if it is
        subscribed to a couple its user is no longer in (that couple's SYSTEM
        ``COUPLE_DISSOLVED`` event of ``events`` on its subscription, then ERROR
        COUPLE_DISSOLVED). A socket whose token came with
        the handshake counts as that user before its CONNECT. The client's reconnect is
        checked afresh."""
        user = self._dispatcher.claimed_user()
        if user is None or self._closing:
            return
        if revocation.user_revoked(user.id):
            code = ErrorCode.ACCOUNT_DELETED
        else:
            lost = [
                c for c in self.subscriptions.couples() if revocation.couple_revoked(user.id, c)
            ]
            if not lost:
                return
            for couple_id in lost:
                self.subscriptions.notify(couple_id, events[couple_id])
            code = ErrorCode.COUPLE_DISSOLVED
        self.log.info("session %s: %s", self.session_id, code.value)
        self.fail(code)

    async def shutdown(self) -> None:
        """Stop taking frames, wait for the SENDs in flight to commit (their RECEIPTs go
        out), then ERROR with SERVER_SHUTDOWN and close: the client reconnects elsewhere
        or later and resumes by seq."""
        if self._closing:
            return
        self._draining = True
        await self._dispatcher.wait_inflight()
        self.fail(ErrorCode.SERVER_SHUTDOWN)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` in a task this connection owns (cancelled at teardown)."""
        task = asyncio.create_task(coro, name=name)
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- output ---------------------------------------------------------------------------

    def push_message(self, destination: str, sub_id: str, body: bytes) -> None:
        if self._closing:
            return
        self._message_ids += 1
        prefix = self._message_prefix
        if prefix is None:
            prefix = self._message_prefix = f"{self.session_id}-"
        frame = self.session.message(
            destination=destination,
            subscription=sub_id,
            message_id=f"{prefix}{self._message_ids}",
            body=body,
        )
        _DELIVERED.inc()
        self.push(frame)

    def receipt(self, receipt_id: str | None, extra: tuple[tuple[str, str], ...] = ()) -> None:
        """The RECEIPT for ``receipt_id`` (with ``extra`` headers); nothing when the frame
        asked for none."""
        if receipt_id:
            self.push(self.session.receipt(receipt_id, extra))

    def push(self, frame: bytes) -> None:
        if self._closing:
            return
        if not self.transport.write(frame):
            self.overflow()
            return
        self.session.note_sent(time.monotonic())

    @property
    def replay_burst(self) -> int:
        """Bytes a replay writes before it waits for the socket to drain: a quarter of the
        outbound bound, and the low-water mark it waits for is the same quarter, so a
        replaying session holds about half its bound at most."""
        return self.gateway.settings.outbound_buffer_bytes // 4

    async def drained(self) -> bool:
        """Wait until the transport's backlog falls to the low-water mark; False when the
        session closed meanwhile, or was closed as a slow consumer because the peer took no
        bytes at all for ``Gateway.stall_timeout``."""
        loop = asyncio.get_running_loop()
        low = self.replay_burst
        await asyncio.sleep(0)  # frames written this loop turn reach the socket first
        backlog = self.transport.backlog()
        progress = loop.time()
        delay = _DRAIN_POLL_FIRST
        while backlog > low and not self._closing:
            await asyncio.sleep(delay)
            delay = min(delay * 2, _DRAIN_POLL_MAX)
            now_backlog = self.transport.backlog()
            if now_backlog < backlog:
                progress = loop.time()
            elif loop.time() - progress >= self.gateway.stall_timeout:
                self.overflow()
            backlog = now_backlog
        return not self._closing

    def overflow(self) -> None:
        """The peer reads too slowly: drop what is queued, ERROR, close. Memory stays
        bounded; the client reconnects and resumes by seq."""
        if self._closing:
            return
        self.log.warning(
            "session %s: %d bytes not taken by the peer: closing slow consumer",
            self.session_id,
            self.transport.backlog(),
        )
        self.transport.discard()
        metrics.SLOW_CONSUMERS.inc()
        self.fail(ErrorCode.SLOW_CONSUMER, "too many undelivered frames; reconnect and resume")

    def fail(
        self, code: ErrorCode, detail: str | None = None, *, receipt: str | None = None
    ) -> None:
        """STOMP ERROR, then close (STOMP 1.2: the server closes after sending ERROR). The
        ``message`` header is the code alone; the body is the error JSON, with ``detail``."""
        if self._closing or self.session.state is SessionState.CLOSED:
            self.close()
            return
        metrics.ERRORS.labels(code.value).inc()
        body = error_body(code, detail=detail)
        # Past the bound or not, the last frame goes out: the close follows it.
        self.transport.write(self.session.error(code.value, body=body, receipt_id=receipt))
        self.close()

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._cancel_timer()
        self.transport.close()

    # -- timers ---------------------------------------------------------------------------

    def schedule_timer(self) -> None:
        """(Re)set the one deadline for whatever the STOMP session says is due next."""
        self._cancel_timer()
        deadline = self.session.get_timer()
        if deadline is None or self._closing:
            return
        self._timer = self.gateway.deadlines.add(self, deadline)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self.gateway.deadlines.remove(self, self._timer)
            self._timer = None

    def on_deadline(self) -> None:
        self._timer = None
        action = self.session.handle_timer(time.monotonic())
        if action is TimerAction.SEND_HEARTBEAT:
            self.push(b"\n")
        elif action is TimerAction.CONNECT_TIMEOUT:
            self.log.info("session %s: no CONNECT in time", self.session_id)
            self.fail(ErrorCode.CONNECT_TIMEOUT, "no CONNECT frame received in time")
        elif action is TimerAction.PEER_TIMEOUT:
            self.log.info("session %s: peer heart-beats stopped", self.session_id)
            self.close()
        elif action is TimerAction.EXPIRED:
            self.log.info("session %s: token expired", self.session_id)
            self.fail(ErrorCode.TOKEN_EXPIRED)
        self.schedule_timer()

    # -- teardown -------------------------------------------------------------------------

    def connection_lost(self) -> None:
        """The transport is gone (for transports that call back instead of awaiting)."""
        self._closing = True
        self._cancel_timer()
        self.gateway.spawn(self.teardown())

    async def teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        if self in self.gateway.connections:
            self.gateway.connections.discard(self)
            metrics.CONNECTIONS.labels(self.transport_name).dec()
        self._closing = True
        self._cancel_timer()
        tasks = list(self._tasks or ())
        if self._busy is not None:
            tasks.append(self._busy)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.subscriptions.close_all()
        await self._dispatcher.closed()
