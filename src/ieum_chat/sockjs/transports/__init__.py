"""One module per SockJS transport; the tables below say which URL suffix each answers."""

from __future__ import annotations

from typing import Final

from ._spec import ReceiverSpec, SenderSpec
from .eventsource import EVENTSOURCE
from .htmlfile import HTMLFILE
from .jsonp import JSONP_POLLING, JSONP_SEND
from .xhr import XHR_POLLING, XHR_SEND, XHR_STREAMING

__all__ = ["RECEIVERS", "SENDERS", "ReceiverSpec", "SenderSpec"]

RECEIVERS: Final[dict[str, ReceiverSpec]] = {
    "xhr": XHR_POLLING,
    "xhr_streaming": XHR_STREAMING,
    "eventsource": EVENTSOURCE,
    "htmlfile": HTMLFILE,
    "jsonp": JSONP_POLLING,
}

SENDERS: Final[dict[str, SenderSpec]] = {
    "xhr_send": XHR_SEND,
    "jsonp_send": JSONP_SEND,
}
