"""The knobs of a SockJS server, with the defaults of the SockJS 0.3 reference server."""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import LocalProtocolError

__all__ = ["DEFAULT_SOCKJS_URL", "SockJSOptions"]

DEFAULT_SOCKJS_URL = "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js"


@dataclass(frozen=True, slots=True)
class SockJSOptions:
    heartbeat_interval: float = 25.0
    """Seconds between ``h`` frames while a receiving request is attached (SockJS 0.3: 25 s)."""
    disconnect_delay: float = 5.0
    """Seconds a session lives with no receiving request attached (SockJS 0.3: 5 s)."""
    response_limit: int = 128 * 1024
    """Bytes a streaming response carries before it is ended so the browser can free them."""
    websocket: bool = True
    """Offer the websocket transport (``/info`` says so; the URLs answer 404 otherwise)."""
    cookie_needed: bool = False
    """Set the JSESSIONID cookie on session requests, for load balancers' sticky sessions."""
    sockjs_url: str = DEFAULT_SOCKJS_URL
    """The sockjs-client script the iframe page loads."""
    allowed_origins: tuple[str, ...] = ("*",)
    """Origins allowed to use the service; ``*`` allows any. Others get HTTP 403."""
    max_sessions: int = 10_000
    """Live polling/streaming sessions at once; a new one past that gets HTTP 503."""
    max_pending: int = 1 << 20
    """Characters of outgoing messages buffered per session while no request takes them."""
    send_timeout: float = 10.0
    """How long `Channel.send()` waits for room in a full buffer before the session is
    closed as a slow consumer."""
    max_inbound: int = 256
    """Received messages queued per session before reading from the client pauses."""
    max_request_body: int = 1 << 20
    """Largest ``xhr_send``/``jsonp_send`` body, in bytes (HTTP 413 past it)."""
    iframe_cache_seconds: int = 31_536_000
    """How long the iframe page and CORS preflights may be cached (one year)."""

    def __post_init__(self) -> None:
        numbers = (
            self.heartbeat_interval,
            self.disconnect_delay,
            self.response_limit,
            self.max_sessions,
            self.max_pending,
            self.send_timeout,
            self.max_inbound,
            self.max_request_body,
        )
        if any(n <= 0 for n in numbers):
            raise LocalProtocolError("SockJS options must be positive")

    def origin_allowed(self, origin: str | None) -> bool:
        return origin is None or "*" in self.allowed_origins or origin in self.allowed_origins
