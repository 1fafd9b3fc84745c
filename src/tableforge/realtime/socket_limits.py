"""Open sockets per user and per client address, on this instance.

Counting is synchronous (no await between the check and the increment), so sockets opened all at
once by one user can never exceed the cap: each handshake takes a lease or is refused, and the
lease is released exactly once, on whatever path the socket ends.

Per instance, not per cluster: a user with the cap on each of N instances may hold N x the cap.
A shared count would need a Redis round trip per handshake and per close, plus the repair of the
counts a crashed instance leaves behind; the per-instance cap already bounds what one client can
cost one process, which is what the cap protects. The maps hold one entry per user or address
with an open socket here (so they are bounded by the open sockets, tableforge_ws_connections).
"""

from __future__ import annotations

from typing import Literal

from tableforge.observability import metrics

Refusal = Literal["per_user", "per_address"]


class SocketLease:
    """One admitted socket; `release()` is idempotent, so every close path may call it."""

    __slots__ = ("_address", "_limits", "_user_id")

    def __init__(self, limits: SocketLimits, user_id: str, address: str) -> None:
        self._limits: SocketLimits | None = limits
        self._user_id = user_id
        self._address = address

    def release(self) -> None:
        limits, self._limits = self._limits, None
        if limits is not None:
            limits._drop(limits._users, self._user_id)
            limits._drop(limits._addresses, self._address)


class SocketLimits:
    def __init__(self, per_user: int, per_address: int) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self._users: dict[str, int] = {}
        self._addresses: dict[str, int] = {}

    def acquire(self, user_id: str, address: str) -> SocketLease | Refusal:
        """A lease, or why not (counted in tableforge_ws_refused_total)."""
        if self._users.get(user_id, 0) >= self.per_user:
            reason: Refusal = "per_user"
        elif self._addresses.get(address, 0) >= self.per_address:
            reason = "per_address"
        else:
            self._users[user_id] = self._users.get(user_id, 0) + 1
            self._addresses[address] = self._addresses.get(address, 0) + 1
            return SocketLease(self, user_id, address)
        metrics.WS_REFUSED.labels(reason).inc()
        return reason

    def open_for_user(self, user_id: str) -> int:
        return self._users.get(user_id, 0)

    def open_for_address(self, address: str) -> int:
        return self._addresses.get(address, 0)

    @staticmethod
    def _drop(counts: dict[str, int], key: str) -> None:
        left = counts.get(key, 0) - 1
        if left > 0:
            counts[key] = left
        else:
            counts.pop(key, None)
