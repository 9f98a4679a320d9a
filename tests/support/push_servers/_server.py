"""What the three push servers share: an ASGI app served by hypercorn over TLS (HTTP/2 and
HTTP/1.1 by ALPN) on an ephemeral port of 127.0.0.1, and a script of planned failures.

Every test tells a server what to answer next (``fail``) or to hang; a hung request waits
until the server closes, so no test depends on how long anything takes.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ._tls import TlsFiles

__all__ = ["Planned", "TlsServer"]


@dataclass(frozen=True, slots=True)
class Planned:
    """One scripted answer: a status and JSON body, or no answer at all (``hang``)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


class TlsServer:
    """Serves ``self.app()`` until the ``async with`` block ends."""

    def __init__(self, tls: TlsFiles) -> None:
        self._tls = tls
        self._plan: deque[Planned] = deque()
        self._closing = asyncio.Event()
        self._shutdown = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.port = 0
        self.hung = 0  # requests held without an answer so far

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def app(self) -> Starlette:
        raise NotImplementedError

    # the script -------------------------------------------------------------------------

    def fail(
        self,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` and ``body`` (JSON)."""
        self._plan.extend(Planned(status, body, headers or {}) for _ in range(times))

    def hang(self, *, times: int = 1) -> None:
        """Never answer the next ``times`` requests (until the server closes)."""
        self._plan.extend(Planned(hang=True) for _ in range(times))

    async def planned(self, request: Request) -> Response | None:
        """The scripted answer for this request, if one is due; waits out a hang.

        The request body is read first, as a real service does: answering an HTTP/2 stream
        whose DATA frames are still coming trips hypercorn up."""
        await request.body()
        if not self._plan:
            return None
        plan = self._plan.popleft()
        if plan.hang:
            self.hung += 1
            await self._closing.wait()
            return Response(status_code=503)
        if plan.body is None:
            return Response(status_code=plan.status, headers=plan.headers)
        return JSONResponse(plan.body, status_code=plan.status, headers=plan.headers)

    # lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)  # connections made before hypercorn accepts wait in the backlog
        self.port = sock.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.certfile = self._tls.cert_file
        config.keyfile = self._tls.key_file
        config.alpn_protocols = ["h2", "http/1.1"]
        config.graceful_timeout = 1.0
        # as the real services: idle connections live for minutes, not hypercorn's 5 s
        config.keep_alive_timeout = 300
        config.accesslog = None
        config.errorlog = None
        config.loglevel = "WARNING"
        self._task = asyncio.create_task(
            serve(self.app(), config, shutdown_trigger=self._shutdown.wait)  # type: ignore[arg-type]
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()
        self._shutdown.set()
        if self._task is not None:
            await self._task
