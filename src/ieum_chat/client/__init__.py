"""An asyncio client SDK for ieum-chat: bots, tests and back-office tools.

    async with ChatClient(url, get_token, couple_id=couple, view=RoomView()) as client:
        await client.send_text("안녕하세요!")
        async for event in client.events():
            if isinstance(event, ChatMessage):
                print(event.seq, event.content)
                await client.react(event.id, "❤️")

The client reconnects by itself (backoff with full jitter, a fresh token each time), resumes
the couple's stream after the last seq it delivered, re-sends unacknowledged messages and
changes (edit, unsend, delete for me, reactions) with the same tempId, and delivers every
entry of the stream (messages and their changes) once, in seq order; a RoomView applies them
into the messages as the history shows them. It imports nothing of the server but the
sans-IO STOMP core. ``ChatApi`` uploads media over REST (``send_upload`` then sends the
message of the file's kind: IMAGE, AUDIO, VIDEO or FILE); ``Admin`` drives the service API
(``/admin/v1``) for back-office scripts.
"""

from ._admin import Admin, AdminError
from ._api import ChatApi
from ._backoff import Backoff
from ._client import ChatClient, EventStream, TokenProvider
from ._errors import (
    ChatClientError,
    ClientClosed,
    ConnectionLost,
    QuotaExceeded,
    SendError,
    UnsupportedMedia,
    UploadError,
    UploadTooLarge,
)
from ._events import (
    ChatMessage,
    Connected,
    Disconnected,
    ErrorEvent,
    Event,
    MalformedEvent,
    MessageDeleted,
    MessageEdited,
    MessageUnsent,
    Reaction,
    ReactionChanged,
    ReadReceipt,
    ReplyPreview,
    SendReceipt,
    Sequenced,
    SystemEvent,
    event_seq,
    parse_event,
    parse_timestamp,
)
from ._media import UploadResult, UploadTicket
from ._stats import ClientStats
from ._view import RoomView

__all__ = [
    "Admin",
    "AdminError",
    "Backoff",
    "ChatApi",
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
    "MessageDeleted",
    "MessageEdited",
    "MessageUnsent",
    "QuotaExceeded",
    "Reaction",
    "ReactionChanged",
    "ReadReceipt",
    "ReplyPreview",
    "RoomView",
    "SendError",
    "SendReceipt",
    "Sequenced",
    "SystemEvent",
    "TokenProvider",
    "UnsupportedMedia",
    "UploadError",
    "UploadResult",
    "UploadTicket",
    "UploadTooLarge",
    "event_seq",
    "parse_event",
    "parse_timestamp",
]
