"""The write pipeline: commit -> acknowledge -> publish, as separate steps.

Writer tasks (one on SQLite, ``IEUM_WRITE_CONCURRENCY`` on PostgreSQL, each owning a share of
the couples) take the pending messages and changes and store whatever has queued up in one
transaction (group commit across couples). Then, in this order, in the same writer:

1. acknowledge: each sender's future is resolved and its ``acknowledge`` hook called at once,
   so the RECEIPT is written before anything of the batch is published (a RECEIPT means
   durable, and a sender sees it ahead of its own message's broadcast);
2. publish: each new message is serialised once and given to the broker, which fans it out
   to this node's sockets and to the other nodes. Neither waits: a broker's ``publish``
   returns without suspending (it queues what it sends to its backend, boundedly) and the
   sockets' handlers only queue frames, each transport bounded. So a slow socket or broker
   never holds up a commit, and the acknowledgement and the publication of a batch are
   written to the sockets in the same loop turn (a sender's RECEIPT and its own copy of the
   message leave in one write).

On PostgreSQL, a writer that finds more queued when a batch is stored sends the next batch's
transactions before it acknowledges and publishes this one, so the database commits the next
batch while the process answers for the last; the batches are still acknowledged and
published one at a time, in the order they were stored.

Once a batch is committed, the commit hooks hear which couples' streams moved (the delivery
engine turns them into pushes and webhooks), after the acknowledgements and before the
publication; a hook only takes note, it never waits.

Changes to sent messages (edit, unsend, reactions, delete for me) and read marks are queued to
the couple's writer behind its messages, committed in batches (``Database.apply_changes``),
acknowledged, then published as events with their own seq in the couple's stream (a hide goes
to its member's sessions only). Typing and presence events are published at once
(:meth:`WritePipeline.publish`); as every publication happens on the loop, in the order of the
calls, a couple's channel carries events in the order they were committed. A failed publish is
logged, never reported as a failed send: the message is stored, and a client that missed it
catches up by seq.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Set
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from ieum_chat.aio import finish_within, stop_tasks
from ieum_chat.broker import Broker
from ieum_chat.chat import codec
from ieum_chat.chat.envelope import channel_for, pack
from ieum_chat.chat.pending import (
    Outgoing,
    PendingChange,
    PendingMessage,
    refusal_error,
)
from ieum_chat.config import Settings
from ieum_chat.errors import BrokerError, SendNotStored, StoreError
from ieum_chat.observability import metrics
from ieum_chat.store import Database
from ieum_chat.store.records import Appended, Changed, ChangeKind, Event, Hide, Refused

__all__ = ["MAX_BATCH", "WritePipeline"]

log = logging.getLogger(__name__)

MAX_BATCH = 512
# Tallies of the writer's metrics (bound once: labels() looks the child up under a lock).
_MESSAGES_TRANSACTION = metrics.histogram_tally(metrics.WRITE_TRANSACTION.labels("messages"))
_CHANGES_TRANSACTION = metrics.histogram_tally(metrics.WRITE_TRANSACTION.labels("changes"))
_BATCH_SIZE = metrics.histogram_tally(metrics.WRITE_BATCH_SIZE)
_SEND_TO_COMMIT = metrics.histogram_tally(metrics.SEND_TO_COMMIT)
_COMMIT_TO_DELIVERY = metrics.histogram_tally(metrics.COMMIT_TO_DELIVERY)
_STORED = metrics.counter_tally(metrics.MESSAGES_STORED)
WRITER_STOP_TIMEOUT = 1.0  # seconds for the writer tasks to end once cancelled


class WritePipeline:
    def __init__(self, db: Database, broker: Broker, settings: Settings, zone: ZoneInfo) -> None:
        self.db = db
        self.broker = broker
        self.settings = settings
        self.zone = zone
        self._queues: list[asyncio.Queue[PendingMessage | PendingChange]] = []
        self._writers: list[asyncio.Task[None]] = []
        self._commit_hooks: list[Callable[[Set[uuid.UUID]], None]] = []

    def on_commit(self, hook: Callable[[Set[uuid.UUID]], None]) -> None:
        """Call ``hook`` with the couples whose streams a committed batch moved."""
        self._commit_hooks.append(hook)

    def _committed(self, couple_ids: Set[uuid.UUID]) -> None:
        for hook in self._commit_hooks:
            try:
                hook(couple_ids)
            except Exception:  # a bug in a hook must not fail the batch's publication
                log.exception("commit hook failed")

    async def start(self) -> None:
        # One writer by default: what queues during a commit goes in the next, so batches
        # grow with the load, and on PostgreSQL fewer, larger commits cost the database less
        # (at half of the bench's peak, one writer took a sixth less CPU, server and
        # database together, than two, for the same peak). Several keep a database that is
        # far away busy while one waits. On SQLite the store serialises write transactions
        # anyway, so one writer is all it can use. Each couple always goes to the same
        # writer, so its messages commit (and get their seqs) in the order they arrived;
        # different couples commit in parallel.
        count = 1 if self.db.dialect == "sqlite" else self.settings.write_concurrency
        # PostgreSQL commits the next batch in its own process while this one answers for
        # the last. SQLite's transactions run on a thread of this process: overlapping them
        # with the answers only had the two threads take turns at the GIL (a few % fewer
        # messages/s at the bench's peak).
        overlap = self.db.dialect != "sqlite"
        size = max(1, self.settings.write_queue // count)
        self._queues = [asyncio.Queue(maxsize=size) for _ in range(count)]
        self._writers = [
            asyncio.create_task(self._write_loop(queue, overlap), name=f"chat-writer-{i}")
            for i, queue in enumerate(self._queues)
        ]
        for task in self._writers:
            task.add_done_callback(_log_stop)

    @property
    def started(self) -> bool:
        return bool(self._writers)

    async def close(self, grace: float = 10.0) -> None:
        """Finish the items already queued (stored, acknowledged, published; for at most
        ``grace`` seconds), then stop the writers. A message not committed by then gets no
        RECEIPT: its sender re-sends it."""
        if not self._writers:
            return
        await finish_within(
            asyncio.gather(*(queue.join() for queue in self._queues)),
            max(0.0, grace - WRITER_STOP_TIMEOUT),
            "committing the queued messages",
        )
        await stop_tasks(self._writers, WRITER_STOP_TIMEOUT, "chat writers")
        self._writers = []

    def _queue_for(self, couple_id: uuid.UUID) -> asyncio.Queue[PendingMessage | PendingChange]:
        return self._queues[couple_id.int % len(self._queues)]

    def has_room(self, couple_id: uuid.UUID) -> bool:
        """Whether the couple's write queue takes one more item without waiting."""
        return not self._queue_for(couple_id).full()

    def put_nowait(self, pending: PendingMessage | PendingChange) -> None:
        """Queue ``pending`` behind its couple's items (:meth:`has_room` said yes)."""
        self._queue_for(pending.new.couple_id).put_nowait(pending)

    async def put(self, pending: PendingMessage | PendingChange) -> None:
        """Queue ``pending`` behind its couple's items, waiting for room (the queue is
        bounded: a whole queue behind, senders wait)."""
        await self._queue_for(pending.new.couple_id).put(pending)

    async def _write_loop(
        self, queue: asyncio.Queue[PendingMessage | PendingChange], overlap: bool
    ) -> None:
        """Store what has queued up, then acknowledge and publish it. With ``overlap``, if
        more has queued up by the time a batch is stored, the next batch's transactions are
        sent first and the database works on them while this one is acknowledged and
        published (the writer would otherwise leave the database idle for that while: about
        a fifth of the time at the bench's peak). Batches are acknowledged and published
        one after the other, in the order they were stored."""
        stored: _Stored | None = None
        while True:
            batch = _take_queued(queue, [] if stored is not None else [await queue.get()])
            if stored is not None and not batch:
                await self._finish(stored, queue)
                stored = None
                continue
            # Sent on this call, before the previous batch's task first runs.
            finishing = (
                None if stored is None else asyncio.ensure_future(self._finish(stored, queue))
            )
            # The previous batch is answered whatever becomes of this one (a cancellation
            # included), and only then is this one's failure raised.
            outcome = await _settled(self._store(batch))
            if finishing is not None:
                await finishing
            if isinstance(outcome, BaseException):
                raise outcome
            stored = outcome
            if not overlap:
                await self._finish(stored, queue)
                stored = None

    async def _store(self, batch: list[PendingMessage | PendingChange]) -> _Stored:
        """Commit a writer's batch: its messages in one transaction, then its changes in
        another, two commits a batch however the two kinds interleave. A change only names
        a message whose id its client already had, so one queued before it: committing the
        batch's messages first keeps that order. A message queued after a change and
        committed before it came from another request, concurrent with the change (a STOMP
        session reads its next frame only once its change is committed), so no client sees
        its own requests reordered. A transaction that fails fails its items here."""
        stored = _Stored(batch)
        sends = [p for p in batch if isinstance(p, PendingMessage)]
        changes = [p for p in batch if isinstance(p, PendingChange)]
        if sends:
            started = time.perf_counter()
            try:
                appended = await self.db.append_messages([p.new for p in sends])
            except Exception as exc:
                self._fail_batch(sends, "message", exc)
            else:
                committed = time.perf_counter()
                _MESSAGES_TRANSACTION.observe(committed - started)
                stored.appended = (sends, appended, committed)
        if changes:
            started = time.perf_counter()
            try:
                applied = await self.db.apply_changes(
                    [p.new for p in changes], unsend_window=self.settings.unsend_window
                )
            except Exception as exc:
                self._fail_batch(changes, "change", exc)
            else:
                committed = time.perf_counter()
                _CHANGES_TRANSACTION.observe(committed - started)
                stored.applied = (changes, applied, committed)
        return stored

    async def _finish(
        self, stored: _Stored, queue: asyncio.Queue[PendingMessage | PendingChange]
    ) -> None:
        """Acknowledge and publish a stored batch: its messages, then its changes."""
        try:
            if stored.appended is not None:
                await self._messages_stored(*stored.appended)
            if stored.applied is not None:
                await self._changes_applied(*stored.applied)
        finally:
            for _ in stored.batch:
                queue.task_done()

    @staticmethod
    def _fail_batch(
        batch: list[PendingMessage] | list[PendingChange], what: str, exc: Exception
    ) -> None:
        """The batch's transaction failed: nothing of it is stored. A database failure is
        SEND_FAILED with each tempId (retry); anything else is a bug, failed loudly, and the
        writer goes on."""
        if isinstance(exc, StoreError):
            log.error("storing %d %ss failed: %s", len(batch), what, exc)
        else:
            log.exception("unexpected failure storing %d %ss", len(batch), what)
        for pending in batch:
            error: BaseException = (
                SendNotStored(f"the {what} could not be stored", temp_id=pending.new.temp_id)
                if isinstance(exc, StoreError)
                else exc
            )
            pending.fail(error)

    async def _messages_stored(
        self, batch: list[PendingMessage], results: list[Appended], committed: float
    ) -> None:
        _BATCH_SIZE.observe(len(batch))
        # Acknowledge: every sender's RECEIPT is written here, before any publication.
        fresh: list[Outgoing] = []
        for pending, stored in zip(batch, results, strict=True):
            _SEND_TO_COMMIT.observe(committed - pending.queued_at)
            if isinstance(stored, Refused):
                # This message only: the rest of the batch is stored.
                log.info("message refused: %s", stored.detail)
                pending.fail(refusal_error(stored, pending.new.temp_id))
                continue
            pending.succeed(stored.message)
            if stored.created:
                fresh.append((stored.message, pending.sender, pending.quoted))
        _STORED.inc(len(fresh))
        if fresh:
            self._committed({item[0].couple_id for item in fresh if isinstance(item, tuple)})
        # Publish (a repeated tempId is answered, not broadcast again).
        if fresh:
            await self._publish_batch(await self._requoted(fresh), committed)

    async def _requoted(self, fresh: list[Outgoing]) -> list[Outgoing]:
        """The replies of a committed batch with the messages they answer read again: an
        edit or unsend of the quoted message may have committed between the reply's accept
        and its commit (with a lower seq, so no later event would fix the preview). Read
        after the commit, the preview is at least as new as the reply's seq."""
        ids = [item[0].reply_to_id for item in fresh if isinstance(item, tuple) and item[2]]
        if not ids:
            return fresh
        try:
            now = await self.db.messages_by_id([i for i in ids if i is not None])
        except StoreError as exc:
            log.warning("re-reading %d quoted messages failed: %s", len(ids), exc)
            return fresh
        requoted: list[Outgoing] = []
        for item in fresh:
            if isinstance(item, tuple):
                message, sender, quoted = item
                if quoted is not None and message.reply_to_id is not None:
                    requoted.append((message, sender, now.get(message.reply_to_id, quoted)))
                    continue
            requoted.append(item)
        return requoted

    async def _changes_applied(
        self, batch: list[PendingChange], results: list[Changed], committed: float
    ) -> None:
        fresh: list[Outgoing] = []
        for pending, result in zip(batch, results, strict=True):
            if isinstance(result, Refused):
                log.info("change refused: %s", result.detail)
                pending.fail(refusal_error(result, pending.new.temp_id))
                continue
            pending.succeed(result)
            if not result.created:
                continue  # a repeated tempId: answered, not broadcast again
            made = result.event if result.event is not None else result.hide
            if made is not None:
                metrics.MESSAGE_CHANGES.labels(pending.new.kind.value).inc()
                fresh.append(made)
        moved = {item.couple_id for item in fresh if isinstance(item, Event)}
        if moved:
            self._committed(moved)
        if fresh:
            await self._publish_batch(fresh, committed)

    def depth(self) -> int:
        """Items waiting for a writer, all queues together."""
        return sum(queue.qsize() for queue in self._queues)

    async def _publish_batch(self, items: list[Outgoing], committed_at: float) -> None:
        """Serialise each item of a committed batch once and hand it to the broker, in
        commit order. This never waits (see the module's docstring)."""
        for outgoing in items:
            try:
                await self._publish_outgoing(outgoing)
            except Exception:  # a bug: drop this item, keep the writer and the rest
                log.exception("publishing failed")
        _COMMIT_TO_DELIVERY.observe(time.perf_counter() - committed_at)

    async def _publish_outgoing(self, outgoing: Outgoing) -> None:
        if isinstance(outgoing, Event):
            if outgoing.kind is ChangeKind.READ:
                metrics.READ_RECEIPTS.inc()
            body = codec.event_json(outgoing, self.zone)
            await self.publish(outgoing.couple_id, pack(outgoing.seq, body))
        elif isinstance(outgoing, Hide):
            body = codec.dumps(codec.hide_dict(outgoing, self.zone))
            payload = pack(0, body, audience=outgoing.user_id)
            await self.publish(outgoing.couple_id, payload)
        else:
            message, sender, quoted = outgoing
            body = codec.message_json(message, sender, self.zone, quoted)
            await self.publish(message.couple_id, pack(message.seq, body))

    async def publish(self, couple_id: uuid.UUID, payload: bytes) -> None:
        """Publish one payload on the couple's channel now, behind everything published
        before it (a committed batch's items, a read receipt, typing, presence; also while
        the node shuts down). A broker failure is logged: the payload is not a send."""
        try:
            await self.broker.publish(channel_for(couple_id), payload)
        except BrokerError as exc:
            log.warning("publish to couple %s failed: %s", couple_id, exc)


@dataclass(slots=True)
class _Stored:
    """A batch whose transactions have run: what each stored, and when, or ``None`` where
    there was nothing to store or the transaction failed (its items are failed already)."""

    batch: list[PendingMessage | PendingChange]
    appended: tuple[list[PendingMessage], list[Appended], float] | None = None
    applied: tuple[list[PendingChange], list[Changed], float] | None = None


async def _settled(store: Awaitable[_Stored]) -> _Stored | BaseException:
    """What ``store`` gave, or what it raised, so that the caller can await something else
    before raising it: outside an ``except`` or ``finally`` block, as a compiled coroutine
    must (see ``ieum_chat._build``)."""
    try:
        return await store
    except BaseException as exc:
        return exc


def _take_queued(
    queue: asyncio.Queue[PendingMessage | PendingChange],
    batch: list[PendingMessage | PendingChange],
) -> list[PendingMessage | PendingChange]:
    """``batch`` with what is queued added, without waiting, up to ``MAX_BATCH`` items."""
    while len(batch) < MAX_BATCH:
        try:
            batch.append(queue.get_nowait())
        except asyncio.QueueEmpty:
            break
    return batch


def _log_stop(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped", task.get_name(), exc_info=task.exception())
