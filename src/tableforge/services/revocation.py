"""Revoking sessions: mark them in the database, drop their cached entries on every instance,
then tell every instance (the control channel; in-process in embedded mode) to close their sockets
with 4401. Revocations are rare (logout, password change, an admin's disable): a message to every
instance is simpler and surer than asking presence which instances hold the user's sockets."""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa

from tableforge.db.schema import sessions
from tableforge.observability.auth_metrics import SESSIONS_REVOKED_BY_CAUSE
from tableforge.realtime.revocation import SESSION_REVOKED, USER_REVOKED
from tableforge.services import replies
from tableforge.services.runtime import Runtime

Cause = Literal["logout", "password", "disabled"]
_CACHE_DELETE_BATCH = 500


def session_key(digest: str) -> str:
    return f"session:{digest}"


async def session_revoked(rt: Runtime, session_id: str) -> None:
    """After logout: close that session's sockets, wherever they are."""
    SESSIONS_REVOKED_BY_CAUSE["logout"].inc()
    await rt.hub.publish_control({"kind": SESSION_REVOKED, "session_id": session_id})


async def revoke_user_sessions(rt: Runtime, user_id: str, *, keep_session: str | None, cause: Cause) -> int:
    """Revoke every live session of the user but `keep_session`; close their sockets everywhere."""
    now = replies.now()
    live = sa.and_(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
    if keep_session is not None:
        live = sa.and_(live, sessions.c.token_hash != keep_session)
    async with rt.db.write() as conn:
        digests = list((await conn.execute(sa.select(sessions.c.token_hash).where(live))).scalars())
        await conn.execute(sa.update(sessions).where(live).values(revoked_at=now))
    keys = [session_key(d) for d in digests]
    for start in range(0, len(keys), _CACHE_DELETE_BATCH):
        await rt.cache.delete(*keys[start:start + _CACHE_DELETE_BATCH])
    SESSIONS_REVOKED_BY_CAUSE[cause].inc(len(digests))
    # Sent even when no session row changed: a socket may have authenticated from a cache entry
    # that was being deleted at the same time.
    await rt.hub.publish_control({"kind": USER_REVOKED, "user_id": user_id, "keep_session": keep_session})
    return len(digests)
