"""The Lua scripts of the Redis tier: each one step that must be atomic on the server."""

from __future__ import annotations

from typing import Final

# KEYS[1] value, KEYS[2] lock; ARGV[1] token, ARGV[2] payload, ARGV[3] px.
SET_IF_LOCKED: Final = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""
RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# A counter that disappears (eviction, restart) restarts at a fresh millisecond baseline, so
# it never goes back to a value some still-cached key was built with.
GEN_GET: Final = """
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1])
  v = ARGV[1]
end
return v
"""
GEN_BUMP: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[1]) end
local v = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return v
"""
