"""Guessing passwords and invite codes: after a few wrong guesses per username, user or address,
the server answers 429 `rate_limited` with Retry-After instead of checking (test server: 5 per
user, 30 per address, 60 s window; see conftest). Each test comes from its own client address
(X-Forwarded-For, trusted from loopback), so tests never share an address counter."""

from __future__ import annotations

import asyncio
import random
import uuid

import httpx

from tests.support.client import Api
from tests.support.metrics import sample

PER_USER, PER_ADDRESS, WINDOW = 5, 30, 60


def new_address() -> dict[str, str]:
    return {"X-Forwarded-For": f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"}


async def login(http: httpx.AsyncClient, name: str, password: str, address: dict[str, str]) -> httpx.Response:
    r = await http.post("/api/auth/login", json={"username": name, "password": password}, headers=address)
    http.cookies.clear()
    return r


def assert_limited(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= WINDOW


async def test_many_wrong_passwords_at_once_are_not_all_checked(api: Api) -> None:
    bob = await api.register("bob")
    name = bob.user["username"]
    address = new_address()
    refused_before = await sample(api.http, "tableforge_attempts_refused_total", limiter="login", key="user")
    replies = await asyncio.gather(*(login(api.http, name, f"wrong-{i}", address) for i in range(40)))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [401] * PER_USER + [429] * (40 - PER_USER)  # exact, although all were sent at once
    for r in replies:
        if r.status_code == 429:
            assert_limited(r)
    assert await sample(api.http, "tableforge_attempts_refused_total", limiter="login",
                        key="user") - refused_before == 40 - PER_USER
    # Locked: even the right password is not checked, from any address, with any case of the name.
    assert_limited(await login(api.http, name, "correct horse", address))
    assert_limited(await login(api.http, name.upper(), "correct horse", new_address()))


async def test_a_successful_login_clears_the_username_failures(api: Api) -> None:
    ann = await api.register("ann")
    name, address = ann.user["username"], new_address()
    for _ in range(PER_USER - 1):
        assert (await login(api.http, name, "wrong", address)).status_code == 401
    assert (await login(api.http, name, "correct horse", address)).status_code == 200
    statuses = [(await login(api.http, name, "wrong", address)).status_code for _ in range(PER_USER + 1)]
    assert statuses == [401] * PER_USER + [429]


async def test_wrong_passwords_limited_per_address(api: Api) -> None:
    carl = await api.register("carl")
    address = new_address()
    # Successes do not count against an address (a table of friends behind one router).
    for _ in range(PER_ADDRESS + 2):
        assert (await login(api.http, carl.user["username"], "correct horse", address)).status_code == 200
    # One guess each at many names: the username limits never fill, the address one does.
    names = [f"nobody{uuid.uuid4().hex[:10]}" for _ in range(PER_ADDRESS + 10)]
    refused_before = await sample(api.http, "tableforge_attempts_refused_total", limiter="login", key="address")
    replies = await asyncio.gather(*(login(api.http, n, "guess", address) for n in names))
    assert sorted(r.status_code for r in replies) == [401] * PER_ADDRESS + [429] * 10
    assert await sample(api.http, "tableforge_attempts_refused_total", limiter="login",
                        key="address") - refused_before == 10
    assert_limited(await login(api.http, carl.user["username"], "correct horse", address))
    # The same account from another address is not affected.
    assert (await login(api.http, carl.user["username"], "correct horse", new_address())).status_code == 200


async def join(api: Api, headers: dict[str, str], code: str, address: dict[str, str]) -> httpx.Response:
    return await api.http.post("/api/rooms/join", json={"invite_code": code}, headers=headers | address)


async def test_wrong_invite_codes_limited_per_user(api: Api) -> None:
    gm, eve, fay = await api.register("gm"), await api.register("eve"), await api.register("fay")
    room = await api.room(gm)
    address = new_address()
    replies = await asyncio.gather(*(join(api, eve.headers, f"WRONG{i:03d}", address) for i in range(12)))
    assert sorted(r.status_code for r in replies) == [404] * PER_USER + [429] * (12 - PER_USER)
    assert {r.json()["error"]["code"] for r in replies} == {"invite_not_found", "rate_limited"}
    limited = await join(api, eve.headers, room["invite_code"], address)  # even the right code: locked
    assert_limited(limited)
    assert eve.id not in {p["user"]["id"] for p in (await api.snapshot(gm, room["id"]))["players"]}
    # Another user from the same address joins.
    assert (await join(api, fay.headers, room["invite_code"], address)).status_code == 200


async def test_wrong_invite_codes_limited_per_address(api: Api) -> None:
    gm = await api.register("gm")
    room = await api.room(gm)
    guessers = [await api.register("g") for _ in range(PER_ADDRESS // PER_USER + 1)]
    address = new_address()
    for g in guessers[:-1]:  # each stays within its own limit; together they fill the address
        for i in range(PER_USER):
            assert (await join(api, g.headers, f"NOPE{i:04d}", address)).status_code == 404
    last = guessers[-1]
    assert_limited(await join(api, last.headers, "NOPE9999", address))
    assert_limited(await join(api, last.headers, room["invite_code"], address))
    assert (await join(api, last.headers, room["invite_code"], new_address())).status_code == 200
