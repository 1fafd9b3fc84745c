"""Presence across instances, right even when an instance dies without saying goodbye.

Keys (prefix `tableforge:`):
    {prefix}presence:{room_id}          hash  "{user_id}|{conn_key}" -> instance_id, one field per socket
    {prefix}presence:idx:{instance_id}  hash  room_id -> this instance's sockets there (what to clean)
    {prefix}presence:instances          set   instances that may have entries
    {prefix}user:{user_id}              zset  instance_id scored by a deadline (ms): where the user's
                                              sockets are, for send-to-user
Liveness is the instance registry's key (`registry.instance_key`), which expires 30 s after an
instance's last heartbeat. Why this shape:
- Reads (`online`, `count`, first/last in `add`/`remove`) skip entries whose instance key is
  gone, so a killed instance drops out of every count within the expiry, with no counters
  that only grow and no cleanup needed first.
- Someone must still announce `player.left` for the users a dead instance held. Whoever deletes
  a dead entry reports it, inside the same Lua call: `prune_dead_instances` (any survivor,
  periodically), or an `add`/`remove` of the same user that replaces it. So each offline
  transition is reported once, however many instances prune at the same time.
- Redis is shared state, not the source of truth for our own sockets: we keep a local mirror.
  When Redis failed a write, or our instance key had vanished (Redis restart, a long stall),
  `sync` rewrites our entries from the mirror. While Redis is down, answers fall back to what
  this instance knows, so local players still see each other come and go.
- Right after a Redis restart every instance key is missing until its next heartbeat, so
  nothing is pruned while Redis has been up for less than the expiry.
The Lua scripts read instance keys not passed in KEYS: fine on one Redis, not on a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Final

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tableforge.observability.logging import get_logger
from tableforge.realtime.presence import OfflineHandler, Presence
from tableforge.realtime.registry import DEFAULT_PREFIX, instance_key

log = get_logger(__name__)

SYNC_CHUNK: Final = 500

PRUNED = Counter("tableforge_presence_pruned_total", "Users found offline because their instance died")
FALLBACKS = Counter("tableforge_presence_fallbacks_total",
                    "Presence calls answered from local knowledge because Redis failed, by operation", ["op"])
SYNCS = Counter("tableforge_presence_syncs_total", "Rewrites of this instance's entries from its local mirror")

# Shared by the scripts: is `inst` alive? (ourselves always; others by their registry key)
_LIB: Final = """
local function alive(prefix, me, inst, cache)
  if inst == me then return true end
  local v = cache[inst]
  if v == nil then
    v = redis.call('EXISTS', prefix .. inst) == 1
    cache[inst] = v
  end
  return v
end
local function user_of(field)
  return string.match(field, '^([^|]*)|')
