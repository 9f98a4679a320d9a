"""Presence across nodes in Redis: per-node session counts, a liveness key per node, a sweeper.

Keys (``P`` is the configured prefix)::

    P presence:nodes          SET   every node that has registered
    P presence:alive:<node>   STR   present while the node lives; PX ttl, refreshed every ttl/3
    P presence:node:<node>    HASH  user -> that node's sessions
    P presence:users          HASH  user -> sessions on every node (absent: offline)

Every transition is one Lua script, so two nodes opening (or closing) a session of one user at
the same time see the total move once: exactly one of them gets "came online" ("went
offline"), and USER_CONNECTED (USER_DISCONNECTED) goes out once per user in the whole service.

A node that stops heart-beating (killed, partitioned, stalled past the TTL) is swept by any
live node: its counts are subtracted from the totals in one script, which names the users
whose total fell to 0; the node that ran it reports them (USER_DISCONNECTED). A node that finds
its own liveness key gone (it was swept, or Redis restarted empty) re-asserts its counts from
memory with the same kind of script, reporting the users that came back. While Redis is
unreachable, sessions are counted in memory only and the counts are re-asserted on recovery.

On a Redis Cluster the keys are laid out per user instead
(:mod:`ieum_chat.broker.redis_cluster_presence`); what is shared is here: the lock, the
heart-beat loop, the in-memory counts, the reports.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from ieum_chat.aio import finish_within, stop_tasks
from ieum_chat.broker._redis import REDIS_ERRORS, close_client, make_client
from ieum_chat.broker.presence import Presence, SessionLimitReached

__all__ = ["RedisPresence"]

log = logging.getLogger(__name__)

# KEYS: node counts, totals, node alive. ARGV: user, limit (0: none).
# -> new total, -1: this node is not registered, -3: the user has ``limit`` sessions already.
# The check and the count are one script, so concurrent opens on any number of nodes cannot
# all see the same total below the limit.
_OPEN = """
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
local limit = tonumber(ARGV[2])
if limit > 0 and tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') >= limit then
  return -3
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
"""

# Same keys. -> new total (0: went offline), -1: not registered, -2: nothing counted here
_CLOSE = """
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
local c = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if c <= 0 then return -2 end
if c == 1 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
end
local t = redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
if t <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 0
end
return t
"""

# KEYS: node alive, nodes. ARGV: node, ttl ms. -> 1, or 0 when the key had expired
_HEARTBEAT = """
if redis.call('SET', KEYS[1], '1', 'XX', 'PX', ARGV[2]) then
  redis.call('SADD', KEYS[2], ARGV[1])
  return 1
end
return 0
"""

# KEYS: node counts, totals, node alive, nodes. ARGV: node, ttl ms, user, n, user, n, ...
# Replaces the node's counts with the given ones. -> {users now online, users now offline}
_SYNC = """
local have = {}
local old = redis.call('HGETALL', KEYS[1])
for i = 1, #old, 2 do have[old[i]] = tonumber(old[i + 1]) end
local up, down, want = {}, {}, {}
for i = 3, #ARGV, 2 do
  local user, n = ARGV[i], tonumber(ARGV[i + 1])
  want[user] = n
  local d = n - (have[user] or 0)
  if d ~= 0 then
    local t = redis.call('HINCRBY', KEYS[2], user, d)
    if t <= 0 then
      redis.call('HDEL', KEYS[2], user)
      if t - d > 0 then table.insert(down, user) end
    elseif t == d then
      table.insert(up, user)
    end
  end
end
for user, n in pairs(have) do
  if want[user] == nil then
    local t = redis.call('HINCRBY', KEYS[2], user, -n)
    if t <= 0 then
      redis.call('HDEL', KEYS[2], user)
      if t + n > 0 then table.insert(down, user) end
    end
  end
