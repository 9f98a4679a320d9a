"""The Redis broker: fan-out between nodes over Redis Pub/Sub (redis-py asyncio).

Local first. ``publish`` hands the payload to this node's handlers at once, then queues it for
Redis; every payload on Redis starts with the publishing node's 16-byte tag, and a node drops
its own echo. So each handler gets each payload once, this node's subscribers are served
while Redis is down, and a same-node delivery never waits for a network round trip.

Two kinds of connection, as Redis requires (a subscribed connection takes no other command):

* the pub/sub link: one dedicated connection, read by one task that dispatches every message
  to the channel's handlers (handlers only enqueue). A keepalive PING every few seconds finds
  a link that went silent. When the link breaks, the broker logs it, reconnects with capped
  exponential backoff, SUBSCRIBEs every channel again and, once Redis has confirmed them all,
  calls the resync handler: payloads of the outage are gone, and the gateway catches its
  subscribers up from the database (the source of truth).
* publishing: a small pool fed by one task from a bounded queue; each turn pipelines whatever
  has queued up. While Redis is unreachable the queue is dropped, not grown. When publishing
  works again after drops, the node broadcasts a resync request on a control channel, so
  that every other node catches up at once instead of at its next message.

Order: one node's payloads reach Redis in publish order and Redis keeps it per connection.
Two nodes may commit messages of one couple concurrently, so cross-node order is restored by
the gateway (by seq), not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import deque
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

from ieum_chat.aio import finish_within, stop_tasks
from ieum_chat.broker._redis import REDIS_ERRORS, make_pool
from ieum_chat.broker.base import Broker, Handler
from ieum_chat.errors import BrokerError

__all__ = ["RedisBroker"]

log = logging.getLogger(__name__)

TAG_SIZE = 16
MAX_BATCH = 512  # payloads per publishing pipeline
SUBSCRIBE_CHUNK = 1000  # channels per SUBSCRIBE command when resubscribing
LOG_EVERY = 20  # failed reconnect attempts between two log lines (about every 100 s)
STOP_TIMEOUT = 2.0  # seconds for the tasks to end, and for the connections to close, on close()


class _LinkLost(ConnectionError):
    """The pub/sub link stopped answering (an OSError, like the socket errors it stands for)."""


class RedisBroker(Broker):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "ieum:",
        publish_queue: int = 10_000,
        ping_interval: float = 5.0,
        subscribe_timeout: float = 5.0,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        self._prefix = prefix
        self._control = f"{prefix}broker:resync"
        self._tag = uuid.uuid4().bytes
        self._ping_interval = ping_interval
        self._subscribe_timeout = subscribe_timeout
        self._backoff = backoff
        # Checks the URL now: a bad one fails at start, not at the first reconnect.
        self._link_pool = make_pool(url, max_connections=1, socket_timeout=None)
        self._pool = make_pool(url, max_connections=4, socket_timeout=2.0)
        self._client: Redis = Redis(connection_pool=self._pool)
        self._handlers: dict[str, list[Handler]] = {}
        self._outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=publish_queue)
        self._tasks: set[asyncio.Task[None]] = set()
        self._link: AbstractConnection | None = None
        self._write_lock = asyncio.Lock()
        self._kill = asyncio.Event()  # set: the current link is dropped and remade
        self._confirm: dict[str, deque[asyncio.Future[None]]] = {}
        self._resubscribing: set[str] = set()
        self._whole = asyncio.Event()  # the link is up and every channel is subscribed
        self._lost = False  # payloads may have been missed since the link was last whole
        self._closed = False
        self._last_seen = 0.0
        self.dropped = 0  # payloads never handed to Redis (delivered locally only)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, *, wait: float = 2.0) -> None:
        """Start the link and the publisher; wait up to ``wait`` seconds for the link. A
        node whose Redis is down still starts (serving its own subscribers) and keeps
        reconnecting in the background."""
        self._spawn(self._link_loop(), "redis-broker-link")
        self._spawn(self._publish_loop(), "redis-broker-publish")
        try:
            await asyncio.wait_for(self._whole.wait(), wait)
        except TimeoutError:
            log.error("Redis is unreachable: serving this node only, reconnecting meanwhile")

    async def close(self) -> None:
        """Stop the link and the publisher; every wait has a deadline, whatever Redis does."""
        self._closed = True
        tasks, self._tasks = set(self._tasks), set()
        await stop_tasks(tasks, STOP_TIMEOUT, "Redis broker")
        self._handlers.clear()
        await finish_within(self._disconnect(), STOP_TIMEOUT, "Redis broker: disconnecting")

    async def _disconnect(self) -> None:
        await self._client.aclose()
        await self._pool.disconnect()
        await self._link_pool.disconnect()

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s stopped", task.get_name(), exc_info=task.exception())

    async def ping(self) -> None:
        if not self._whole.is_set():
            raise BrokerError("the Redis pub/sub link is down")
        try:
            await self._client.ping()
        except REDIS_ERRORS as exc:
            raise BrokerError(f"Redis is unreachable: {exc}") from exc

    def channel_count(self) -> int:
        return len(self._handlers)

    # -- publish ---------------------------------------------------------------------------

    async def publish(self, channel: str, payload: bytes) -> None:
        if self._closed:
            raise BrokerError("the broker is closed")
        self._dispatch(channel, payload)
        try:
            self._outbox.put_nowait((self._prefix + channel, self._tag + payload))
        except asyncio.QueueFull:
            self.dropped += 1
            raise BrokerError("the Redis publish queue is full") from None

    async def _publish_loop(self) -> None:
        delay = self._backoff[0]
        dropped_since_ok = 0
        # The loops end on the flag as well as on cancellation: the driver may lose a
        # cancellation that arrives while a reply is being read.
        while not self._closed:
            batch = [await self._outbox.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._outbox.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    if dropped_since_ok:
                        pipe.publish(self._control, self._tag)
                    for key, data in batch:
                        pipe.publish(key, data)
                    await pipe.execute()
            except REDIS_ERRORS as exc:
                if not dropped_since_ok:
                    log.warning("publishing to Redis failed (%s): delivering locally only", exc)
                # Drop what is queued: it is stored, and other nodes catch up by seq.
                lost = len(batch) + self._outbox.qsize()
                while not self._outbox.empty():
                    self._outbox.get_nowait()
                dropped_since_ok += lost
                self.dropped += lost
                await asyncio.sleep(_jitter(delay))
                delay = min(delay * 2, self._backoff[1])
                continue
            if dropped_since_ok:
                log.warning(
                    "publishing to Redis again; %d payloads reached this node only",
                    dropped_since_ok,
                )
                dropped_since_ok = 0
            delay = self._backoff[0]

    # -- subscribe -------------------------------------------------------------------------

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Returns once Redis confirmed the subscription, so that a later payload of any node
        reaches ``handler``. While Redis is down it returns at once: local payloads flow, and
        the resync after the reconnect covers the rest."""
        if self._closed:
            raise BrokerError("the broker is closed")
        handlers = self._handlers.get(channel)
        if handlers is not None:
            if handler not in handlers:
                handlers.append(handler)
            return
        self._handlers[channel] = [handler]
        link = self._link
        if link is None:
            self._lost = True
            return
        key = self._prefix + channel
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(key, deque()).append(confirmed)
        try:
            await self._send(link, "SUBSCRIBE", key)
            await asyncio.wait_for(asyncio.shield(confirmed), self._subscribe_timeout)
        except REDIS_ERRORS as exc:  # TimeoutError is an OSError
            # The link is sick: drop it; the reconnect subscribes everything and resyncs.
            log.warning("SUBSCRIBE %s not confirmed (%s): reconnecting", key, exc)
            self._lost = True
            self._drop_link(link)

    async def unsubscribe(self, channel: str, handler: Handler) -> None:
        handlers = self._handlers.get(channel)
        if handlers is None:
            return
        if handler in handlers:
            handlers.remove(handler)
        if handlers:
            return
        del self._handlers[channel]
        link = self._link
        if link is not None:
            try:
                await self._send(link, "UNSUBSCRIBE", self._prefix + channel)
            except REDIS_ERRORS:
                self._drop_link(link)  # resubscribing after the reconnect forgets it

    async def _send(self, link: AbstractConnection, *args: str) -> None:
        async with self._write_lock:
            await link.send_command(*args, check_health=False)

    def _drop_link(self, link: AbstractConnection) -> None:
        """Make the link loop close ``link`` and reconnect (then resync)."""
        if self._link is link:
            self._kill.set()

    # -- the link --------------------------------------------------------------------------

    async def _link_loop(self) -> None:
        delay = self._backoff[0]
        failures = 0  # attempts since the link was last whole
        while not self._closed:
            try:
                await self._run_link()
            except REDIS_ERRORS as exc:
                if self._whole.is_set():
                    log.warning("Redis pub/sub link lost (%s); reconnecting", exc)
                elif failures % LOG_EVERY == 0:
                    log.warning("Redis pub/sub link: attempt %d failed: %s", failures + 1, exc)
            except Exception:
                log.exception("Redis pub/sub link failed; reconnecting")
            finally:
                was_whole = self._whole.is_set()
                self._link = None
                self._whole.clear()
                self._resubscribing.clear()
                for waiters in self._confirm.values():
                    for future in waiters:
                        if not future.done():
                            future.set_result(None)  # the resync after reconnecting covers it
                self._confirm.clear()
            self._lost = True
            if was_whole:
                delay, failures = self._backoff[0], 0
            else:
                failures += 1
            await asyncio.sleep(_jitter(delay))
            delay = min(delay * 2, self._backoff[1])

    async def _run_link(self) -> None:
        link = self._link_pool.make_connection()  # type: ignore[no-untyped-call]
        self._kill = kill = asyncio.Event()
        try:
            await link.connect()
            self._link = link
            self._last_seen = asyncio.get_running_loop().time()
            keys = [self._control, *(self._prefix + channel for channel in self._handlers)]
            self._resubscribing = set(keys)
            for start in range(0, len(keys), SUBSCRIBE_CHUNK):
                await self._send(link, "SUBSCRIBE", *keys[start : start + SUBSCRIBE_CHUNK])
            tasks = {
                asyncio.create_task(self._read(link), name="redis-broker-read"),
                asyncio.create_task(self._keepalive(link), name="redis-broker-ping"),
                asyncio.create_task(kill.wait(), name="redis-broker-kill"),
            }
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                task.result()  # raise what ended the link
            raise _LinkLost("dropped as unhealthy")
        finally:
            with contextlib.suppress(Exception):
                await link.disconnect(nowait=True)

    async def _keepalive(self, link: AbstractConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._ping_interval)
            if loop.time() - self._last_seen > 3 * self._ping_interval:
                raise _LinkLost("no reply to PING")
            await self._send(link, "PING")

    async def _read(self, link: AbstractConnection) -> None:
        loop = asyncio.get_running_loop()
        while True:
            reply = await link.read_response()
            self._last_seen = loop.time()
            if not isinstance(reply, list) or len(reply) < 2:
                continue  # +PONG outside subscribed mode
            kind = reply[0]
            if kind == b"message" and len(reply) == 3:
                self._on_message(reply[1], reply[2])
            elif kind == b"subscribe":
                self._on_subscribed(reply[1].decode())

    def _on_subscribed(self, key: str) -> None:
        if key in self._resubscribing:
            self._resubscribing.discard(key)
            if not self._resubscribing:
                self._became_whole()
            return
        waiters = self._confirm.get(key)
        if waiters:
            future = waiters.popleft()
            if not waiters:
                del self._confirm[key]
            if not future.done():
                future.set_result(None)

    def _became_whole(self) -> None:
        self._whole.set()
        if self._lost:
            self._lost = False
            log.info("Redis pub/sub link up; catching local subscribers up")
            self._call_resync()

    def _call_resync(self) -> None:
        if self._resync is None:
            return
        try:
            self._resync()
        except Exception:
            log.exception("the resync handler failed")

    def _on_message(self, raw_key: bytes, data: bytes) -> None:
        if data[:TAG_SIZE] == self._tag:
            return  # our own payload: delivered locally when published
        key = raw_key.decode()
        if key == self._control:
            self._call_resync()
            return
        if key.startswith(self._prefix):
            self._dispatch(key[len(self._prefix) :], data[TAG_SIZE:])

    def _dispatch(self, channel: str, payload: bytes) -> None:
        for handler in tuple(self._handlers.get(channel, ())):
            try:
                handler(channel, payload)
            except Exception:
                # One faulty listener must not stop delivery to the others.
                log.exception("broker handler failed on %s", channel)


def _jitter(delay: float) -> float:
    """Spread the reconnects of many nodes after a Redis restart."""
    return delay * random.uniform(0.5, 1.0)
