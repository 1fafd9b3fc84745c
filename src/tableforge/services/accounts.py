"""Administrators disabling and enabling accounts. A disabled user cannot log in, every session
of theirs is revoked and their sockets close (4401) on every instance."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tableforge.db.schema import users
from tableforge.domain.errors import Conflict, NotFound
from tableforge.services import replies, revocation
from tableforge.services.runtime import Runtime


async def set_disabled(rt: Runtime, admin_id: str, user_id: str, disabled: bool) -> dict[str, Any]:
    if disabled and user_id == admin_id:
        raise Conflict("administrators cannot disable their own account", code="cannot_disable_self")
    async with rt.db.write() as conn:
        row = (await conn.execute(sa.select(users.c.id, users.c.disabled_at).where(users.c.id == user_id))
               ).mappings().first()
        if row is None:
            raise NotFound("no user has that id", code="user_not_found")
        since = row["disabled_at"]
        if disabled and since is None:
            since = replies.now()
            await conn.execute(sa.update(users).where(users.c.id == user_id).values(disabled_at=since))
        elif not disabled and since is not None:
            since = None
            await conn.execute(sa.update(users).where(users.c.id == user_id).values(disabled_at=None))
    revoked = 0
    if disabled:
        # Also when it was disabled already: a repeated call still closes whatever is open.
        revoked = await revocation.revoke_user_sessions(rt, user_id, keep_session=None, cause="disabled")
    return {"id": user_id, "disabled": disabled, "disabled_at": replies.iso(since), "sessions_revoked": revoked}