end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[4], ARGV[1])
return {up, down}
"""

# KEYS: node alive, node counts, totals, nodes. ARGV: node, force ('1': even if alive).
# Removes a node and its counts. -> users now offline
_SWEEP = """
if ARGV[2] == '0' and redis.call('EXISTS', KEYS[1]) == 1 then return {} end
redis.call('DEL', KEYS[1])
local h = redis.call('HGETALL', KEYS[2])
local down = {}
for i = 1, #h, 2 do
  local n = tonumber(h[i + 1])
  local t = redis.call('HINCRBY', KEYS[3], h[i], -n)
  if t <= 0 then
    redis.call('HDEL', KEYS[3], h[i])
    if t + n > 0 then table.insert(down, h[i]) end
  end
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[4], ARGV[1])
return down
"""

RETRY_WHILE_DOWN = 0.5  # seconds between attempts to re-register while Redis is down
STOP_TIMEOUT = 1.0  # seconds for the heart-beat task to end, and for the connections to close
LEAVE_TIMEOUT = 2.5  # seconds for the leaving script (a command times out after 2 s)


class RedisPresence(Presence):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "ieum:",
        ttl: float = 15.0,
        node_id: str | None = None,
    ) -> None:
        super().__init__()
        self.node = node_id or uuid.uuid4().hex
        self._prefix = f"{prefix}presence:"
        self._ttl_ms = max(1, int(ttl * 1000))
        self._interval = ttl / 3
        self._client = make_client(url, max_connections=4, socket_timeout=2.0)
        self._open = self._client.register_script(_OPEN)
        self._close = self._client.register_script(_CLOSE)
        self._heartbeat = self._client.register_script(_HEARTBEAT)
        self._sync = self._client.register_script(_SYNC)
        self._sweep = self._client.register_script(_SWEEP)
        # One operation of this node at a time: a re-assertion snapshots the local counts,
        # and no open/close of this node may land in Redis between snapshot and script.
        self._lock = asyncio.Lock()
        self._registered = False  # Redis holds this node's counts as they are in memory
        self._down = False
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    # -- keys ------------------------------------------------------------------------------

    def _alive(self, node: str) -> str:
        return f"{self._prefix}alive:{node}"

    def _counts(self, node: str) -> str:
        return f"{self._prefix}node:{node}"

    @property
    def _totals(self) -> str:
        return f"{self._prefix}users"

    @property
    def _nodes(self) -> str:
        return f"{self._prefix}nodes"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self._tick()
        self._task = asyncio.create_task(self._heartbeat_loop(), name="redis-presence")
        self._task.add_done_callback(_log_stop)

    async def close(self) -> None:
        """Leave: remove this node's counts at once (users only here go offline). Every wait
        here has a deadline: a node stops in bounded time whatever Redis does meanwhile."""
        self._stopping = True
        if self._task is not None:
            await stop_tasks([self._task], STOP_TIMEOUT, "presence heart-beat")
            self._task = None
        down = await finish_within(self._leave(), LEAVE_TIMEOUT, "presence: leaving")
        self._registered = False
        await self._report([], down or [])
        await finish_within(self._disconnect(), STOP_TIMEOUT, "presence: disconnecting")

    async def _leave(self) -> list[str]:
        try:
            async with self._lock:
                return await self._remove_self()
        except REDIS_ERRORS as exc:
            log.warning("presence: leaving failed (%s); the others sweep this node later", exc)
            return []

    async def _disconnect(self) -> None:
        await close_client(self._client)

    # -- transitions -----------------------------------------------------------------------

    async def opened(self, user_id: uuid.UUID, *, limit: int | None = None) -> bool:
        return await self._change(user_id, opening=True, limit=limit)

    async def closed(self, user_id: uuid.UUID) -> bool:
        return await self._change(user_id, opening=False)

    async def _change(self, user_id: uuid.UUID, *, opening: bool, limit: int | None = None) -> bool:
        user = str(user_id)
        up: list[str] = []
        down: list[str] = []
        async with self._lock:
            if opening:
                # This node's own count first: the whole limit while Redis is unreachable.
                self._count_open(user_id, limit)
            elif self._count_close(user_id) is None:
                return False
            if not self._registered:
                return False  # counted in memory; the re-assertion reports it
            try:
                if opening:
                    result = await self._count_in_redis(user, limit or 0)
                else:
                    result = await self._uncount_in_redis(user)
                if result == -3:
                    self._count_close(user_id)
                    raise SessionLimitReached(user_id)
                if result < 0:
                    # -1: swept or Redis restarted; -2: Redis and memory disagree.
                    up, down = await self._reassert()
                    result = -1
            except REDIS_ERRORS as exc:
                self._failed(exc)
                return False
        mine = up if opening else down
        changed = result == (1 if opening else 0)
        if user in mine:
            mine.remove(user)
            changed = True
        await self._report(up, down)
        return changed

    async def online(self, user_id: uuid.UUID) -> bool:
        try:
            return await self._total(str(user_id)) > 0
        except REDIS_ERRORS:
            return user_id in self._local

    # -- heart-beat, re-assertion, sweeping -------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        # Ends on the flag as well as on cancellation: the driver may lose a cancellation
        # that arrives while a command's reply is being read.
        while not self._stopping:
            await asyncio.sleep(self._interval if self._registered else RETRY_WHILE_DOWN)
            try:
                await self._tick()
            except Exception:  # a bug, not an outage: keep heart-beating
                log.exception("presence heart-beat failed")

    async def _tick(self) -> None:
        up: list[str] = []
        down: list[str] = []
        try:
            async with self._lock:
                alive = self._registered and await self._beat()
                if not alive:
                    up, down = await self._reassert()
            down += await self._sweep_dead()
        except REDIS_ERRORS as exc:
            self._failed(exc)
            return
        if self._down:
            self._down = False
            log.warning("presence: Redis reachable again; this node's sessions re-asserted")
        await self._report(up, down)

    async def _reassert(self) -> tuple[list[str], list[str]]:
        """Make Redis hold this node's counts as they are in memory (lock held)."""
        args: list[Any] = [self.node, self._ttl_ms]
        for user_id, count in self._local.items():
            args += [str(user_id), count]
        keys = [self._counts(self.node), self._totals, self._alive(self.node), self._nodes]
        up, down = await self._sync(keys=keys, args=args)
        self._registered = True
        return _decode(up), _decode(down)

    async def _sweep_dead(self) -> list[str]:
        nodes = [n for n in _decode(await self._client.smembers(self._nodes)) if n != self.node]
        if not nodes:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.exists(self._alive(node))
            alive = await pipe.execute()
        down: list[str] = []
        for node, exists in zip(nodes, alive, strict=True):
            if not exists:
                gone = _decode(await self._sweep(keys=self._sweep_keys(node), args=[node, "0"]))
                if gone:
                    log.info("presence: swept node %s; %d users went offline", node, len(gone))
                down += gone
        return down

    # -- what Redis holds: these differ on a cluster --------------------------------------

    async def _count_in_redis(self, user: str, limit: int) -> int:
        """-> new total; -1: this node is not registered; -3: ``limit`` reached."""
        return int(await self._open(keys=self._op_keys(), args=[user, limit]))

    async def _uncount_in_redis(self, user: str) -> int:
        """-> new total (0: went offline); -1: not registered; -2: nothing counted here."""
        return int(await self._close(keys=self._op_keys(), args=[user]))

    async def _total(self, user: str) -> int:
        total = await self._client.hget(self._totals, user)
        return 0 if total is None else int(total)

    async def _beat(self) -> bool:
        """Refresh this node's liveness; False when it had expired (or was swept)."""
        return bool(
            await self._heartbeat(
                keys=[self._alive(self.node), self._nodes], args=[self.node, self._ttl_ms]
            )
        )

    async def _remove_self(self) -> list[str]:
        """Remove this node and its counts (leaving); -> users now offline."""
        return _decode(await self._sweep(keys=self._sweep_keys(self.node), args=[self.node, "1"]))

    def _op_keys(self) -> list[str]:
        return [self._counts(self.node), self._totals, self._alive(self.node)]

    def _sweep_keys(self, node: str) -> list[str]:
        return [self._alive(node), self._counts(node), self._totals, self._nodes]

    def _failed(self, exc: BaseException) -> None:
        self._registered = False
        if not self._down:
            self._down = True
            log.warning("presence: Redis unreachable (%s); counting this node's sessions only", exc)

    async def _report(self, up: list[str], down: list[str]) -> None:
        handler = self._on_transition
        if handler is None:
            return
        for users, online in ((up, True), (down, False)):
            for user in users:
                try:
                    await handler(uuid.UUID(user), online)
                except Exception:
                    log.exception("presence transition handler failed")


def _decode(items: Any) -> list[str]:
    return [i.decode() if isinstance(i, bytes) else str(i) for i in items]


def _log_stop(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("presence heart-beat stopped", exc_info=task.exception())
