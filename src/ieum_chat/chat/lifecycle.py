"""The app's backend drives users and couples: create and update users, pair them, dissolve
couples, delete accounts; and the purge that erases what ended couples and deleted accounts
leave behind once ``IEUM_DISSOLVED_RETENTION_DAYS`` have passed.

The service API and the CLI call these; the store does each in one transaction. What follows
a dissolution or a deletion on every node (the sessions ended, the caches dropped, the tokens
refused) follows from the rows changing: the directory feed (``chat.directory``) tells every
node within about a second; the node that made the change is woken at once, and so are its
end hooks (the delivery engine: ``couple.dissolved`` and ``user.erased`` webhooks).

The purge runs on every node's schedule but one node at a time (``maintenance_runs``: the
node that moves the job's next run forward runs it), and is safe to run again: uploads go
before the rows that list their couple, so a purge that stops half way is finished by the
next one. ``ieum-chat purge`` runs the same code.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ieum_chat.chat.jobs import PeriodicJob, node_name
from ieum_chat.config import Settings
from ieum_chat.errors import BadRequest, Conflict, NotFound
from ieum_chat.observability import metrics
from ieum_chat.store import Database
from ieum_chat.store.couples import PairingRefusal, PairingRefused
from ieum_chat.store.lifecycle import PurgePlan
from ieum_chat.store.records import Couple, User
from ieum_chat.store.schema import utcnow
from ieum_chat.uploads import UploadBackend

__all__ = ["Lifecycle", "PurgeReport"]

log = logging.getLogger(__name__)

# (couples dissolved, accounts deleted)
EndHook = Callable[[Collection[uuid.UUID], Collection[uuid.UUID]], None]

PURGE_JOB = "purge"
SCHEDULE_CHECK = 300.0  # seconds between a node's looks at whether the purge is due


@dataclass(slots=True)
class PurgeReport:
    """What a purge erased (or, dry, would erase)."""

    cutoff: datetime
    plan: PurgePlan
    dry_run: bool
    uploads: int = 0
    erased_couples: list[uuid.UUID] = field(default_factory=list)
    erased_users: int = 0

    def lines(self) -> list[str]:
        """One line per couple and account, then a total: what ``ieum-chat purge`` prints."""
        verb = "would erase" if self.dry_run else "erased"
        out = [
            f"{verb} couple {c.couple_id} (dissolved {c.dissolved_at.isoformat()}Z): "
            f"{c.messages} messages, {c.events} events, {c.hides} hides"
            for c in self.plan.couples
        ]
        out += [f"{verb} user {u}" for u in self.plan.users]
        files = "" if self.dry_run else f", {self.uploads} files (uploads and their thumbnails)"
        out.append(
            f"{verb} {len(self.plan.couples)} couples and {len(self.plan.users)} accounts "
            f"ended before {self.cutoff.isoformat()}Z{files}"
        )
        return out


class Lifecycle:
    def __init__(
        self,
        db: Database,
        uploads: UploadBackend | None,
        settings: Settings,
        *,
        changed: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._uploads = uploads
        self._settings = settings
        self._changed = changed  # wakes this node's directory reader after a change
        self._job = PeriodicJob(
            db,
            PURGE_JOB,
            self.purge,
            every=settings.purge_interval,
            check=SCHEDULE_CHECK,
            node=node_name(),
        )
        self._end_hooks: list[EndHook] = []

    def on_end(self, hook: EndHook) -> None:
        """Call ``hook(couple_ids, user_ids)`` after couples were dissolved or accounts
        deleted here."""
        self._end_hooks.append(hook)

    def _ended(self, couple_ids: Collection[uuid.UUID], user_ids: Collection[uuid.UUID]) -> None:
        for hook in self._end_hooks:
            try:
                hook(couple_ids, user_ids)
            except Exception:  # a hook's bug must not fail the call that was done
                log.exception("end hook failed")

    # -- users and couples -----------------------------------------------------------------

    async def upsert_user(self, user: User) -> bool:
        """Create or update a user; whether it was created. :class:`BadRequest` for a name
        the column cannot hold, :class:`Conflict` for a deleted account's id."""
        try:
            created = await self._db.upsert_user(user)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if created is None:
            raise Conflict(f"user {user.id} was deleted; a deleted account is not re-created")
        metrics.LIFECYCLE_EVENTS.labels("user_upserted").inc()
        self._notify()
        return created

    async def create_couple(self, user_a: uuid.UUID, user_b: uuid.UUID) -> Couple:
        """Pair two users: :class:`BadRequest` (the same user twice), :class:`NotFound` (an
        unknown or deleted user), :class:`Conflict` (either is in an active couple)."""
        try:
            couple = await self._db.create_couple(user_a, user_b)
        except PairingRefused as exc:
            error = {
                PairingRefusal.SAME_USER: BadRequest,
                PairingRefusal.UNKNOWN_USER: NotFound,
                PairingRefusal.ALREADY_PAIRED: Conflict,
            }[exc.reason]
            raise error(str(exc)) from None
        metrics.LIFECYCLE_EVENTS.labels("couple_created").inc()
        return couple

    async def dissolve(self, couple_id: uuid.UUID) -> Couple:
        """End the couple everywhere (idempotent); :class:`NotFound` if there is none."""
        now = utcnow()
        couple = await self._db.dissolve_couple(couple_id, now=now)
        if couple is None:
            raise NotFound(f"no couple {couple_id}")
        if couple.dissolved_at == now:  # this call ended it; a repeat keeps the first time
            metrics.LIFECYCLE_EVENTS.labels("couple_dissolved").inc()
            log.info("couple %s dissolved", couple_id)
        # The readers and hooks below are woken on a repeat too: waking them is harmless.
        self._notify()
        self._ended([couple_id], [])
        return couple

    async def delete_user(self, user_id: uuid.UUID) -> tuple[User, Couple | None]:
        """Delete the account (idempotent): its sessions end and its tokens are refused on
        every node, its couple is dissolved; :class:`NotFound` if there is no such user."""
        now = utcnow()
        result = await self._db.delete_user(user_id, now=now)
        if result is None:
            raise NotFound(f"no user {user_id}")
        if result[0].deleted_at == now:  # this call deleted it
            metrics.LIFECYCLE_EVENTS.labels("user_deleted").inc()
            log.info("user %s deleted", user_id)
        self._notify()
        self._ended([result[1].id] if result[1] is not None else [], [user_id])
        return result

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed()

    # -- erasure ---------------------------------------------------------------------------

    def cutoff(self, now: datetime) -> datetime:
        """Couples dissolved before this are erased: the retention period ago, and never
        sooner than the upload URLs handed out before the dissolution expire (a file could
        otherwise land after its couple's files were deleted)."""
        retention = timedelta(days=self._settings.dissolved_retention_days)
        return now - max(retention, timedelta(seconds=self._settings.upload_ttl))

    async def purge(self, *, dry_run: bool = False, now: datetime | None = None) -> PurgeReport:
        """Erase every couple dissolved, and account deleted, before the retention period:
        uploads first, then the couple's rows (one transaction per couple), then the
        accounts no couple refers to any more."""
        cutoff = self.cutoff(now or utcnow())
        report = PurgeReport(cutoff, await self._db.purge_plan(cutoff), dry_run)
        if dry_run:
            return report
        for couple in report.plan.couples:
            if self._uploads is not None:
                removed = await asyncio.to_thread(self._uploads.delete_files, couple.couple_id)
                report.uploads += removed
                metrics.PURGED.labels("uploads").inc(removed)
            if await self._db.erase_couple(couple.couple_id, cutoff):
                report.erased_couples.append(couple.couple_id)
                metrics.PURGED.labels("couples").inc()
                metrics.PURGED.labels("messages").inc(couple.messages)
                metrics.PURGED.labels("events").inc(couple.events)
                metrics.PURGED.labels("hides").inc(couple.hides)
        report.erased_users = await self._db.erase_users(report.plan.users, cutoff)
        metrics.PURGED.labels("users").inc(report.erased_users)
        if report.erased_couples or report.erased_users:
            log.info(
                "purge: erased %d couples, %d accounts, %d uploads",
                len(report.erased_couples),
                report.erased_users,
                report.uploads,
            )
        return report

    async def start(self) -> None:
        """Run the purge every ``IEUM_PURGE_INTERVAL`` seconds, one node at a time."""
        self._job.start()

    async def close(self) -> None:
        await self._job.close()
