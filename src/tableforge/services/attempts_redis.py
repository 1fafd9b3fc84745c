"""The guess counters in Redis (scale-out mode): shared by every instance, memory as the fallback.

In a module of its own so that an embedded server never imports the redis client library.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tableforge.observability import metrics
from tableforge.observability.logging import get_logger
from tableforge.services.attempts import AttemptStore, Counter, MemoryAttemptStore

log = get_logger(__name__)

# KEYS counters; ARGV[i] limit of KEYS[i], ARGV[n + i] its window in ms. Returns {wait_ms, index}:
# {0, 0} when every counter had room and was incremented (each gets its TTL on its first guess).
_TAKE = """
local n = #KEYS
local wait, which = 0, 0
for i = 1, n do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count >= tonumber(ARGV[i]) then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 0 then
      redis.call('PEXPIRE', KEYS[i], ARGV[n + i])
      ttl = tonumber(ARGV[n + i])
    end
    if ttl > wait then wait, which = ttl, i end
  end
end
if which > 0 then return {wait, which} end
for i = 1, n do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[n + i]) end
end
return {0, 0}
"""

# KEYS[1] counter. DECR keeps the TTL; a counter back at zero (or expired meanwhile) is deleted.
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end
return 1
"""

_REDIS_FAILURES = (RedisError, OSError, asyncio.TimeoutError)


class RedisAttemptStore(AttemptStore):
    """Shared by every instance. While Redis fails, `fallback` (memory) counts instead."""

    def __init__(self, redis: Redis, prefix: str, fallback: MemoryAttemptStore) -> None:
        self.prefix = prefix
        self.fallback = fallback
        self._redis = redis
        self._take = redis.register_script(_TAKE)
        self._give_back = redis.register_script(_GIVE_BACK)
        self._last_warning = 0.0

    def _failed(self, exc: BaseException) -> None:
        metrics.ATTEMPT_REDIS_ERRORS.inc()
        now = time.monotonic()
        if now - self._last_warning > 10.0:  # one line per 10 s during an outage, not one per guess
            self._last_warning = now
            log.warning("attempt_store_redis_failed", error=type(exc).__name__, fallback="memory")

    async def take(self, counters: Sequence[Counter]) -> tuple[float, int]:
        keys = [self.prefix + c.key for c in counters]
        args = [c.limit for c in counters] + [max(1, int(c.window * 1000)) for c in counters]
        try:
            wait_ms, which = await self._take(keys=keys, args=args)
        except _REDIS_FAILURES as exc:
            self._failed(exc)
            return await self.fallback.take(counters)
        return (int(wait_ms) / 1000.0, int(which) - 1) if int(which) > 0 else (0.0, -1)

    async def give_back(self, key: str) -> None:
        try:
            await self._give_back(keys=[self.prefix + key])
        except _REDIS_FAILURES as exc:
            self._failed(exc)
            await self.fallback.give_back(key)  # the reservation may have been taken there too

    async def clear(self, key: str) -> None:
        try:
            await self._redis.delete(self.prefix + key)
        except _REDIS_FAILURES as exc:
            self._failed(exc)
        await self.fallback.clear(key)
