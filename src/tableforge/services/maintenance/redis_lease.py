"""The maintenance lease in Redis (scale-out): one key, `<prefix>maintenance:lease`, holding the
holder's instance id and a random token of this process.

Taking and renewing are one Lua script (SET ... PX when the key is free, PEXPIRE when it holds our
value, nothing otherwise), so a renewal can never extend a lease another instance has taken since
ours ran out; releasing deletes the key only while it still holds our value (compare and delete).
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

from tableforge.services.maintenance.lease import Lease, LeaseView

if TYPE_CHECKING:
    from redis.asyncio import Redis

_HOLD = """
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLease(Lease):
    backend = "redis"

    def __init__(self, redis: Redis, prefix: str, instance_id: str, seconds: float) -> None:
        super().__init__(instance_id, seconds)
        self.key = f"{prefix}maintenance:lease"
        # The token tells this process from an earlier one that had the same instance id.
        self.value = f"{instance_id} {secrets.token_hex(8)}"
        self._redis = redis
        self._hold = redis.register_script(_HOLD)
        self._release = redis.register_script(_RELEASE)

    async def hold(self) -> bool:
        sent = time.monotonic()
        got = await self._hold(keys=[self.key], args=[self.value, max(1, int(self.seconds * 1000))])
        if int(got) == 1:
            # Redis counts the lease time from when it ran the script, which is after `sent`.
            self.valid_until = sent + self.seconds - self.margin
            return True
        self.valid_until = 0.0
        return False

    async def release(self) -> None:
        self.valid_until = 0.0
        await self._release(keys=[self.key], args=[self.value])

    async def view(self) -> LeaseView:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(self.key)
                pipe.pttl(self.key)
                value, ttl = await pipe.execute()
        except Exception as exc:  # an admin page must answer while Redis is down
            return LeaseView(self.backend, None, None, error=f"Redis did not answer: {type(exc).__name__}")
        if value is None:
            return LeaseView(self.backend, None, None)
        text = value.decode() if isinstance(value, bytes) else str(value)
        return LeaseView(self.backend, text.rsplit(" ", 1)[0], round(int(ttl) / 1000, 3) if int(ttl) > 0 else None)
