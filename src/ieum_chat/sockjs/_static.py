"""The session-less URLs: the greeting, ``/info`` and the iframe page (SockJS 0.3, "Base
URL", "Info test", "IFrame page")."""

from __future__ import annotations

import hashlib
import html
import json
import secrets
from typing import Final

from ._http import NO_CACHE, Request, cache_headers, cors_headers, preflight_headers, respond
from ._options import SockJSOptions
from ._types import Send

__all__ = [
    "greeting",
    "iframe",
    "iframe_page",
    "info",
    "info_preflight",
    "method_not_allowed",
    "not_found",
]

GREETING: Final = b"Welcome to SockJS!\n"

_IFRAME: Final = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{sockjs_url}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""


def iframe_page(sockjs_url: str) -> tuple[bytes, bytes]:
    """(body, ETag) of the iframe page: the same bytes, and so the same tag, every time."""
    body = _IFRAME.format(sockjs_url=html.escape(sockjs_url, quote=True)).encode()
    return body, b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'


async def greeting(send: Send) -> None:
    await respond(send, 200, [], GREETING, content_type="text/plain; charset=UTF-8")


async def info(request: Request, send: Send, options: SockJSOptions) -> None:
    body = json.dumps(
        {
            "websocket": options.websocket,
            "cookie_needed": options.cookie_needed,
            "origins": ["*:*"],
            # Browsers lacked a good random source; the client seeds its ids with this.
            "entropy": secrets.randbits(32),
        }
    ).encode()
    headers = [NO_CACHE, *cors_headers(request)]
    await respond(send, 200, headers, body, content_type="application/json; charset=UTF-8")


async def info_preflight(request: Request, send: Send, options: SockJSOptions) -> None:
    await respond(send, 204, preflight_headers(request, "OPTIONS, GET", options))


async def iframe(
    request: Request, send: Send, options: SockJSOptions, page: tuple[bytes, bytes]
) -> None:
    body, etag = page
    headers = [*cache_headers(options.iframe_cache_seconds), (b"etag", etag)]
    if request.headers.get("if-none-match") == etag.decode():
        await respond(send, 304, headers)
        return
    await respond(send, 200, headers, body, content_type="text/html; charset=UTF-8")


async def not_found(send: Send) -> None:
    await respond(send, 404, [], b"Not found.", content_type="text/plain; charset=UTF-8")


async def method_not_allowed(send: Send, allow: str) -> None:
    """405 with ``Allow`` and neither content type nor body (SockJS 0.3, verify405)."""
    await respond(send, 405, [(b"allow", allow.encode())])
