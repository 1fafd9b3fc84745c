"""Accounts for security tests: an administrator made the operator's way, sessions, socket tickets."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from tests.support.client import Api, Player


async def make_admin(api: Api, env: dict[str, str]) -> Player:
    """`tableforge users create NAME --admin` against the server's own database, then a login."""
    name = f"admin{uuid.uuid4().hex[:8]}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tableforge", "users", "create", name, "--admin", "--password", "admin-password",
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return await login(api, name, "admin-password")


async def login(api: Api, username: str, password: str = "correct horse") -> Player:
    r = await api.http.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    api.http.cookies.clear()
    return Player(r.json()["user"], r.json()["token"])


async def ticket(api: Api, who: Player) -> str:
    r = await api.http.post("/api/auth/ws-ticket", headers=who.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["expires_in"] > 0 and len(body["ticket"]) >= 20
    return str(body["ticket"])
