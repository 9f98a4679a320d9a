"""Presence on a Redis Cluster: the counts of one user in one hash, hash-tagged by the user.

Redis runs a script only on keys of one slot. The single-Redis layout keeps the totals of
every user in one hash and has each script touch it together with a node's keys; on a cluster
that would pin presence to one shard. Here each user's counts live in a hash of their own, so
every transition of one user is one script on one slot, and users spread over the shards.
Keys (``P`` is the configured prefix, ``I`` an instance of a node, see below)::

    P presence:user:{<user>}   HASH  I -> that instance's sessions of the user,
                                     x:I -> when I was swept (a tombstone)
    P presence:alive:{I}       STR   present while the instance lives; PX ttl
    P presence:index:{I}       SET   users the instance may have counted (for sweeping it)
    P presence:dead:{I}        STR   the instance was swept: it may count nothing more
    P presence:nodes           SET   every instance that has registered

The total of a user is the sum of the hash's counts, so "came online" / "went offline" and the
session limit are decided in one script, exactly once, as on one Redis.

What a single-Redis script does atomically across a node's keys and the totals, this layout
does with *instances*: a node counts under an instance name (its node id and a random suffix)
and takes a new one whenever it re-asserts its counts (at start, after it was swept, after
Redis lost its keys). An instance that was swept never counts again: the sweeper marks it dead
in the instance's slot (checked when the instance indexes a user) and leaves a tombstone in
each of its users' hashes (checked by the open and close scripts), so a command of a stalled
instance that lands after the sweep is refused, and the node re-asserts under a new instance.
Re-asserting moves each user's count from the old instance to the new one in one script per
user, so a sweeper working on the old instance at the same moment cannot make a user flicker
twice. Tombstones, dead marks and a hash left with no sessions expire after ``GRACE``.
"""

from __future__ import annotations

import logging
import uuid

from ieum_chat.broker.redis_presence import RedisPresence, _decode

__all__ = ["ClusterPresence"]

log = logging.getLogger(__name__)

# Seconds a sweep's tombstones and dead marks last (at least): a command of a swept instance
# that arrives later than this after the sweep (a process stalled for that long in the middle
# of opening a session, then killed before its next heart-beat) could count a session that
# nobody removes.
GRACE = 600.0

# The sum of a user's counts, dropping tombstones older than the grace (ARGV[grace_at]).
_TOTAL = """
local function total(key, grace)
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local h = redis.call('HGETALL', key)
  local t = 0
  for i = 1, #h, 2 do
    if string.sub(h[i], 1, 2) == 'x:' then
      if tonumber(h[i + 1]) < ms - grace then redis.call('HDEL', key, h[i]) end
    else
      t = t + tonumber(h[i + 1])
    end
  end
  return t, ms
end
local function settle(key, t, grace)
  if t > 0 then redis.call('PERSIST', key) else redis.call('PEXPIRE', key, grace) end
end
"""

# KEYS: user. ARGV: instance, limit (0: none), grace ms.
# -> new total; -1: the instance was swept; -3: the user has ``limit`` sessions already
_OPEN = (
    _TOTAL
    + """
if redis.call('HEXISTS', KEYS[1], 'x:' .. ARGV[1]) == 1 then return -1 end
local t = total(KEYS[1], tonumber(ARGV[3]))
local limit = tonumber(ARGV[2])
if limit > 0 and t >= limit then return -3 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PERSIST', KEYS[1])
return t + 1
"""
)

# KEYS: user. ARGV: instance, grace ms.
# -> new total (0: went offline); -1: the instance was swept; -2: nothing counted here
_CLOSE = (
    _TOTAL
    + """
if redis.call('HEXISTS', KEYS[1], 'x:' .. ARGV[1]) == 1 then return -1 end
local c = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if c <= 0 then return -2 end
if c == 1 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
end
local t = total(KEYS[1], tonumber(ARGV[2]))
settle(KEYS[1], t, tonumber(ARGV[2]))
return t
"""
)

# KEYS: user. ARGV: instance, grace ms. Removes a swept instance's count and leaves a
# tombstone. -> 1 when the user went offline
_REMOVE = (
    _TOTAL
    + """
local grace = tonumber(ARGV[2])
local before, ms = total(KEYS[1], grace)
local c = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], 'x:' .. ARGV[1], ms)
settle(KEYS[1], before - c, grace)
if c > 0 and before - c <= 0 then return 1 end
return 0
"""
)

# KEYS: user. ARGV: old instance, new instance, sessions, grace ms.
# Moves the user's count from the old instance to the new one. -> {total before, after}
_MOVE = (
    _TOTAL
    + """
local grace = tonumber(ARGV[4])
local before = total(KEYS[1], grace)
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
redis.call('HDEL', KEYS[1], ARGV[1])
local n = tonumber(ARGV[3])
if n > 0 then redis.call('HSET', KEYS[1], ARGV[2], n) end
local after = before - old + n
settle(KEYS[1], after, grace)
return {before, after}
"""
)

# KEYS: index, dead (of one instance). ARGV: user. -> 1, or -1 when the instance was swept
_INDEX = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
"""

# KEYS: alive, dead. ARGV: ttl ms. -> 1, or 0 when the key had expired or it was swept
_HEARTBEAT = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('SET', KEYS[1], '1', 'XX', 'PX', ARGV[1]) then return 1 end
return 0
"""

