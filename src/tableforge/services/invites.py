"""Registration invites (TABLEFORGE_REGISTRATION=invite): made, listed and revoked by admins, used
by `register`. The code is shown once, at creation; only its SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db.schema import registration_invites as invites
from tableforge.domain.errors import Forbidden, NotFound
from tableforge.services import replies
from tableforge.services.runtime import Runtime

LIST_MAX = 500


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


def _shape(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "uses": row["uses"], "used": row["used"],
            "expires_at": replies.iso(row["expires_at"]), "revoked": row["revoked_at"] is not None,
            "created_by": str(row["created_by"]) if row["created_by"] else None,
            "created_at": replies.iso(row["created_at"])}


async def create(rt: Runtime, admin_id: str, uses: int, expires_in_hours: float | None) -> dict[str, Any]:
    code = secrets.token_urlsafe(12)
    created = replies.now()
    values = {"id": replies.new_id(), "code_hash": _hash(code), "created_by": admin_id, "uses": uses, "used": 0,
              "expires_at": created + timedelta(hours=expires_in_hours) if expires_in_hours else None,
              "revoked_at": None, "created_at": created}
    async with rt.db.write() as conn:
        await conn.execute(sa.insert(invites).values(**values))
    return _shape(values) | {"code": code}


async def list_all(rt: Runtime) -> list[dict[str, Any]]:
    """The newest LIST_MAX invites (codes are never shown again)."""
    async with rt.db.read() as conn:
        rows = (await conn.execute(sa.select(invites).order_by(invites.c.created_at.desc()).limit(LIST_MAX))
                ).mappings().all()
    return [_shape(r) for r in rows]


async def revoke(rt: Runtime, invite_id: str) -> None:
    async with rt.db.write() as conn:
        result = await conn.execute(sa.update(invites).where(invites.c.id == invite_id)
                                    .values(revoked_at=sa.func.coalesce(invites.c.revoked_at, replies.now())))
    if result.rowcount == 0:
        raise NotFound("no invite has that id", code="invite_not_found")


async def use(conn: AsyncConnection, code: str) -> None:
    """Take one use of the invite inside the caller's transaction, or refuse. One guarded UPDATE,
    so two registrations racing for the last use cannot both get it."""
    now = replies.now()
    result = await conn.execute(
        sa.update(invites)
        .where(invites.c.code_hash == _hash(code), invites.c.revoked_at.is_(None), invites.c.used < invites.c.uses,
               sa.or_(invites.c.expires_at.is_(None), invites.c.expires_at > now))
        .values(used=invites.c.used + 1))
    if result.rowcount != 1:
        raise Forbidden("the invite code is unknown, used up, expired or revoked", code="invite_invalid")
