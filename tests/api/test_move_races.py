"""Concurrent token.moves on one token: versions stay gap-free, guards hold under races, and every
acked move is stored as its own event (on PostgreSQL these take the one-statement path)."""

from __future__ import annotations

import asyncio

from tests.support.client import Api


async def test_racing_moves_with_one_if_version_only_one_wins(api: Api) -> None:
    gm, alice = await api.register("gm"), await api.register("al")
    room = await api.room(gm, alice)
    asset = await api.asset(gm, room["id"])
    sockets = [await api.ws(who) for who in (gm, gm, alice, alice)]
    for ws in sockets:
        await ws.request("join", room_id=room["id"])
    token = (await sockets[2].request("token.add", room_id=room["id"], asset_id=asset["id"], x=1, y=1))["token"]
    before = (await api.snapshot(gm, room["id"]))["room"]["version"]

    for round_ in range(5):
        current = (await api.snapshot(gm, room["id"]))["tokens"][0]["version"]
        replies = await asyncio.gather(*(
            ws.request("token.move", room_id=room["id"], token_id=token["id"], x=10 * round_ + i, y=i,
                       if_version=current)
            for i, ws in enumerate(sockets)))
        acks = [r for r in replies if r["type"] == "ack"]
        assert len(acks) == 1, replies
        assert all(r["code"] == "conflict" for r in replies if r["type"] == "error")
        assert acks[0]["token_version"] == current + 1

    snap = await api.snapshot(gm, room["id"])
    assert snap["room"]["version"] == before + 5
    assert snap["tokens"][0]["version"] == token["version"] + 5
    for ws in sockets:
        await ws.close()


async def test_concurrent_moves_are_each_stored_in_version_order(api: Api) -> None:
    gm, alice = await api.register("gm"), await api.register("al")
    room = await api.room(gm, alice)
    asset = await api.asset(gm, room["id"])
    movers = [await api.ws(who) for who in (gm, alice, gm, alice)]
    for ws in movers:
        await ws.request("join", room_id=room["id"])
    token = (await movers[1].request("token.add", room_id=room["id"], asset_id=asset["id"], x=0, y=0))["token"]
    start = (await api.snapshot(gm, room["id"]))["room"]["version"]

    async def burst(ws_index: int) -> list[dict]:
        ws = movers[ws_index]
        return [await ws.request("token.move", room_id=room["id"], token_id=token["id"], x=ws_index * 100 + i, y=i)
                for i in range(15)]

    results = [r for rs in await asyncio.gather(*(burst(i) for i in range(len(movers)))) for r in rs]
    assert all(r["type"] == "ack" for r in results), [r for r in results if r["type"] != "ack"][:3]
    versions = sorted(r["version"] for r in results)
    assert versions == list(range(start + 1, start + 1 + len(results)))

    # Every acked move is a stored event: a late joiner recovers exactly these, in order.
    late = await api.ws(gm)
    recovered = await late.request("join", room_id=room["id"], since=start)
    events = [e for e in recovered["events"] if e["type"] == "token.moved"]
    assert [e["version"] for e in events] == versions
    assert [e["token_version"] for e in events] == list(range(token["version"] + 1,
                                                                token["version"] + 1 + len(results)))
    by_version = {r["version"]: r for r in results}
    assert all(by_version[e["version"]]["token_version"] == e["token_version"] for e in events)
    last = events[-1]
    snap = await api.snapshot(gm, room["id"])
    assert (snap["tokens"][0]["x"], snap["tokens"][0]["y"]) == (last["x"], last["y"])
    assert snap["tokens"][0]["version"] == last["token_version"]
    for ws in [*movers, late]:
        await ws.close()


async def test_move_in_a_closed_room_is_refused_and_stores_nothing(api: Api) -> None:
    gm = await api.register("gm")
    room = await api.room(gm)
    asset = await api.asset(gm, room["id"])
    ws = await api.ws(gm)
    await ws.request("join", room_id=room["id"])
    token = (await ws.request("token.add", room_id=room["id"], asset_id=asset["id"], x=0, y=0))["token"]
    assert (await api.http.delete(f"/api/rooms/{room['id']}", headers=gm.headers)).status_code in (200, 204)
    reply = await ws.request("token.move", room_id=room["id"], token_id=token["id"], x=5, y=5)
    assert reply["type"] == "error" and reply["code"] in ("room_closed", "not_joined")
    await ws.close()
