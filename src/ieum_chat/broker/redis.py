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

On a Redis Cluster (``redis+cluster://``) the same machinery runs on sharded Pub/Sub: a
channel is a shard channel (``SSUBSCRIBE``/``SPUBLISH``), so its key slot decides which master
carries it and fan-out spreads over the shards. The link is then one connection per master,
each subscribed to the channels of its slots (the control channel is one of them); the slot
map comes from ``CLUSTER SLOTS``. Publishing goes through the cluster client, which routes by
slot. Whatever breaks one connection of the link -- a master killed, a failover, Redis
sending ``sunsubscribe`` because a slot moved, a ``MOVED`` reply -- drops the whole link:
the reconnect reads the slot map again, subscribes every channel on its new master and
resyncs, exactly as after a single Redis came back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import deque
from collections.abc import Iterator
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from ieum_chat.aio import finish_within, stop_tasks
from ieum_chat.broker._redis import (
    CONNECT_TIMEOUT,
    REDIS_ERRORS,
    ClusterAddress,
    close_client,
    is_cluster,
    make_client,
    make_pool,
)
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


class _Link:
    """One subscribed connection (to the Redis, or to one master of a cluster)."""

    def __init__(self, conn: AbstractConnection) -> None:
        self.conn = conn
        self.lock = asyncio.Lock()  # one command written at a time
        self.last_seen = 0.0


class _OneRedis:
    """Pub/Sub on one Redis: one link carries every channel."""

    subscribe = "SUBSCRIBE"
    unsubscribe = "UNSUBSCRIBE"
    publish = "PUBLISH"
    message = b"message"
    subscribed = b"subscribe"
    unsubscribed = b"unsubscribe"
    moves = False  # a single Redis never unsubscribes a client by itself

    def __init__(self, url: str) -> None:
        self._pool = make_pool(url, max_connections=1, socket_timeout=None)

    async def connections(self) -> dict[str, AbstractConnection]:
        return {"": self._pool.make_connection()}  # type: ignore[no-untyped-call]

    def route(self, key: str) -> str | None:
        return ""

    def batches(self, keys: list[str]) -> Iterator[tuple[str, list[str]]]:
        for start in range(0, len(keys), SUBSCRIBE_CHUNK):
            yield "", keys[start : start + SUBSCRIBE_CHUNK]

    async def close(self) -> None:
        await self._pool.disconnect()


class _ClusterShards:
    """Sharded Pub/Sub on a Redis Cluster: one link per master, channels routed by key slot."""

    subscribe = "SSUBSCRIBE"
    unsubscribe = "SUNSUBSCRIBE"
    publish = "SPUBLISH"
    message = b"smessage"
    subscribed = b"ssubscribe"
    unsubscribed = b"sunsubscribe"
    moves = True  # Redis unsubscribes a shard channel whose slot moved to another master

    def __init__(self, url: str) -> None:
        self._address = ClusterAddress.parse(url)
        self._known: list[tuple[str, int]] = list(self._address.nodes)
        self._slots: list[str | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        self._masters: dict[str, tuple[str, int]] = {}

    async def connections(self) -> dict[str, AbstractConnection]:
        """A connection (not yet open) per master of a slot map read just now."""
        await self._refresh()
        return {
            name: self._address.connection(host, port, socket_timeout=None)
            for name, (host, port) in self._masters.items()
        }

    async def _refresh(self) -> None:
        error: Exception | None = None
        # The masters last seen first, then every other node ever seen, then the URL's.
        candidates = list(dict.fromkeys([*self._masters.values(), *self._known]))
        for host, port in candidates:
            conn = self._address.connection(host, port, socket_timeout=CONNECT_TIMEOUT)
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                await conn.send_command("CLUSTER", "SLOTS")
                reply = await conn.read_response()
            except REDIS_ERRORS as exc:
                error = exc
                continue
            finally:
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
            self._read_slots(reply, host)
            return
        raise ConnectionError(f"no Redis Cluster node answered CLUSTER SLOTS: {error}")

    def _read_slots(self, reply: Any, asked: str) -> None:
        slots: list[str | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        masters: dict[str, tuple[str, int]] = {}
        known = dict.fromkeys(self._known)
        for start, end, *nodes in reply:
            for index, node in enumerate(nodes):
                host = node[0].decode() if isinstance(node[0], bytes) else str(node[0])
                address = (host or asked, int(node[1]))
                known[address] = None
                if index == 0:
                    name = f"{address[0]}:{address[1]}"
                    masters[name] = address
                    slots[int(start) : int(end) + 1] = [name] * (int(end) + 1 - int(start))
        self._slots, self._masters, self._known = slots, masters, list(known)

    def route(self, key: str) -> str | None:
        return self._slots[key_slot(key.encode())]

    def batches(self, keys: list[str]) -> Iterator[tuple[str, list[str]]]:
        # SSUBSCRIBE takes several channels only when they share a slot.
        by_slot: dict[int, list[str]] = {}
        for key in keys:
            by_slot.setdefault(key_slot(key.encode()), []).append(key)
        for slot, group in by_slot.items():
            name = self._slots[slot]
            if name is None:
                raise _LinkLost(f"no master serves slot {slot}")
            for start in range(0, len(group), SUBSCRIBE_CHUNK):
                yield name, group[start : start + SUBSCRIBE_CHUNK]

    async def close(self) -> None:
        return None


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
        self._shards: _OneRedis | _ClusterShards = (
            _ClusterShards(url) if is_cluster(url) else _OneRedis(url)
        )
        self._client = make_client(url, max_connections=4, socket_timeout=2.0)
        self._handlers: dict[str, list[Handler]] = {}
        self._outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=publish_queue)
        self._tasks: set[asyncio.Task[None]] = set()
        self._links: dict[str, _Link] = {}  # empty: the link is down
        self._kill = asyncio.Event()  # set: the current link is dropped and remade
        self._confirm: dict[str, deque[asyncio.Future[None]]] = {}
        self._resubscribing: set[str] = set()
        # Unsubscriptions this node asked for and Redis has not confirmed yet (a cluster also
        # unsubscribes by itself: when a channel's slot moves to another master).
        self._unsubscribing: dict[str, int] = {}
        self._whole = asyncio.Event()  # the link is up and every channel is subscribed
        self._lost = False  # payloads may have been missed since the link was last whole
        self._closed = False
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
        await close_client(self._client)
        await self._shards.close()

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
                    command = self._shards.publish
                    if dropped_since_ok:
                        pipe.execute_command(command, self._control, self._tag)
                    for key, data in batch:
                        pipe.execute_command(command, key, data)
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
        key = self._prefix + channel
        link = self._link_for(key)
        if link is None:
            self._lost = True
            if self._links:
                # Up, but no master served this slot when the slot map was read: read it
                # again (the reconnect subscribes everything and resyncs).
                self._kill.set()
            return
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(key, deque()).append(confirmed)
        try:
            await self._send(link, self._shards.subscribe, key)
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
        key = self._prefix + channel
        link = self._link_for(key)
        if link is not None:
            self._unsubscribing[key] = self._unsubscribing.get(key, 0) + 1
            try:
                await self._send(link, self._shards.unsubscribe, key)
            except REDIS_ERRORS:
                self._drop_link(link)  # resubscribing after the reconnect forgets it

    def _link_for(self, key: str) -> _Link | None:
        """The connection that carries ``key`` now; None while the link is down."""
        name = self._shards.route(key) if self._links else None
        return None if name is None else self._links.get(name)

    async def _send(self, link: _Link, *args: str) -> None:
        async with link.lock:
            await link.conn.send_command(*args, check_health=False)

    def _drop_link(self, link: _Link) -> None:
        """Make the link loop close every connection and reconnect (then resync)."""
        if link in self._links.values():
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
                self._links = {}
                self._whole.clear()
                self._resubscribing.clear()
                self._unsubscribing.clear()
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
        self._kill = kill = asyncio.Event()
        links: dict[str, _Link] = {}
        try:
            for name, conn in (await self._shards.connections()).items():
                links[name] = link = _Link(conn)
                await conn.connect()  # type: ignore[no-untyped-call]
                link.last_seen = asyncio.get_running_loop().time()
            self._links = links
            keys = [self._control, *(self._prefix + channel for channel in self._handlers)]
            self._resubscribing = set(keys)
            for name, batch in self._shards.batches(keys):
                await self._send(links[name], self._shards.subscribe, *batch)
            tasks: set[asyncio.Task[Any]] = {
                asyncio.create_task(kill.wait(), name="redis-broker-kill")
            }
            for link in links.values():
                tasks.add(asyncio.create_task(self._read(link), name="redis-broker-read"))
                tasks.add(asyncio.create_task(self._keepalive(link), name="redis-broker-ping"))
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
            for link in links.values():
                with contextlib.suppress(Exception):
                    await link.conn.disconnect(nowait=True)

    async def _keepalive(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._ping_interval)
            if loop.time() - link.last_seen > 3 * self._ping_interval:
                raise _LinkLost("no reply to PING")
            await self._send(link, "PING")

    async def _read(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        shards = self._shards
        while True:
            # An error reply (a MOVED for a channel whose slot moved) raises: relink.
            reply = await link.conn.read_response()
            link.last_seen = loop.time()
            if not isinstance(reply, list) or len(reply) < 2:
                continue  # +PONG outside subscribed mode
            kind = reply[0]
            if kind == shards.message and len(reply) == 3:
                self._on_message(reply[1], reply[2])
            elif kind == shards.subscribed:
                self._on_subscribed(reply[1].decode())
            elif kind == shards.unsubscribed:
                self._on_unsubscribed(reply[1].decode())

    def _on_unsubscribed(self, key: str) -> None:
        pending = self._unsubscribing.get(key, 0)
        if pending:
            if pending == 1:
                del self._unsubscribing[key]
            else:
                self._unsubscribing[key] = pending - 1
            return
        wanted = key == self._control or key[len(self._prefix) :] in self._handlers
        if wanted and self._shards.moves:
            # Redis dropped a subscription by itself: its slot moved to another master.
            raise _LinkLost(f"Redis unsubscribed {key} (its slot moved)")

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