end
"""
# KEYS[1] room hash, KEYS[2] our idx, KEYS[3] instances set
# ARGV[1] field, ARGV[2] me, ARGV[3] user, ARGV[4] room, ARGV[5] instance key prefix
# 1 if this is the user's first live socket in the room. A dead instance's socket of the same
# user is deleted (consumed): this socket replaces it, so nobody will announce it as left.
_ADD: Final = _LIB + """
if redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
redis.call('SADD', KEYS[3], ARGV[2])
local cache, first, mine = {}, 1, ARGV[3] .. '|'
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local f = flat[i]
  if f ~= ARGV[1] and string.sub(f, 1, #mine) == mine then
    if alive(ARGV[5], ARGV[2], flat[i + 1], cache) then first = 0 else redis.call('HDEL', KEYS[1], f) end
  end
end
return first
"""
# Same keys and arguments. 1 if that was the user's last live socket in the room; the user's
# sockets on dead instances go with it (this call announces them).
_REMOVE: Final = _LIB + """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[2], ARGV[4], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[4]) end
local cache, last, mine, dead = {}, 1, ARGV[3] .. '|', {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local f = flat[i]
  if string.sub(f, 1, #mine) == mine then
    if alive(ARGV[5], ARGV[2], flat[i + 1], cache) then last = 0 else dead[#dead + 1] = f end
  end
end
if last == 1 and #dead > 0 then redis.call('HDEL', KEYS[1], unpack(dead)) end
return last
"""
# KEYS[1] room hash; ARGV[1] instance key prefix, ARGV[2] me. The users of live sockets, one per socket.
_READ: Final = _LIB + """
local cache, out = {}, {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if alive(ARGV[1], ARGV[2], flat[i + 1], cache) then out[#out + 1] = user_of(flat[i]) end
end
return out
"""
# KEYS[1] room hash; ARGV[1] instance key prefix, ARGV[2] me, ARGV[3..] instances confirmed dead.
# Deletes their sockets (re-checking each is still dead) and returns the users left with no
# socket on any other instance. Sockets on instances that are missing but not yet confirmed
# keep their user "possibly online": that user is reported when that instance is pruned.
_PRUNE_ROOM: Final = _LIB + """
local dead = {}
for i = 3, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 0 then dead[ARGV[i]] = true end
end
local touched, keep = {}, {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local user = user_of(flat[i])
  if dead[flat[i + 1]] then
    redis.call('HDEL', KEYS[1], flat[i])
    if user then touched[user] = true end
  elseif user then
    keep[user] = true
  end
end
local out = {}
for user in pairs(touched) do
  if not keep[user] then out[#out + 1] = user end
end
return out
"""
# KEYS[1] room hash, KEYS[2] our idx, KEYS[3] instances set
# ARGV[1] me, ARGV[2] room, ARGV[3] instance key prefix, ARGV[4..] the fields we hold (the mirror).
# Makes our entries in the room exactly those; returns users whose last live socket we removed.
_SYNC_ROOM: Final = _LIB + """
local wanted, n = {}, 0
for i = 4, #ARGV do wanted[ARGV[i]] = true; n = n + 1 end
local touched = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if flat[i + 1] == ARGV[1] and not wanted[flat[i]] then
    redis.call('HDEL', KEYS[1], flat[i])
    local user = user_of(flat[i])
    if user then touched[user] = true end
  end
end
for i = 4, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], ARGV[1]) end
if n > 0 then
  redis.call('HSET', KEYS[2], ARGV[2], n)
  redis.call('SADD', KEYS[3], ARGV[1])
else
  redis.call('HDEL', KEYS[2], ARGV[2])
end
local cache, keep = {}, {}
flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local user = user_of(flat[i])
  if user and alive(ARGV[3], ARGV[1], flat[i + 1], cache) then keep[user] = true end
end
local out = {}
for user in pairs(touched) do
  if not keep[user] then out[#out + 1] = user end
end
return out
"""
# KEYS[1] a dead instance's idx, KEYS[2] instances set; ARGV[1] its registry key, ARGV[2] its id.
_FORGET_INSTANCE: Final = """
if redis.call('EXISTS', ARGV[1]) == 1 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""
# KEYS user zsets; ARGV[1] me, ARGV[2] ttl ms. Mark (or keep marking) the users as held by us.
_USERS_SET: Final = """
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], deadline, ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return #KEYS
"""
# KEYS[1] user zset; ARGV[1] me.
_USER_UNSET: Final = """
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
return 1
"""
# KEYS[1] user zset. The instances whose mark has not run out.
_USER_GET: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


def _text(values: Iterable[Any]) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


class RedisPresence(Presence):
    """Presence and the user -> instance map for scale-out mode.

    Needs an `InstanceRegistry` beating with the same prefix and instance id: another
    instance's entries count only while its registry key exists. Wire `maintain` as one of the
    registry's heartbeat hooks.
    """

    def __init__(
        self,
        redis: Redis,
        instance_id: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        user_ttl: float = 30.0,
        min_redis_uptime: float = 30.0,
        on_offline: OfflineHandler | None = None,
    ) -> None:
        self._redis = redis
        self.instance_id = instance_id
        self.prefix = prefix
        self._user_ttl_ms = int(user_ttl * 1000)
        self._min_redis_uptime = min_redis_uptime
        self._on_offline = on_offline
        self._instance_prefix = instance_key(prefix, "")
        self._instances_key = f"{prefix}presence:instances"
        self._idx_key = self.idx_key(instance_id)
        self._add = redis.register_script(_ADD)
        self._remove = redis.register_script(_REMOVE)
        self._read = redis.register_script(_READ)
        self._prune_room = redis.register_script(_PRUNE_ROOM)
        self._sync_room = redis.register_script(_SYNC_ROOM)
        self._forget = redis.register_script(_FORGET_INSTANCE)
        self._users_set = redis.register_script(_USERS_SET)
        self._user_unset = redis.register_script(_USER_UNSET)
        self._user_get = redis.register_script(_USER_GET)
        # The mirror: our own sockets (room -> field -> user) and users (user -> sockets here).
        self._local: dict[str, dict[str, str]] = {}
        self._users: dict[str, int] = {}
        self._dirty = False

    def set_offline_handler(self, handler: OfflineHandler) -> None:
        """`handler([(room_id, user_id), ...])` announces users whose instance died (player.left)."""
        self._on_offline = handler

    # -- names ---------------------------------------------------------------------------------
    def room_key(self, room_id: str) -> str:
        return f"{self.prefix}presence:{room_id}"

    def idx_key(self, instance_id: str) -> str:
        return f"{self.prefix}presence:idx:{instance_id}"

    def user_key(self, user_id: str) -> str:
        return f"{self.prefix}user:{user_id}"

    @staticmethod
    def field(user_id: str, conn_key: str) -> str:
        return f"{user_id}|{conn_key}"

    # -- Presence --------------------------------------------------------------------------------
    async def add(self, room_id: str, user_id: str, conn_key: str) -> bool:
        field = self.field(user_id, conn_key)
        fields = self._local.setdefault(room_id, {})
        locally_first = user_id not in fields.values()
        known = field in fields
        fields[field] = user_id
        try:
            return bool(await self._add(keys=[self.room_key(room_id), self._idx_key, self._instances_key],
                                        args=[field, self.instance_id, user_id, room_id, self._instance_prefix]))
        except (RedisError, OSError) as exc:
            self._degraded("add", exc)
            return locally_first and not known

    async def remove(self, room_id: str, user_id: str, conn_key: str) -> bool:
        field = self.field(user_id, conn_key)
        fields = self._local.get(room_id, {})
        known = fields.pop(field, None) is not None
        if not fields:
            self._local.pop(room_id, None)
        try:
            return bool(await self._remove(keys=[self.room_key(room_id), self._idx_key, self._instances_key],
                                           args=[field, self.instance_id, user_id, room_id, self._instance_prefix]))
        except (RedisError, OSError) as exc:
            self._degraded("remove", exc)
            return known and user_id not in fields.values()

    async def online(self, room_id: str) -> set[str]:
        users = await self._live_sockets(room_id)
        return set(users)

    async def count(self, room_id: str) -> int:
        return len(await self._live_sockets(room_id))

    async def _live_sockets(self, room_id: str) -> list[str]:
        try:
            users = await self._read(keys=[self.room_key(room_id)], args=[self._instance_prefix, self.instance_id])
            return _text(users)
        except (RedisError, OSError) as exc:
            self._degraded("read", exc)
            return list(self._local.get(room_id, {}).values())

    def _degraded(self, op: str, exc: BaseException) -> None:
        FALLBACKS.labels(op).inc()
        if not self._dirty:
            log.warning("presence.redis_failed", op=op, error=repr(exc))
        self._dirty = True  # our entries in Redis may be wrong now: `sync` at the next heartbeat

    def local_rooms(self) -> dict[str, int]:
        """Our sockets per room (registry stats, and admin views)."""
        return {room: len(fields) for room, fields in self._local.items()}

    # -- send-to-user --------------------------------------------------------------------------
    async def user_connected(self, user_id: str) -> None:
        """A socket of `user_id` opened here: mark us as one of the user's instances."""
        count = self._users.get(user_id, 0) + 1
        self._users[user_id] = count
        if count == 1:
            try:
                await self._users_set(keys=[self.user_key(user_id)], args=[self.instance_id, self._user_ttl_ms])
            except (RedisError, OSError) as exc:
                self._degraded("user", exc)

    async def user_disconnected(self, user_id: str) -> None:
        count = self._users.get(user_id, 0) - 1
        if count > 0:
            self._users[user_id] = count
            return
        self._users.pop(user_id, None)
        try:
            await self._user_unset(keys=[self.user_key(user_id)], args=[self.instance_id])
        except (RedisError, OSError) as exc:
            self._degraded("user", exc)

    async def user_instances(self, user_id: str) -> set[str]:
        """Instances holding a socket of the user: send there, not to every instance."""
        found = {self.instance_id} if user_id in self._users else set()
        try:
            found.update(_text(await self._user_get(keys=[self.user_key(user_id)])))
        except (RedisError, OSError) as exc:
            self._degraded("user", exc)
        if user_id not in self._users:
            found.discard(self.instance_id)  # a stale mark of ours (the socket closed meanwhile)
        return found

    async def refresh_users(self) -> None:
        """Push our marks' deadlines forward (every heartbeat; they expire after `user_ttl`)."""
        users = list(self._users)
        for start in range(0, len(users), SYNC_CHUNK):
            chunk = users[start : start + SYNC_CHUNK]
            await self._users_set(keys=[self.user_key(u) for u in chunk], args=[self.instance_id, self._user_ttl_ms])

    # -- upkeep ----------------------------------------------------------------------------------
    async def maintain(self, revived: bool = False) -> list[tuple[str, str]]:
        """The heartbeat hook: refresh our user marks, rewrite our entries if they may be wrong,
        prune dead instances; hands who went offline to the offline handler and returns it."""
        offline: list[tuple[str, str]] = []
        try:
            await self.refresh_users()
            if revived or self._dirty:
                offline += await self.sync()
            offline += await self.prune_dead_instances()
        except (RedisError, OSError) as exc:
            self._degraded("maintain", exc)
        if offline and self._on_offline is not None:
            try:
                await self._on_offline(offline)
            except Exception:
                log.exception("presence.offline_handler_failed")
        return offline

    async def sync(self) -> list[tuple[str, str]]:
        """Make our entries in Redis exactly the mirror. Returns users that were only online
        through entries we no longer hold (e.g. left over from a previous run under our id)."""
        self._dirty = False
        SYNCS.inc()
        stored = _text(await self._redis.hkeys(self._idx_key))
        offline: list[tuple[str, str]] = []
        for room_id in set(stored) | set(self._local):
            fields = list(self._local.get(room_id, {}))
            users = await self._sync_room(keys=[self.room_key(room_id), self._idx_key, self._instances_key],
                                          args=[self.instance_id, room_id, self._instance_prefix, *fields])
            offline += [(room_id, user) for user in _text(users)]
        if self._users:
            await self.refresh_users()
        return offline

    async def dead_instances(self) -> list[str]:
        """Instances with presence entries whose registry key is gone (none while Redis is young)."""
        members = _text(await self._redis.smembers(self._instances_key))
        others = sorted(m for m in members if m != self.instance_id)
        if not others:
            return []
        if self._min_redis_uptime > 0:
            info = await self._redis.info("server")
            if float(info.get("uptime_in_seconds", 0)) < self._min_redis_uptime:
                return []  # instances may not have beaten since Redis came back
        async with self._redis.pipeline(transaction=False) as pipe:
            for other in others:
                pipe.exists(instance_key(self.prefix, other))
            alive = await pipe.execute()
        return [other for other, exists in zip(others, alive, strict=True) if not exists]

    async def prune_dead_instances(self) -> list[tuple[str, str]]:
        """Delete dead instances' entries; returns (room_id, user_id) of users now offline.

        Safe to run on every instance at once: each offline user is returned by exactly one call.
        """
        dead = await self.dead_instances()
        if not dead:
            return []
        started = time.monotonic()
        rooms: set[str] = set()
        for other in dead:
            rooms.update(_text(await self._redis.hkeys(self.idx_key(other))))
        offline: list[tuple[str, str]] = []
        for room_id in sorted(rooms):
            users = await self._prune_room(keys=[self.room_key(room_id)], args=[self._instance_prefix,
                                                                              self.instance_id, *dead])
            offline += [(room_id, user) for user in _text(users)]
        for other in dead:
            await self._forget(keys=[self.idx_key(other), self._instances_key],
                               args=[instance_key(self.prefix, other), other])
        PRUNED.inc(len(offline))
        log.info("presence.pruned", instances=dead, rooms=len(rooms), offline=len(offline),
                 seconds=round(time.monotonic() - started, 3))
        return offline

    async def close(self) -> list[tuple[str, str]]:
        """Clean shutdown: drop our entries and user marks now rather than at the expiry.
        Returns users who were online only through them (normally none: sockets left first)."""
        self._local.clear()
        users, self._users = list(self._users), {}
        offline: list[tuple[str, str]] = []
        try:
            offline = await self.sync()
            for user_id in users:
                await self._user_unset(keys=[self.user_key(user_id)], args=[self.instance_id])
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._idx_key)
                pipe.srem(self._instances_key, self.instance_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("presence.close_failed", error=repr(exc))
        return offline
