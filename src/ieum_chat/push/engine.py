"""The delivery engine: pushes and webhooks owed by committed changes, sent at least once,
each by one node, none lost to a restart.

Three kinds of task, on every node:

- the *materializer* turns a couple's stream past a consumer's cursor into delivery rows
  (``decide``) and moves the cursor in the same transaction (``store.deliveries``): told of
  commits by this node's write pipeline at once, and of other nodes' (or a crashed run's) by
- the *sweeper*, which lists every stream behind its cursor at start and then every few
  seconds, and keeps the backlog gauge;
- one *sender* per channel (each configured provider, the webhook): it claims due rows
  (leased until the request's timeout has surely passed), sends them with at most
  ``IEUM_PUSH_CONCURRENCY`` requests in flight, and then forgets them (accepted, a dead token
  whose device it removes, a request refused for good) or puts them back with a back-off.
  Webhook rows are claimed one per couple at a time, so they reach the receiver in seq order;
  after a failed webhook the whole channel waits (the receiver is down for everyone).

A slow or hanging provider holds only its own sender's slots: every request is bounded by
``IEUM_PUSH_TIMEOUT``, and nothing here runs on the chat's send path. The requests run on an
event loop of their own (``push.ioloop``), where the chat's traffic does not slow them down.
A node killed between a provider's acceptance and the row's deletion sends that push again
once its lease ends: at least once, with the couple as collapse key so the phone shows it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Iterable, Mapping
from datetime import datetime, timedelta

import orjson

from ieum_chat.aio import stop_tasks
from ieum_chat.config import Settings
from ieum_chat.errors import StoreError
from ieum_chat.observability import metrics
from ieum_chat.push import render
from ieum_chat.push.decide import WEBHOOK, owed_pushes, owed_webhooks
from ieum_chat.push.ioloop import IoLoop
from ieum_chat.push.providers.base import Outcome, Provider, Result, Target, WebPushSubscription
from ieum_chat.push.watch import DeviceWatch
from ieum_chat.push.webhooks import WebhookSender
from ieum_chat.store import Database
from ieum_chat.store.deliveries import Cursor, Delivery, NewDelivery
from ieum_chat.store.schema import utcnow

__all__ = ["PUSH", "WEBHOOK", "DeliveryEngine"]

log = logging.getLogger(__name__)

PUSH = "push"
SWEEP_INTERVAL = 5.0  # seconds between two looks for streams behind their cursor
POLL_INTERVAL = 1.0  # seconds a sender waits for a wake-up before looking for due rows
MATERIALIZE_CONCURRENCY = 8  # couples whose streams are read at once
STREAM_SLICE = 200  # seqs read per step of one stream
FINISH_BATCH = 200  # rows forgotten per transaction
_MAX_RETRY_AFTER = 3600.0


class DeliveryEngine:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        providers: Mapping[str, Provider],
        webhook: WebhookSender | None,
        watch: DeviceWatch,
    ) -> None:
        self.db = db
        self.settings = settings
        self.providers = dict(providers)
        self.webhook = webhook
        self.watch = watch
        self.consumers = ([PUSH] if self.providers else []) + ([WEBHOOK] if webhook else [])
        self._since: dict[str, datetime] = {}
        self._dirty: set[uuid.UUID] = set()
        self._users: set[uuid.UUID] = set()
        self._work = asyncio.Event()
        self._channels = [*self.providers, *([WEBHOOK] if webhook else [])]
        self._wake = {channel: asyncio.Event() for channel in self._channels}
        self._done: list[tuple[str, int]] = []
        self._flush = asyncio.Event()
        self._paused_until = 0.0  # loop time before which no webhook is tried (receiver down)
        self._webhook_failures = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._io = IoLoop()  # the requests' own loop (push.ioloop)

    @property
    def enabled(self) -> bool:
        return bool(self.consumers)

    async def start(self) -> None:
        if not self.enabled:
            return
        for consumer in self.consumers:
            self._since[consumer] = await self.db.consumer_since(consumer)
        await self.watch.start()
        self._io.start()
        for provider in self.providers.values():
            await self._io.run(provider.start())
        loops = [self._materialize_loop(), self._sweep_loop(), self._finish_loop()]
        loops += [self._send_loop(channel) for channel in self._channels]
        self._tasks = [asyncio.create_task(loop, name="deliveries") for loop in loops]
        for task in self._tasks:
            task.add_done_callback(_log_stop)

    async def close(self) -> None:
        await stop_tasks(self._tasks, 2.0, "delivery engine")
        self._tasks = []
        await self._finish_now()
        if self.enabled:
            for provider in self.providers.values():
                await self._io.run(provider.close())
            if self.webhook is not None:
                await self._io.run(self.webhook.close())
            self._io.stop()
        if self.enabled:
            await self.watch.close()

    # -- what is owed --------------------------------------------------------------------

    def notify(self, couple_ids: Iterable[uuid.UUID]) -> None:
        """These couples' streams moved (committed here, or ended): look at them soon."""
        if self.enabled:
            self._dirty.update(couple_ids)
            self._work.set()

    def ended(self, couple_ids: Iterable[uuid.UUID], user_ids: Iterable[uuid.UUID]) -> None:
        """Couples were dissolved and accounts deleted here (the lifecycle's end hook)."""
        self.notify(couple_ids)
        for user_id in user_ids:
            self.notify_user(user_id)

    def notify_user(self, user_id: uuid.UUID) -> None:
        """This account was deleted: its webhook is owed."""
        if WEBHOOK in self.consumers:
            self._users.add(user_id)
            self._work.set()

    async def _materialize_loop(self) -> None:
        while True:
            await self._work.wait()
            self._work.clear()
            couples, self._dirty = list(self._dirty), set()
            users, self._users = list(self._users), set()
            for start in range(0, len(couples), MATERIALIZE_CONCURRENCY):
                chunk = couples[start : start + MATERIALIZE_CONCURRENCY]
                await asyncio.gather(*(self._stream(c) for c in chunk))
            for user_id in users:
                await self._guarded(self._user(user_id), f"user {user_id}")

    async def _stream(self, couple_id: uuid.UUID) -> None:
        for consumer in self.consumers:
            await self._guarded(self._consume(consumer, couple_id), f"couple {couple_id}")

    async def _guarded(self, work: Awaitable[None], what: str) -> None:
        try:
            await work
        except StoreError as exc:  # the sweeper comes back to it
            log.warning("deliveries of %s not decided: %s", what, exc)
        except Exception:
            log.exception("deliveries of %s not decided", what)

    async def _consume(self, consumer: str, couple_id: uuid.UUID) -> None:
        while True:
            owed = await self.db.owed(
                consumer,
                couple_id,
                self._since[consumer],
                limit=STREAM_SLICE,
                for_push=consumer == PUSH,
                for_webhook=consumer == WEBHOOK,
            )
            if owed.couple is None:
                return
            if consumer == PUSH:
                rows = await owed_pushes(self.watch, owed, self.providers.keys())
                closed = owed.cursor.closed
            else:
                rows, closed = owed_webhooks(owed, self.settings.zone)
            new = Cursor(owed.last_seq, closed)
            if new == owed.cursor:
                return
            if not await self.db.advance(consumer, couple_id, owed.cursor, new, rows):
                return  # another node (or run) moved it: those deliveries are its
            self._woken(rows)
            if owed.complete:
                return

    async def _user(self, user_id: uuid.UUID) -> None:
        owed = await self.db.owed_user(WEBHOOK, user_id, self._since[WEBHOOK])
        if owed.cursor.closed or owed.deleted_at is None:
            return
        body = render.user_erased(user_id, owed.deleted_at, self.settings.zone)
        row = NewDelivery(WEBHOOK, body.decode(), owed.deleted_at, queue=f"user:{user_id}")
        if await self.db.advance(WEBHOOK, user_id, owed.cursor, Cursor(0, True), [row]):
            self._woken([row])

    def _woken(self, rows: Iterable[NewDelivery]) -> None:
        for channel in {row.channel for row in rows}:
            if channel in self._wake:
                self._wake[channel].set()

    async def _sweep_loop(self) -> None:
        while True:
            try:
                for consumer in self.consumers:
                    couples, users = await self.db.owing_streams(
                        consumer, self._since[consumer], with_users=consumer == WEBHOOK
                    )
                    self.notify(couples)
                    for user_id in users:
                        self.notify_user(user_id)
                backlog = await self.db.delivery_backlog()
                for channel in self._channels:
                    metrics.DELIVERY_BACKLOG.labels(channel).set(backlog.get(channel, 0))
            except StoreError as exc:
                log.warning("looking for owed deliveries failed: %s", exc)
            await asyncio.sleep(SWEEP_INTERVAL)

    # -- sending -------------------------------------------------------------------------

    def _lease(self) -> datetime:
        return utcnow() + timedelta(seconds=2 * self.settings.push_timeout + 10)

    async def _send_loop(self, channel: str) -> None:
        loop = asyncio.get_running_loop()
        inflight: set[asyncio.Task[None]] = set()
        wake = self._wake[channel]
        limit = self.settings.push_concurrency
        while True:
            free = limit - len(inflight)
            claimed: list[Delivery] = []
            pause = self._paused_until - loop.time() if channel == WEBHOOK else 0.0
            if free > 0 and pause <= 0:
                try:
                    claimed = await self.db.claim(
                        channel, self._lease(), limit=free, in_order=channel == WEBHOOK
                    )
                except StoreError as exc:
                    log.warning("claiming %s deliveries failed: %s", channel, exc)
            for delivery in claimed:
                task = asyncio.create_task(self._deliver(channel, delivery))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                task.add_done_callback(lambda _: wake.set())
            if claimed and len(claimed) == free:
                continue  # more may be due
            wait = POLL_INTERVAL if pause <= 0 else min(POLL_INTERVAL, pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), wait)
            wake.clear()

    async def _deliver(self, channel: str, delivery: Delivery) -> None:
        try:
            if channel == WEBHOOK:
                await self._deliver_webhook(delivery)
            else:
                await self._deliver_push(channel, delivery)
        except StoreError as exc:  # the row's lease ends and it is tried again
            log.warning("%s delivery %d: %s", channel, delivery.id, exc)
        except Exception:
            log.exception("%s delivery %d failed", channel, delivery.id)

    async def _deliver_push(self, channel: str, delivery: Delivery) -> None:
        body = orjson.loads(delivery.payload)
        note = render.notification_from_json(body["note"])
        target_json = body["target"]
        age = (utcnow() - delivery.created_at).total_seconds()
        if age > note.ttl:
            metrics.PUSHES.labels(channel, "expired", "ttl").inc()
            self._finished(channel, delivery.id)
            return
        subscription = None
        if target_json.get("p256dh") and target_json.get("auth"):
            subscription = WebPushSubscription(
                target_json["token"], target_json["p256dh"], target_json["auth"]
            )
        target = Target(channel, target_json["token"], subscription)
        result = await self._bounded(self._io.run(self.providers[channel].send(target, note)))
        metrics.PUSHES.labels(channel, _RESULT[result.outcome], result.reason).inc()
        if result.outcome is Outcome.SENT:
            metrics.PUSH_LAG.labels(channel).observe(max(0.0, age))
            self._finished(channel, delivery.id)
        elif result.outcome is Outcome.DEAD:
            assert delivery.user_id is not None
            assert delivery.device_id is not None
            log.info(
                "push to %s device %s: token dead (%s), device removed",
                channel,
                delivery.device_id,
                result.reason,
            )
            await self.db.delete_device(delivery.user_id, delivery.device_id, token=target.token)
            self._finished(channel, delivery.id)
        elif result.outcome is Outcome.FAILED:
            log.warning("push %d to %s refused: %s", delivery.id, channel, result.reason)
            self._finished(channel, delivery.id)
        else:
            delay = self._backoff(delivery.attempts, result)
            await self.db.retry_at(delivery.id, utcnow() + timedelta(seconds=delay))

    async def _deliver_webhook(self, delivery: Delivery) -> None:
        assert self.webhook is not None
        result = await self._bounded(self._io.run(self.webhook.send(delivery.payload.encode())))
        metrics.WEBHOOKS.labels(_RESULT[result.outcome], result.reason).inc()
        if result.outcome is Outcome.SENT:
            self._webhook_failures = 0
            age = (utcnow() - delivery.created_at).total_seconds()
            metrics.WEBHOOK_LAG.observe(max(0.0, age))
            self._finished(WEBHOOK, delivery.id)
            return
        self._webhook_failures += 1
        delay = self._backoff(self._webhook_failures, result)
        self._paused_until = asyncio.get_running_loop().time() + delay
        log.warning(
            "webhook %d not accepted (%s): next try in %.1f s", delivery.id, result.reason, delay
        )
        await self.db.retry_at(delivery.id, utcnow() + timedelta(seconds=delay))

    async def _bounded(self, sending: Awaitable[Result]) -> Result:
        """A provider's own timeout bounds each request; this bounds a provider that
        forgot to."""
        try:
            async with asyncio.timeout(self.settings.push_timeout + 5):
                return await sending
        except TimeoutError:
            return Result(Outcome.RETRY, "timeout")

    def _backoff(self, attempts: int, result: Result) -> float:
        """Seconds until the next try: the provider's Retry-After, else doubling from a
        second up to ``IEUM_DELIVERY_RETRY_MAX``, with jitter."""
        if result.retry_after is not None:
            return min(max(result.retry_after, 0.0), _MAX_RETRY_AFTER)
        ceiling = self.settings.delivery_retry_max
        return float(min(ceiling, 0.5 * 2.0 ** min(attempts, 20)) * random.uniform(0.8, 1.0))

    # -- forgetting what was accepted ----------------------------------------------------

    def _finished(self, channel: str, delivery_id: int) -> None:
        self._done.append((channel, delivery_id))
        self._flush.set()

    async def _finish_loop(self) -> None:
        while True:
            await self._flush.wait()
            self._flush.clear()
            await self._finish_now()

    async def _finish_now(self) -> None:
        while self._done:
            batch, self._done = self._done[:FINISH_BATCH], self._done[FINISH_BATCH:]
            try:
                await self.db.finish([delivery_id for _, delivery_id in batch])
            except StoreError as exc:  # leased: each comes due again and is sent once more
                log.warning("forgetting %d deliveries failed: %s", len(batch), exc)
            for channel in {channel for channel, _ in batch}:
                self._wake[channel].set()  # a webhook queue's next row may be due now


_RESULT = {
    Outcome.SENT: "sent",
    Outcome.RETRY: "retried",
    Outcome.DEAD: "dead",
    Outcome.FAILED: "failed",
}


def _log_stop(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped", task.get_name(), exc_info=task.exception())
