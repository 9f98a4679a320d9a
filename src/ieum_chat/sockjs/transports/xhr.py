"""The XHR transports: ``xhr`` (polling), ``xhr_streaming`` and ``xhr_send`` (SockJS 0.3,
"XhrPolling" and "XhrStreaming"). Frames are newline-terminated."""

from __future__ import annotations

from typing import Final

from .._framing import Frame, decode_messages
from .._http import Request
from ._spec import ReceiverSpec, SenderSpec

__all__ = ["XHR_POLLING", "XHR_SEND", "XHR_STREAMING"]

_CONTENT_TYPE: Final = "application/javascript; charset=UTF-8"
# Browsers hand an XHR's partial response to the page only after a first chunk of some size:
# 2 KiB of `h` and a newline (SockJS 0.3, XhrStreaming.test_transport).
_PRELUDE: Final = b"h" * 2048 + b"\n"


def _wrap(frame: Frame, callback: str | None) -> bytes:
    return frame.data.encode() + b"\n"


def _decode(body: bytes, request: Request) -> list[str]:
    return decode_messages(body)


XHR_POLLING: Final = ReceiverSpec(
    name="xhr-polling",
    method="POST",
    content_type=_CONTENT_TYPE,
    streaming=False,
    wrap=_wrap,
    preflight=True,
)

XHR_STREAMING: Final = ReceiverSpec(
    name="xhr-streaming",
    method="POST",
    content_type=_CONTENT_TYPE,
    streaming=True,
    wrap=_wrap,
    prelude=lambda callback: _PRELUDE,
    preflight=True,
)

XHR_SEND: Final = SenderSpec(method="POST", decode=_decode, status=204, body=b"", preflight=True)