# KEYS: alive, index, dead. ARGV: force ('1': even if alive), grace ms.
# Marks the instance dead. -> the users it may have counted; nil when it is alive
_BURY = """
if ARGV[1] == '0' and redis.call('EXISTS', KEYS[1]) == 1 then return false end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
return redis.call('SMEMBERS', KEYS[2])
"""


class ClusterPresence(RedisPresence):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "ieum:",
        ttl: float = 15.0,
        node_id: str | None = None,
    ) -> None:
        super().__init__(url, prefix=prefix, ttl=ttl, node_id=node_id)
        self._grace_ms = max(int(GRACE * 1000), 20 * self._ttl_ms)
        self._instance = self._new_instance()
        client = self._client
        self._c_open = client.register_script(_OPEN)
        self._c_close = client.register_script(_CLOSE)
        self._c_remove = client.register_script(_REMOVE)
        self._c_move = client.register_script(_MOVE)
        self._c_index = client.register_script(_INDEX)
        self._c_heartbeat = client.register_script(_HEARTBEAT)
        self._c_bury = client.register_script(_BURY)

    def _new_instance(self) -> str:
        return f"{self.node}.{uuid.uuid4().hex[:8]}"

    # -- keys ------------------------------------------------------------------------------

    def _user(self, user: str) -> str:
        return f"{self._prefix}user:{{{user}}}"

    def _alive(self, node: str) -> str:
        return f"{self._prefix}alive:{{{node}}}"

    def _index(self, instance: str) -> str:
        return f"{self._prefix}index:{{{instance}}}"

    def _dead(self, instance: str) -> str:
        return f"{self._prefix}dead:{{{instance}}}"

    # -- what Redis holds ------------------------------------------------------------------

    async def _count_in_redis(self, user: str, limit: int) -> int:
        instance = self._instance
        indexed = await self._c_index(
            keys=[self._index(instance), self._dead(instance)], args=[user]
        )
        if int(indexed) < 0:
            return -1
        return int(
            await self._c_open(keys=[self._user(user)], args=[instance, limit, self._grace_ms])
        )

    async def _uncount_in_redis(self, user: str) -> int:
        instance = self._instance
        result = int(await self._c_close(keys=[self._user(user)], args=[instance, self._grace_ms]))
        if result >= 0 and uuid.UUID(user) not in self._local:
            await self._client.srem(self._index(instance), user)
        return result

    async def _total(self, user: str) -> int:
        counts: dict[bytes, bytes] = await self._client.hgetall(self._user(user))  # type: ignore[assignment]
        return sum(int(v) for k, v in counts.items() if not k.startswith(b"x:"))

    async def _beat(self) -> bool:
        instance = self._instance
        alive = await self._c_heartbeat(
            keys=[self._alive(instance), self._dead(instance)], args=[self._ttl_ms]
        )
        if not alive:
            return False
        await self._client.sadd(self._nodes, instance)
        return True

    async def _remove_self(self) -> list[str]:
        return await self._bury(self._instance, force=True)

    async def _reassert(self) -> tuple[list[str], list[str]]:
        """Count this node's sessions under a new instance, and remove the old one (lock
        held): one script per user moves its count, reporting who came and went."""
        old = self._instance
        new = self._instance = self._new_instance()
        await self._client.set(self._alive(new), "1", px=self._ttl_ms)
        await self._client.sadd(self._nodes, new)
        counts = {str(user_id): count for user_id, count in self._local.items()}
        if counts:
            await self._client.sadd(self._index(new), *counts)
        old_users = await self._c_bury(
            keys=[self._alive(old), self._index(old), self._dead(old)],
            args=["1", self._grace_ms],
        )
        up: list[str] = []
        down: list[str] = []
        for user in dict.fromkeys([*counts, *_decode(old_users or [])]):
            before, after = await self._c_move(
                keys=[self._user(user)], args=[old, new, counts.get(user, 0), self._grace_ms]
            )
            if int(before) <= 0 < int(after):
                up.append(user)
            elif int(after) <= 0 < int(before):
                down.append(user)
        await self._forget(old)
        self._registered = True
        return up, down

    async def _sweep_dead(self) -> list[str]:
        instances = [
            i for i in _decode(await self._client.smembers(self._nodes)) if i != self._instance
        ]
        if not instances:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for instance in instances:
                pipe.exists(self._alive(instance))
            alive = await pipe.execute()
        down: list[str] = []
        for instance, exists in zip(instances, alive, strict=True):
            if not exists:
                gone = await self._bury(instance, force=False)
                if gone:
                    log.info("presence: swept %s; %d users went offline", instance, len(gone))
                down += gone
        return down

    async def _bury(self, instance: str, *, force: bool) -> list[str]:
        """Remove an instance and its counts (unless it is alive and not ``force``);
        -> users now offline."""
        users = await self._c_bury(
            keys=[self._alive(instance), self._index(instance), self._dead(instance)],
            args=["1" if force else "0", self._grace_ms],
        )
        if users is None:
            return []
        down: list[str] = []
        for user in _decode(users):
            if int(await self._c_remove(keys=[self._user(user)], args=[instance, self._grace_ms])):
                down.append(user)
        await self._forget(instance)
        return down

    async def _forget(self, instance: str) -> None:
        await self._client.delete(self._index(instance))
        await self._client.srem(self._nodes, instance)
