"""The ``eventsource`` transport (SockJS 0.3, "EventSource"; the W3C Server-Sent Events
format). Frames are JSON, so they never hold the newlines SSE would need to split."""

from __future__ import annotations

from typing import Final

from .._framing import Frame
from ._spec import ReceiverSpec

__all__ = ["EVENTSOURCE"]


def _wrap(frame: Frame, callback: str | None) -> bytes:
    return b"data: " + frame.data.encode() + b"\r\n\r\n"


EVENTSOURCE: Final = ReceiverSpec(
    name="eventsource",
    method="GET",
    content_type="text/event-stream",
    streaming=True,
    wrap=_wrap,
    # An empty line first: old Opera dropped the first event otherwise.
    prelude=lambda callback: b"\r\n",
)
