"""One worker process of several: its own listening socket on the shared host:port
(``SO_REUSEPORT``: the kernel spreads new connections over every worker's socket), the
server of :mod:`._server`, and a word to the supervisor once it accepts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from multiprocessing.connection import Connection

from ieum_chat.config import Settings
from ieum_chat.gateway.connection import SERVER_NAME
from ieum_chat.observability import metrics
from ieum_chat.observability.logging import configure_logging
from ieum_chat.workers._server import build_server

__all__ = ["READY", "listening_socket", "worker_main"]

log = logging.getLogger("ieum_chat.workers")

READY = b"ready"
_PARENT_CHECK = 1.0  # seconds between looks at whether the supervisor is still there


def listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A socket bound to ``host:port`` that other processes of this user may bind too."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """A supervisor that died (SIGKILL) cannot stop its workers: they stop themselves."""
    # Nothing wakes a process when its parent ends: look now and then.
    while os.getppid() == parent:  # noqa: ASYNC110
        await asyncio.sleep(_PARENT_CHECK)
    log.warning("the supervisor (pid %d) is gone: stopping", parent)
    stop.set()


def worker_main(settings: Settings, index: int, ready: Connection) -> None:
    """The body of worker ``index``: serve until SIGTERM (a graceful drain, as one server
    does), SIGINT, or the supervisor's end."""
    configure_logging(json_lines=settings.log_json, level=settings.log_level)
    # A reload is the supervisor's business; the terminal's hangup is not a stop.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    parent = os.getppid()
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as exc:
        log.error("worker %d cannot listen on %s:%d: %s", index, settings.host, settings.port, exc)
        sys.exit(1)

    def started() -> None:
        stop = asyncio.Event()

        async def stop_when_asked() -> None:
            await stop.wait()
            server.should_exit = True

        for coro in (_watch_parent(parent, stop), stop_when_asked(), metrics.sample_forever()):
            task = asyncio.create_task(coro)
            server.tasks.add(task)
            task.add_done_callback(server.tasks.discard)
        with contextlib.suppress(OSError):  # a supervisor gone: the watch above stops us
            ready.send_bytes(READY)
        ready.close()
        log.info("worker %d (pid %d) accepting on %s:%d", index, os.getpid(), *_where(sock))

    server = build_server(
        settings,
        server_name=f"{SERVER_NAME} (worker {index}; pid {os.getpid()})",
        on_started=started,
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn raises a drained SIGINT again
        server.run(sockets=[sock])
    metrics.sample()  # what was counted since the last sample counts after this worker too


def _where(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()[:2]
    return str(host), int(port)
