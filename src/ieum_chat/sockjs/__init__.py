"""A SockJS 0.3 server as a pure ASGI app, reusable by any ASGI framework.

Layers, bottom up: `_framing` and `_session` are sans-IO (frames in and out, a session's
state table and timers, no clock, no asyncio); `transports/` holds one module per transport;
`Channel` is one session's I/O shell and what the application sees; `SockJSApp` routes the
URLs. It imports nothing of the rest of ieum_chat::

    async def echo(channel: Channel) -> None:
        async for message in channel:
            await channel.send(message)

    async def endpoint(info: SessionInfo) -> Handler | Accept:
        return echo          # or Accept(echo, check), or raise Rejected(401, b"...")

    app = SockJSApp(endpoint, prefix="/echo")
"""

from ._app import SockJSApp
from ._channel import Accept, Channel, Check, Endpoint, Handler, SessionInfo
from ._errors import (
    LocalProtocolError,
    Rejected,
    RemoteProtocolError,
    SessionClosed,
    SockJSError,
)
from ._framing import Frame, FrameType, close_frame, decode_messages, encode_json, message_frame
from ._http import Request
from ._options import DEFAULT_SOCKJS_URL, SockJSOptions
from ._session import Attach, Session, SessionState, TimerAction

__all__ = [
    "DEFAULT_SOCKJS_URL",
    "Accept",
    "Attach",
    "Channel",
    "Check",
    "Endpoint",
    "Frame",
    "FrameType",
    "Handler",
    "LocalProtocolError",
    "Rejected",
    "RemoteProtocolError",
    "Request",
    "Session",
    "SessionClosed",
    "SessionInfo",
    "SessionState",
    "SockJSApp",
    "SockJSError",
    "SockJSOptions",
    "TimerAction",
    "close_frame",
    "decode_messages",
    "encode_json",
    "message_frame",
]
