"""A webhook receiver for tests: a real HTTP server on loopback, in a thread of its own.

It records every POST (headers and raw body), answers with the status it is told to (200 by
default, or a list of statuses for the next requests), and can go down (its port closed:
connections refused) and come back up on the same port.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.server import free_port

__all__ = ["Received", "WebhookReceiver", "verify_signature"]


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    @property
    def event(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


def verify_signature(secret: str, received: Received, *, tolerance: float = 300) -> bool:
    """Check ``X-Ieum-Signature: t=UNIX,v1=HEX`` as a receiver would."""
    header = received.headers.get("x-ieum-signature", "")
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    if "t" not in parts or "v1" not in parts:
        return False
    if abs(time.time() - int(parts["t"])) > tolerance:
        return False
    expected = hmac.new(
        secret.encode(), parts["t"].encode() + b"." + received.body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


class WebhookReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self._script: list[int] = []
        self._lock = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/ieum"

    def answer(self, statuses: Iterable[int]) -> None:
        """Answer the next requests with these statuses, then 200 again."""
        with self._lock:
            self._script = list(statuses)

    def accepted(self) -> list[dict[str, Any]]:
        """The events answered 2xx, in the order they arrived."""
        with self._lock:
            return [r.event for r in self.received if 200 <= r.status < 300]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Block until ``count`` distinct event ids were accepted; the accepted events."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len({e["id"] for e in self.accepted_locked()}) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [(e["type"], e["data"].get("seq")) for e in self.accepted_locked()]
                    raise AssertionError(f"{len(got)} events accepted, {count} expected: {got}")
                self._lock.wait(left)
            return self.accepted_locked()

    def accepted_locked(self) -> list[dict[str, Any]]:
        return [r.event for r in self.received if 200 <= r.status < 300]

    def up(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    status = receiver._script.pop(0) if receiver._script else 200
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.received.append(Received(headers, body, status))
                    receiver._lock.notify_all()
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
