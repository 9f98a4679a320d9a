"""The HTTP side of the ASGI app: the request as the transports see it, and the header sets
SockJS 0.3 asks for (CORS with credentials, caching, the JSESSIONID cookie)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.cookies import CookieError, SimpleCookie
from typing import Final
from urllib.parse import parse_qsl

from ._errors import RemoteProtocolError
from ._options import SockJSOptions
from ._types import Receive, Scope, Send

__all__ = [
    "NO_CACHE",
    "Headers",
    "Request",
    "cache_headers",
    "cookie_headers",
    "cors_headers",
    "preflight_headers",
    "read_body",
    "respond",
    "route_path",
]

Headers = list[tuple[bytes, bytes]]

NO_CACHE: Final = (
    b"cache-control",
    b"no-store, no-cache, no-transform, must-revalidate, max-age=0",
)


def route_path(scope: Scope) -> str:
    """The path below where the app is mounted (Starlette's rule: ``path`` minus
    ``root_path`` when ``path`` starts with it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


@dataclass(frozen=True, slots=True)
class Request:
    """What a SockJS handler needs of one HTTP request or WebSocket handshake."""

    method: str
    path: str
    """Below the service prefix: ``""``, ``/info``, ``/000/abc/xhr``..."""
    query: Mapping[str, str]
    """First value of each query parameter."""
    headers: Mapping[str, str]
    """Lower-case names; repeated headers joined with ``, ``."""
    http_version: str = "1.1"
    client: tuple[str, int] | None = None
    scope: Scope = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_scope(cls, scope: Scope, path: str) -> Request:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers") or ():
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        query: dict[str, str] = {}
        raw_query = scope.get("query_string", b"").decode("latin-1")
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query.setdefault(key, value)
        client = scope.get("client")
        return cls(
            method=scope.get("method", "GET"),
            path=path,
            query=query,
            headers=headers,
            http_version=scope.get("http_version", "1.1"),
            client=(str(client[0]), int(client[1])) if client else None,
            scope=scope,
        )

    @property
    def origin(self) -> str | None:
        return self.headers.get("origin")

    @property
    def scheme(self) -> str:
        """``https`` when the request came over TLS, to us or to the proxy in front
        (``X-Forwarded-Proto``; trusting it only ever adds ``Secure`` to a cookie)."""
        forwarded = self.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if forwarded in ("http", "https"):
            return forwarded
        return "https" if self.scope.get("scheme") in ("https", "wss") else "http"

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    @property
    def cross_site(self) -> bool:
        """The page that sent this request is on another origin than this service."""
        origin = self.origin
        host = self.headers.get("host")
        return origin is not None and (host is None or origin != f"{self.scheme}://{host}")

    def cookie(self, name: str) -> str | None:
        raw = self.headers.get("cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except CookieError:
            return None
        morsel = jar.get(name)
        return morsel.value if morsel is not None else None


def cors_headers(request: Request) -> Headers:
    """CORS with credentials: the request's origin echoed (``null`` included, as the SockJS
    suite expects), ``*`` without credentials when there is none."""
    origin = request.origin
    if origin is None:
        return [(b"access-control-allow-origin", b"*")]
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-credentials", b"true"),
        (b"vary", b"Origin"),
    ]


def cache_headers(seconds: int) -> Headers:
    expires = formatdate(time.time() + seconds, usegmt=True)
    return [
        (b"cache-control", f"public, max-age={seconds}".encode()),
        (b"expires", expires.encode()),
    ]


def preflight_headers(request: Request, methods: str, options: SockJSOptions) -> Headers:
    """An answer to an OPTIONS preflight, cacheable for a year (SockJS 0.3, verify_options)."""
    headers = [
        *cache_headers(options.iframe_cache_seconds),
        *cors_headers(request),
        (b"access-control-allow-methods", methods.encode()),
        (b"access-control-max-age", str(options.iframe_cache_seconds).encode()),
    ]
    asked = request.headers.get("access-control-request-headers")
    if asked:
        headers.append((b"access-control-allow-headers", asked.encode("latin-1")))
    return headers


# What a load balancer or a servlet container puts in JSESSIONID (hex, base64url, a route
# suffix after a dot). Anything else, a quoted value smuggling "; Domain=..." above all, is
# never echoed (RFC 6265 §4.1.1: a cookie-value has no ";", "," or space).
_SAFE_COOKIE: Final = re.compile(r"[A-Za-z0-9._~-]{1,128}", re.ASCII)


def cookie_headers(request: Request, options: SockJSOptions) -> Headers:
    """JSESSIONID for sticky load balancers: the client's own value echoed when it is a plain
    token, else ``dummy`` (SockJS 0.3: ``JSESSIONID=dummy; Path=/``, attributes after).

    HttpOnly: no script needs it. Behind TLS it is Secure, and a cross-site page (the
    iframe and CORS transports) gets ``SameSite=None`` so that its requests keep reaching the
    same node; browsers take ``SameSite=None`` only with ``Secure``, so without TLS it is
    ``Lax``."""
    if not options.cookie_needed:
        return []
    value = request.cookie("JSESSIONID")
    if value is None or _SAFE_COOKIE.fullmatch(value) is None:
        value = "dummy"
    attributes = "Path=/; HttpOnly"
    if not request.secure:
        attributes += "; SameSite=Lax"
    elif request.cross_site:
        attributes += "; SameSite=None; Secure"
    else:
        attributes += "; SameSite=Lax; Secure"
    return [(b"set-cookie", f"JSESSIONID={value}; {attributes}".encode("latin-1"))]


async def respond(
    send: Send,
    status: int,
    headers: Headers,
    body: bytes = b"",
    *,
    content_type: str | None = None,
) -> None:
    """A whole response with a Content-Length (none on 204 and 304)."""
    out = list(headers)
    if content_type is not None:
        out.append((b"content-type", content_type.encode()))
    if status not in (204, 304):
        out.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None when the client went away first.

    Raises `RemoteProtocolError` (413) as soon as more than ``limit`` bytes arrive.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RemoteProtocolError("Payload too large.", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
