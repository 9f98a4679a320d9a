"""What distinguishes one HTTP transport from another, as data: no I/O here.

A receiving transport is a content type, a prelude, a way to wrap each frame, and whether the
response streams (many frames, up to the response limit) or polls (one frame per request).
A sending transport is a way to decode the request body and the answer to give.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .._errors import RemoteProtocolError
from .._framing import Frame
from .._http import Request

__all__ = ["ReceiverSpec", "SenderSpec", "callback_name"]


@dataclass(frozen=True, slots=True)
class ReceiverSpec:
    name: str
    """sockjs-client's name for the transport (``xhr-streaming``...)."""
    method: str
    content_type: str
    streaming: bool
    wrap: Callable[[Frame, str | None], bytes]
    """(frame, callback) -> the bytes that carry it."""
    prelude: Callable[[str | None], bytes] = lambda callback: b""
    needs_callback: bool = False
    preflight: bool = False
    """Answer CORS preflights (OPTIONS) on this URL."""


@dataclass(frozen=True, slots=True)
class SenderSpec:
    method: str
    decode: Callable[[bytes, Request], list[str]]
    """Raises `RemoteProtocolError` for a body SockJS does not accept."""
    status: int
    body: bytes
    preflight: bool = False


# SockJS 0.3 (HtmlFile/JsonPolling.test_invalid_callback): the callback is evaluated by the
# browser, so only a plain, possibly dotted, JavaScript identifier is accepted.
_CALLBACK: Final = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*", re.ASCII)
_MAX_CALLBACK: Final = 128


def callback_name(request: Request) -> str:
    """The ``c`` (or older ``callback``) query parameter, checked."""
    value = request.query.get("c", request.query.get("callback"))
    if not value:
        raise RemoteProtocolError('"callback" parameter required')
    if len(value) > _MAX_CALLBACK or _CALLBACK.fullmatch(value) is None:
        raise RemoteProtocolError('invalid "callback" parameter')
    return value
