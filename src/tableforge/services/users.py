"""Accounts and sessions. Only a SHA-256 of each random token is stored (the session id); logout,
a password change and an admin's disable revoke sessions, and their sockets are closed (4401)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from datetime import UTC, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError

from tableforge.db.schema import sessions, users
from tableforge.domain.errors import Conflict, Forbidden, Unauthorized
from tableforge.services import invites, replies, revocation
from tableforge.services.runtime import Runtime

# OWASP's argon2id minimum (19 MiB, t=2, p=1): ~15 ms a hash, run off the event loop.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verifying an unknown username still costs one hash, so timing does not reveal which names exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_user(rt: Runtime, username: str, password: str, *, first_name: str | None = None,
                      last_name: str | None = None, is_admin: bool = False,
                      invite_code: str | None = None) -> dict[str, Any]:
    """Insert the account; with `invite_code`, the invite is used in the same transaction (a
    taken username does not use it up). Names are unique regardless of case (migration 0003)."""
    password_hash = await asyncio.to_thread(_hasher.hash, password)
    values = {
        "id": replies.new_id(), "username": username, "password_hash": password_hash,
        "first_name": first_name, "last_name": last_name, "profile_image_url": None,
        "is_admin": is_admin, "created_at": replies.now(),
    }
    try:
        async with rt.db.write() as conn:
            if invite_code is not None:
                await invites.use(conn, invite_code)
            await conn.execute(sa.insert(users).values(**values))
    except IntegrityError:
        raise Conflict("that username is taken", code="username_taken") from None
    return replies.user(values)


async def new_session(rt: Runtime, user_id: str) -> str:
    token = secrets.token_urlsafe(32)
    created = replies.now()
    async with rt.db.write() as conn:
        await conn.execute(sa.insert(sessions).values(
            token_hash=hash_token(token), user_id=user_id, created_at=created,
            expires_at=created + timedelta(hours=rt.settings.session_ttl_hours),
        ))
    return token


async def register(rt: Runtime, username: str, password: str, first_name: str | None,
                   last_name: str | None, invite_code: str | None = None) -> tuple[dict[str, Any], str]:
    """Self-service registration, as TABLEFORGE_REGISTRATION allows (`open`, `invite`, `closed`)."""
    mode = rt.settings.registration
    if mode == "closed":
        raise Forbidden("registration is closed on this server: ask an administrator for an account",
                        code="registration_closed")
    if mode == "invite" and not invite_code:
        raise Forbidden("registration needs an invite code from an administrator", code="invite_required")
    user = await create_user(rt, username, password, first_name=first_name, last_name=last_name,
                             invite_code=invite_code if mode == "invite" else None)
    return user, await new_session(rt, user["id"])


async def login(rt: Runtime, username: str, password: str) -> tuple[dict[str, Any], str]:
    """Names match regardless of case (`Bob` logs in as `bob`'s account), through the unique
    lower(username) index. A disabled account is refused only after its password checked out, so
    the refusal does not tell strangers which accounts exist."""
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(users).where(sa.func.lower(users.c.username) == username.lower()))
               ).mappings().first()
    stored = row["password_hash"] if row else _DUMMY_HASH
    try:
        await asyncio.to_thread(_hasher.verify, stored, password)
    except (VerificationError, InvalidHashError):
        row = None
    if row is None:
        raise Unauthorized("wrong username or password", code="invalid_credentials")
    if row["disabled_at"] is not None:
        raise Forbidden("this account is disabled", code="user_disabled")
    return replies.user(row), await new_session(rt, str(row["id"]))


async def authenticate(rt: Runtime, token: str | None) -> dict[str, Any]:
    """The user behind a bearer token, or Unauthorized."""
    if not token or len(token) > 256:
        raise Unauthorized("a valid token is required", code="unauthorized")
    return await authenticate_session(rt, hash_token(token))


async def authenticate_session(rt: Runtime, digest: str) -> dict[str, Any]:
    """The user behind a session id (a token's hash, e.g. named by a redeemed socket ticket)."""

    async def load() -> dict[str, Any] | None:
        async with rt.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(users, sessions.c.expires_at)
                    .join(sessions, sessions.c.user_id == users.c.id)
                    .where(sessions.c.token_hash == digest, sessions.c.revoked_at.is_(None),
                           users.c.disabled_at.is_(None))
                )
            ).mappings().first()
        if row is None:
            return None
        expires = row["expires_at"] if row["expires_at"].tzinfo else row["expires_at"].replace(tzinfo=UTC)
        return {"user": replies.user(row), "expires": expires.timestamp()}

    # Every request and socket authenticates: cached per token hash; revocation deletes it everywhere.
    entry = await rt.cache.get_or_load(session_key(digest), load, kind="session")
    if entry is None or entry["expires"] <= time.time():
        raise Unauthorized("the token is invalid, expired or revoked", code="invalid_token")
    return dict(entry["user"])


session_key = revocation.session_key


async def logout(rt: Runtime, token: str) -> None:
    digest = hash_token(token)
    async with rt.db.write() as conn:
        await conn.execute(
            sa.update(sessions).where(sessions.c.token_hash == digest, sessions.c.revoked_at.is_(None))
            .values(revoked_at=replies.now())
        )
    await rt.cache.delete(session_key(digest))
    await revocation.session_revoked(rt, digest)


async def change_password(rt: Runtime, user_id: str, token: str, current: str, new: str) -> int:
    """Check the current password, store the new one, and revoke every other session of the user
    (their sockets close with 4401); the session making the change stays. Returns how many were
    revoked."""
    async with rt.db.read() as conn:
        stored = (await conn.execute(sa.select(users.c.password_hash).where(users.c.id == user_id))).scalar()
    try:
        await asyncio.to_thread(_hasher.verify, stored or _DUMMY_HASH, current)
    except (VerificationError, InvalidHashError):
        raise Forbidden("the current password is wrong", code="wrong_password") from None
    new_hash = await asyncio.to_thread(_hasher.hash, new)
    keep = hash_token(token)
    async with rt.db.write() as conn:
        await conn.execute(sa.update(users).where(users.c.id == user_id).values(password_hash=new_hash))
    return await revocation.revoke_user_sessions(rt, user_id, keep_session=keep, cause="password")


async def get_user(rt: Runtime, user_id: str) -> dict[str, Any] | None:
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).mappings().first()
    return replies.user(row) if row else None
