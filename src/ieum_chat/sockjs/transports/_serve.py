"""The I/O of the HTTP transports: a receiving request attached to a session, writing its
frames (one per polling request, a stream of them up to the response limit otherwise), and a
sending request delivering the messages of its body."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from .._channel import Channel, Endpoint, SessionInfo
from .._errors import Rejected, RemoteProtocolError
from .._framing import BUSY_FRAME, FrameType
from .._http import NO_CACHE, Request, cookie_headers, cors_headers, read_body, respond
from .._options import SockJSOptions
from .._registry import SessionRegistry
from .._session import Attach
from .._types import Receive, Send
from ._spec import ReceiverSpec, SenderSpec, callback_name

__all__ = ["serve_receiver", "serve_sender", "text_error"]


async def text_error(
    send: Send, status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    await respond(
        send,
        status,
        [NO_CACHE, *headers],
        message.encode(),
        content_type="text/plain; charset=UTF-8",
    )


async def serve_receiver(
    spec: ReceiverSpec,
    session_id: str,
    request: Request,
    receive: Receive,
    send: Send,
    *,
    endpoint: Endpoint,
    registry: SessionRegistry,
    options: SockJSOptions,
) -> None:
    headers = [NO_CACHE, *cors_headers(request), *cookie_headers(request, options)]
    try:
        if spec.method == "POST" and await read_body(receive, options.max_request_body) is None:
            return
        callback = callback_name(request) if spec.needs_callback else None
        channel = await _open(spec, session_id, request, endpoint, registry)
    except RemoteProtocolError as exc:
        await text_error(send, exc.status, exc.message, headers[1:])
        return
    except Rejected as exc:
        await respond(
            send, exc.status, [*headers, *exc.headers], exc.body, content_type=exc.content_type
        )
        return

    receiver = _Receiver(spec, callback, headers, channel, send)
    if channel.attach(receiver.wake) is Attach.BUSY:
        await receiver.busy()
        return
    watcher = asyncio.create_task(receiver.watch(receive))
    completed = False
    try:
        if spec.streaming:
            completed = await receiver.stream(options.response_limit)
        else:
            completed = await receiver.poll()
    finally:
        watcher.cancel()
        # The watcher's own cancellation is its result; ours still propagates.
        await asyncio.gather(watcher, return_exceptions=True)
        receiver.detach(interrupted=not completed)


async def _open(
    spec: ReceiverSpec,
    session_id: str,
    request: Request,
    endpoint: Endpoint,
    registry: SessionRegistry,
) -> Channel:
    """The session, created (after the endpoint agreed) when the id is new. Raises
    `RemoteProtocolError` (404) when it exists and refuses this request."""
    channel = registry.get(session_id)
    if channel is None:
        info = SessionInfo(spec.name, session_id, request)
        handler = await endpoint(info)
        # Another request may have created it while the endpoint was deciding: then this
        # request is a later one of that session, and checked as such.
        channel = registry.get(session_id)
        if channel is None:
            return registry.create(info, handler)
    await _admitted(channel, request)
    return channel


async def _admitted(channel: Channel, request: Request) -> None:
    if not await channel.admits(request):
        raise RemoteProtocolError("No such session.", status=404)


class _Receiver:
    """One receiving request attached to its session."""

    def __init__(
        self,
        spec: ReceiverSpec,
        callback: str | None,
        headers: list[tuple[bytes, bytes]],
        channel: Channel,
        send: Send,
    ) -> None:
        self.spec = spec
        self.callback = callback
        self.headers = headers
        self.channel = channel
        self.send = send
        self.wake = asyncio.Event()
        self.disconnected = asyncio.Event()
        self._detached = False
        # Set just before the last write: a disconnect seen after it is the server's own
        # (ASGI servers report one once the response is complete), not the client's.
        self._finishing = False

    def detach(self, *, interrupted: bool) -> None:
        """A request that ended before its response did was cut by the client: the session
        closes with 1002 (SockJS 0.3, HandlingClose.test_abort_xhr_polling)."""
        if not self._detached:
            self._detached = True
            self.channel.detach(interrupted=interrupted)

    async def busy(self) -> None:
        """SockJS 0.3: a second receiving request gets ``c[2010,...]``; the session is kept.
        A streaming one gets it as a stream: the prelude, then the frame in its own chunk."""
        spec, send = self.spec, self.send
        frame = spec.wrap(BUSY_FRAME, self.callback)
        if not spec.streaming:
            await respond(send, 200, self.headers, frame, content_type=spec.content_type)
            return
        await self._start()
        await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _start(self) -> None:
        """Headers and prelude of a streaming response."""
        spec, send = self.spec, self.send
        headers = [
            *self.headers,
            (b"content-type", spec.content_type.encode()),
            # A buffering proxy (nginx by default) would hold the frames back.
            (b"x-accel-buffering", b"no"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        prelude = spec.prelude(self.callback)
        await send({"type": "http.response.body", "body": prelude, "more_body": True})

    async def poll(self) -> bool:
        """One frame, then the response ends: a polling client asks again for the next.
        False when the client went away first."""
        while True:
            self.wake.clear()
            if self.channel.gone or self.disconnected.is_set():
                return False
            frame = self.channel.next_frame()
            if frame is not None:
                break
            await self.wake.wait()
        spec = self.spec
        body = spec.prelude(self.callback) + spec.wrap(frame, self.callback)
        self._finish()
        await respond(self.send, 200, self.headers, body, content_type=spec.content_type)
        return True

    async def stream(self, limit: int) -> bool:
        """Frames as they come, each in its own chunk, until the close frame or until the
        response carried ``limit`` bytes (the prelude not counted); then the response ends
        and the session waits for the client's next request. False when the client went
        away first."""
        spec, send = self.spec, self.send
        await self._start()
        written = 0
        while True:
            self.wake.clear()
            if self.channel.gone or self.disconnected.is_set():
                break
            frame = self.channel.next_frame()
            if frame is None:
                await self.wake.wait()
                continue
            data = spec.wrap(frame, self.callback)
            await send({"type": "http.response.body", "body": data, "more_body": True})
            written += len(data)
            if frame.type is FrameType.CLOSE or written >= limit:
                break
        if self.disconnected.is_set():
            return False
        self._finish()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return True

    def _finish(self) -> None:
        """Detach before the last write, not after: a polling client asks again as soon as
        the response ends, and that request must find the session free."""
        self._finishing = True
        self.detach(interrupted=False)

    async def watch(self, receive: Receive) -> None:
        """Notice the client going away while the response is pending (the request body,
        if any, has been read already)."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if self._finishing:
                    return
                self.disconnected.set()
                self.wake.set()
                # Right away, not when the writer wakes: the client may already be asking
                # again on a new connection, and must not be told another one is open.
                self.detach(interrupted=True)
                return


async def serve_sender(
    spec: SenderSpec,
    session_id: str,
    request: Request,
    receive: Receive,
    send: Send,
    *,
    registry: SessionRegistry,
    options: SockJSOptions,
) -> None:
    headers = [NO_CACHE, *cors_headers(request), *cookie_headers(request, options)]
    try:
        body = await read_body(receive, options.max_request_body)
        if body is None:
            return
        channel = registry.get(session_id)
        if channel is None:
            raise RemoteProtocolError("No such session.", status=404)
        await _admitted(channel, request)
        messages = spec.decode(body, request)
    except RemoteProtocolError as exc:
        await text_error(send, exc.status, exc.message, headers[1:])
        return
    await channel.deliver(messages)
    await respond(send, spec.status, headers, spec.body, content_type="text/plain; charset=UTF-8")
