"""Who may still chat: this node follows the database's directory change feed, drops what it
cached about changed users and couples, and reports the access that ended.

Users and couple memberships are cached on every node (a CONNECT, SUBSCRIBE or SEND must not
cost a query each). Whoever changes them (this node, another node, the CLI, SQL typed into the
database), triggers record the change in ``directory_changes``, and every node reads that feed
by position every ``interval`` seconds (0.5 s by default): within about a second every node
has forgotten what changed, and the gateway has been told which sessions lost their access:

* a deleted user (the row gone, or the account marked deleted): every session of theirs ends;
* a deleted or dissolved couple, or one whose members changed: the sessions subscribed to it
  whose user is no longer a member of it end.

A node that could not read the feed for longer than half the feed's retention (the rows it
missed may be pruned) forgets everything it cached instead; sessions whose access ended
meanwhile are then refused at their next SUBSCRIBE or SEND rather than ended at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ieum_chat.aio import stop_tasks
from ieum_chat.errors import StoreError
from ieum_chat.store import Couple, Database
from ieum_chat.store.directory import ChangeKind, ChangeOp, DirectoryChange, DirectoryFeed

__all__ = ["DirectoryWatcher", "Revocation", "RevocationHandler"]

log = logging.getLogger(__name__)

PAGE = 1000  # changes per read
RETENTION = 600.0  # seconds a change stays in the feed before pruning
PRUNE_EVERY = 60.0  # seconds between prunes (by any node; they are idempotent)
STOP_TIMEOUT = 1.0  # seconds for the reading task to end once cancelled


@dataclass(frozen=True, slots=True)
class Revocation:
    """Access that ended: deleted users, and couples as they are now (``None``: deleted;
    dissolved ones have ``dissolved_at``)."""

    users: frozenset[uuid.UUID] = frozenset()
    couples: Mapping[uuid.UUID, Couple | None] = field(default_factory=dict)

    def user_revoked(self, user_id: uuid.UUID) -> bool:
        return user_id in self.users

    def couple_revoked(self, user_id: uuid.UUID, couple_id: uuid.UUID) -> bool:
        """Whether ``user_id`` lost access to ``couple_id`` (the couple went or was dissolved,
        or they left it)."""
        if couple_id not in self.couples:
            return False
        couple = self.couples[couple_id]
        return couple is None or not couple.active or not couple.has_member(user_id)


# Called on the event loop; must not block (it closes sessions, which only queues frames).
RevocationHandler = Callable[[Revocation], None]
# Drop these users and couples from the caches (both empty: drop everything).
Forget = Callable[[set[uuid.UUID], set[uuid.UUID]], None]


class DirectoryWatcher:
    def __init__(
        self,
        db: Database,
        forget: Forget,
        *,
        interval: float = 0.5,
        retention: float = RETENTION,
    ) -> None:
        self._db = db
        self._feed = DirectoryFeed(db.db_pool)
        self._forget = forget
        self._interval = interval
        self._retention = retention
        self._position = 0
        self._read_at = time.monotonic()
        self._pruned_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._woken = asyncio.Event()
        self.handler: RevocationHandler | None = None

    async def start(self) -> None:
        """Start after the newest change: this node has cached nothing yet."""
        try:
            self._position = await self._feed.directory_position()
        except StoreError as exc:
            log.warning("directory feed unreadable at start (%s); reading it all", exc)
        self._read_at = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="chat-directory")
        self._task.add_done_callback(_log_stop)

    async def close(self) -> None:
        if self._task is not None:
            await stop_tasks([self._task], STOP_TIMEOUT, "directory feed")
            self._task = None

    def wake(self) -> None:
        """Read the feed now rather than at the next interval (this node changed a row)."""
        self._woken.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self._interval)
            self._woken.clear()
            try:
                await self.poll()
                now = time.monotonic()
                if now - self._pruned_at >= PRUNE_EVERY:
                    self._pruned_at = now
                    cutoff = datetime.now(UTC).replace(tzinfo=None)
                    await self._feed.prune_directory_changes(
                        cutoff - timedelta(seconds=self._retention)
                    )
                if self._failing:
                    self._failing = False
                    log.warning("directory feed readable again")
            except StoreError as exc:
                if not self._failing:
                    self._failing = True
                    log.warning("directory feed unreadable (%s); retrying", exc)

    async def poll(self) -> Revocation | None:
        """Read every change since the last poll, forget them, report what access ended.
        StoreError when the database cannot be read (nothing is lost: the next poll
        starts from the same position)."""
        stale = time.monotonic() - self._read_at > self._retention / 2
        changes: list[DirectoryChange] = []
        after = self._position
        while True:
            page = await self._feed.directory_changes(after, limit=PAGE)
            changes += page
            if len(page) < PAGE:
                break
            after = page[-1].position
        self._read_at = time.monotonic()
        if stale:
            log.warning("directory feed not read for a long time: forgetting every cached entry")
            self._forget(set(), set())
        if not changes:
            return None
        last: dict[tuple[ChangeKind, uuid.UUID], ChangeOp] = {}
        for change in changes:
            last[(change.kind, change.entity_id)] = change.op
        users = {i for k, i in last if k is ChangeKind.USER}
        couples = {i for k, i in last if k is ChangeKind.COUPLE}
        self._forget(users, couples)
        # Inserts take nothing away; an update of a user may be the account's deletion.
        gone = {i for (k, i), op in last.items() if k is ChangeKind.USER and op is ChangeOp.DELETE}
        updated = [
            i for (k, i), op in last.items() if k is ChangeKind.USER and op is ChangeOp.UPDATE
        ]
        if updated:
            now_users = await self._db.get_users(updated)
            gone |= {
                i for i in updated if (u := now_users.get(i)) is None or u.deleted_at is not None
            }
        now: dict[uuid.UUID, Couple | None] = {}
        for (kind, couple_id), op in last.items():
            if kind is ChangeKind.COUPLE and op is not ChangeOp.INSERT:
                now[couple_id] = (
                    None if op is ChangeOp.DELETE else await self._db.get_couple(couple_id)
                )
        self._position = changes[-1].position
        if not gone and not now:
            return None
        revocation = Revocation(frozenset(gone), now)
        if self.handler is not None:
            try:
                self.handler(revocation)
            except Exception:
                log.exception("the revocation handler failed")
        return revocation


def _log_stop(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped", task.get_name(), exc_info=task.exception())
