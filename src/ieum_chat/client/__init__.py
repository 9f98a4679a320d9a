"""An asyncio client SDK for ieum-chat: bots, tests and back-office tools.

    async with ChatClient(url, get_token, couple_id=couple) as client:
        await client.send_text("안녕하세요!")
        async for event in client.events():
            if isinstance(event, ChatMessage):
                print(event.seq, event.content)

The client reconnects by itself (backoff with full jitter, a fresh token each time), resumes
the couple's stream after the last seq it delivered, re-sends unacknowledged messages with
the same tempId, and delivers every chat message once, in seq order. It imports nothing of
the server but the sans-IO STOMP core.
"""

from ._backoff import Backoff
from ._client import ChatClient, ClientStats, EventStream, TokenProvider
from ._errors import ChatClientError, ClientClosed, ConnectionLost, SendError
from ._events import (
    ChatMessage,
    Connected,
    Disconnected,
    ErrorEvent,
    Event,
    MalformedEvent,
    ReadReceipt,
    SendReceipt,
    SystemEvent,
    parse_event,
    parse_timestamp,
)

__all__ = [
    "Backoff",
    "ChatClient",
    "ChatClientError",
    "ChatMessage",
    "ClientClosed",
    "ClientStats",
    "Connected",
    "ConnectionLost",
    "Disconnected",
    "ErrorEvent",
    "Event",
    "EventStream",
    "MalformedEvent",
    "ReadReceipt",
    "SendError",
    "SendReceipt",
    "SystemEvent",
    "TokenProvider",
    "parse_event",
    "parse_timestamp",
]
