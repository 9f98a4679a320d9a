"""Periodic jobs that one node at a time runs (the purge, the upload cleanup): every node
looks every ``check`` seconds whether the job is due, and the one that claims the run
(``maintenance_runs``, a compare-and-set) runs it. A failed run is logged and left to the
next period; every job is written to be run again safely."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

from ieum_chat.aio import stop_tasks
from ieum_chat.errors import StoreError
from ieum_chat.store import Database
from ieum_chat.store.schema import utcnow

__all__ = ["PeriodicJob", "node_name"]

log = logging.getLogger(__name__)

STOP_TIMEOUT = 1.0


def node_name() -> str:
    """This process among the nodes: what ``maintenance_runs.node`` shows."""
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


class PeriodicJob:
    def __init__(
        self,
        db: Database,
        name: str,
        work: Callable[[], Awaitable[object]],
        *,
        every: float,
        check: float,
        node: str,
    ) -> None:
        self._db = db
        self.name = name
        self._work = work
        self._every = timedelta(seconds=every)
        self._check = min(check, every)
        self._node = node
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._every > timedelta(0):
            self._task = asyncio.create_task(self._schedule(), name=f"chat-{self.name}")

    async def close(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task], STOP_TIMEOUT, f"{self.name} schedule")
            self._task = None

    async def _schedule(self) -> None:
        while True:
            try:
                if await self._db.claim_run(self.name, self._node, utcnow(), self._every):
                    await self._work()
            except StoreError as exc:
                log.warning("%s not run: %s", self.name, exc)
            except Exception:
                log.exception("%s failed", self.name)
            await asyncio.sleep(self._check)
