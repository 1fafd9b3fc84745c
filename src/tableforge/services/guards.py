"""The limits against guessing and flooding, built once from the settings (see Runtime.guards)."""

from __future__ import annotations

from dataclasses import dataclass

from tableforge.config import Settings
from tableforge.realtime.socket_limits import SocketLimits
from tableforge.services.attempts import AttemptLimiter, AttemptStore, Rule
from tableforge.services.decodes import DecodeGate


@dataclass
class Guards:
    login: AttemptLimiter  # keys: user (the lowercased username), address
    invite: AttemptLimiter  # keys: user (the caller's id), address
    sockets: SocketLimits
    decodes: DecodeGate


def build_guards(settings: Settings, store: AttemptStore) -> Guards:
    """`store`: where the guess counters live (memory, or Redis with memory as its fallback)."""
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
