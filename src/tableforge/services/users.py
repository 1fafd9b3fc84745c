"""Accounts and sessions. Only a SHA-256 of each random token is stored; logout revokes it."""

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
from tableforge.domain.errors import Conflict, Unauthorized
from tableforge.services import shapes
from tableforge.services.runtime import Runtime

# OWASP's argon2id minimum (19 MiB, t=2, p=1): ~15 ms a hash, run off the event loop.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verifying an unknown username still costs one hash, so timing does not reveal which names exist.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_user(rt: Runtime, username: str, password: str, *, first_name: str | None = None,
                      last_name: str | None = None, is_admin: bool = False) -> dict[str, Any]:
    password_hash = await asyncio.to_thread(_hasher.hash, password)
    values = {
        "id": shapes.new_id(), "username": username, "password_hash": password_hash,
        "first_name": first_name, "last_name": last_name, "profile_image_url": None,
        "is_admin": is_admin, "created_at": shapes.now(),
    }
    try:
        async with rt.db.write() as conn:
            await conn.execute(sa.insert(users).values(**values))
    except IntegrityError:
        raise Conflict("that username is taken", code="username_taken") from None
    return shapes.user(values)


async def new_session(rt: Runtime, user_id: str) -> str:
    token = secrets.token_urlsafe(32)
    created = shapes.now()
    async with rt.db.write() as conn:
        await conn.execute(sa.insert(sessions).values(
            token_hash=hash_token(token), user_id=user_id, created_at=created,
            expires_at=created + timedelta(hours=rt.settings.session_ttl_hours),
        ))
    return token


async def register(rt: Runtime, username: str, password: str, first_name: str | None,
                   last_name: str | None) -> tuple[dict[str, Any], str]:
    user = await create_user(rt, username, password, first_name=first_name, last_name=last_name)
    return user, await new_session(rt, user["id"])


async def login(rt: Runtime, username: str, password: str) -> tuple[dict[str, Any], str]:
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(users).where(users.c.username == username))).mappings().first()
    stored = row["password_hash"] if row else _DUMMY_HASH
    try:
        await asyncio.to_thread(_hasher.verify, stored, password)
    except (VerificationError, InvalidHashError):
        row = None
    if row is None:
        raise Unauthorized("wrong username or password", code="invalid_credentials")
    return shapes.user(row), await new_session(rt, str(row["id"]))


async def authenticate(rt: Runtime, token: str | None) -> dict[str, Any]:
    """The user behind a bearer token, or Unauthorized."""
    if not token or len(token) > 256:
        raise Unauthorized("a valid token is required", code="unauthorized")
    digest = hash_token(token)

    async def load() -> dict[str, Any] | None:
        async with rt.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(users, sessions.c.expires_at)
                    .join(sessions, sessions.c.user_id == users.c.id)
                    .where(sessions.c.token_hash == digest, sessions.c.revoked_at.is_(None))
                )
            ).mappings().first()
        if row is None:
            return None
        expires = row["expires_at"] if row["expires_at"].tzinfo else row["expires_at"].replace(tzinfo=UTC)
        return {"user": shapes.user(row), "expires": expires.timestamp()}

    # Every request and socket authenticates: cached per token hash; logout deletes it everywhere.
    entry = await rt.cache.get_or_load(session_key(digest), load, kind="session")
    if entry is None or entry["expires"] <= time.time():
        raise Unauthorized("the token is invalid, expired or revoked", code="invalid_token")
    return dict(entry["user"])


def session_key(digest: str) -> str:
    return f"session:{digest}"


async def logout(rt: Runtime, token: str) -> None:
    async with rt.db.write() as conn:
        await conn.execute(
            sa.update(sessions).where(sessions.c.token_hash == hash_token(token), sessions.c.revoked_at.is_(None))
            .values(revoked_at=shapes.now())
        )
    await rt.cache.delete(session_key(hash_token(token)))


async def get_user(rt: Runtime, user_id: str) -> dict[str, Any] | None:
    async with rt.db.read() as conn:
        row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).mappings().first()
    return shapes.user(row) if row else None
