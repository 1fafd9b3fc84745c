"""The limits against guessing and flooding, built once from the settings (see Runtime.guards)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from tableforge.config import Settings
from tableforge.realtime.socket_limits import SocketLimits
from tableforge.services.attempts import AttemptLimiter, AttemptStore, MemoryAttemptStore, RedisAttemptStore, Rule
from tableforge.services.decodes import DecodeGate


@dataclass
class Guards:
    login: AttemptLimiter  # keys: user (the lowercased username), address
    invite: AttemptLimiter  # keys: user (the caller's id), address
    sockets: SocketLimits
    decodes: DecodeGate


def build_guards(settings: Settings, redis: Redis | None) -> Guards:
    memory = MemoryAttemptStore(settings.attempt_tracker_max_keys)
    store: AttemptStore = memory if redis is None else RedisAttemptStore(redis, settings.redis_prefix, memory)
    s = settings
    login = AttemptLimiter(store, "login", [
        Rule("user", s.login_max_failures_per_user, s.login_failure_window, reset_on_success=True),
        Rule("address", s.login_max_failures_per_address, s.login_failure_window),
    ])
    # A right invite code proves nothing about the other codes guessed: it clears nothing.
    invite = AttemptLimiter(store, "invite", [
        Rule("user", s.invite_max_failures_per_user, s.invite_failure_window),
        Rule("address", s.invite_max_failures_per_address, s.invite_failure_window),
    ])
    return Guards(login=login, invite=invite, sockets=SocketLimits(s.ws_max_per_user, s.ws_max_per_address),
                  decodes=DecodeGate(s.max_concurrent_decodes, s.decode_wait_seconds))
