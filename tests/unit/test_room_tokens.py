"""The token owner index that checks preview moves: loaded once per room, kept current from the
stored event bodies exactly as the services encode them, bounded, and never stale after a gap."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from tests.support.waiting import wait_until

from tableforge.db.event_log import encode_body
from tableforge.domain import events as ev
from tableforge.realtime.room_tokens import Lookup, RoomTokens

ROOM = str(uuid.uuid4())
GM, ALICE = str(uuid.uuid4()), str(uuid.uuid4())


def body(etype: str, version: int, payload: dict) -> str:
    """A stored event body, as the event log's one encoder writes it."""
    return encode_body(etype, ROOM, version, 1.0, GM, payload).decode()


def added(version: int, token_id: str, owner: str | None) -> str:
    token = {"id": token_id, "asset_id": str(uuid.uuid4()), "owner_id": owner, "x": 1.0, "y": 2.0,
             "rotation": 0.0, "scale": 1.0, "z_index": 0, "version": 1}
    return body(ev.TOKEN_ADDED, version, {"token": token})


def removed(version: int, token_id: str) -> str:
    return body(ev.TOKEN_REMOVED, version, {"token_id": token_id})


class Loader:
    def __init__(self, version: int, rows: list[tuple[str, str | None]]) -> None:
        self.version, self.rows, self.calls = version, rows, 0
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> tuple[int, list[tuple[str, str | None]]]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return self.version, list(self.rows)


async def test_loaded_once_then_kept_current_from_events() -> None:
    index = RoomTokens()
    gm_token, alice_token = str(uuid.uuid4()), str(uuid.uuid4())
    load = Loader(10, [(gm_token, GM)])
    assert await index.owner(ROOM, gm_token, load) == GM
    assert await index.owner(ROOM, alice_token, load) is Lookup.MISSING
    index.delivered(ROOM, 9, added(9, alice_token, ALICE))  # already in what was loaded: ignored
    assert await index.owner(ROOM, alice_token, load) is Lookup.MISSING
    index.delivered(ROOM, 11, added(11, alice_token, ALICE))
    index.delivered(ROOM, 12, body(ev.TOKEN_MOVED, 12, {"token_id": alice_token, "x": 1, "y": 2}))
    index.delivered(ROOM, 13, body(ev.CHAT_MESSAGE, 13, {"message": {"text": '{"type":"token.removed"'}}))
    assert await index.owner(ROOM, alice_token, load) == ALICE
    assert await index.owner(ROOM, alice_token.upper(), load) == ALICE, "ids in any case the protocol accepts"
    assert await index.owner(ROOM, alice_token.replace("-", ""), load) == ALICE
    index.delivered(ROOM, 14, removed(14, alice_token))
    assert await index.owner(ROOM, alice_token, load) is Lookup.MISSING
    index.delivered(ROOM, 15, added(15, token := str(uuid.uuid4()), None))
    assert await index.owner(ROOM, token, load) is None, "an owner-less token: only the GM may move it"
    assert load.calls == 1, "one query per room, not per frame"


async def test_events_delivered_during_the_load_are_applied_on_top() -> None:
    index = RoomTokens()
    early, late = str(uuid.uuid4()), str(uuid.uuid4())
    load = Loader(20, [(early, GM)])
    load.gate = asyncio.Event()
    lookups = [asyncio.ensure_future(index.owner(ROOM, t, load)) for t in (early, late, late)]
    await wait_until(lambda: load.calls == 1, what="the load to start")
    index.delivered(ROOM, 19, removed(19, early))  # committed before the load read: already in it
    index.delivered(ROOM, 20, body(ev.CHAT_MESSAGE, 20, {"message": {}}))
    index.delivered(ROOM, 21, added(21, late, ALICE))  # committed after: applied on top
    load.gate.set()
    assert await asyncio.gather(*lookups) == [GM, ALICE, ALICE]
    assert load.calls == 1, "concurrent lookups share one load"


async def test_a_skipped_version_drops_the_index_and_the_next_lookup_loads_again() -> None:
    index = RoomTokens()
    token = str(uuid.uuid4())
    load = Loader(5, [])
    assert await index.owner(ROOM, token, load) is Lookup.MISSING
    load.version, load.rows = 8, [(token, ALICE)]
    index.delivered(ROOM, 7, body(ev.CHAT_MESSAGE, 7, {"message": {}}))  # 6 never came
    assert await index.owner(ROOM, token, load) == ALICE
    assert load.calls == 2
    index.dropped(ROOM)  # the last local socket left
    assert len(index) == 0
    assert await index.owner(ROOM, token, load) == ALICE and load.calls == 3


async def test_bounded_in_rooms_and_tokens() -> None:
    index = RoomTokens(max_rooms=3, max_tokens=2)
    tokens = [str(uuid.uuid4()) for _ in range(3)]
    big = Loader(1, [(t, GM) for t in tokens])
    assert await index.owner(ROOM, tokens[0], big) is Lookup.UNKNOWN, "too many tokens: the caller asks the db"
    small = Loader(1, [(tokens[0], GM)])
    rooms = [str(uuid.uuid4()) for _ in range(5)]
    for room in rooms:
        assert await index.owner(room, tokens[0], small) == GM
    assert len(index) == 3, "least recently used rooms evicted"
    index.delivered(rooms[-1], 2, added(2, tokens[1], ALICE))
    index.delivered(rooms[-1], 3, added(3, tokens[2], ALICE))  # a third token: over the limit
    assert await index.owner(rooms[-1], tokens[1], small) is Lookup.UNKNOWN


async def test_a_failed_load_is_the_callers_error_and_is_retried() -> None:
    index = RoomTokens()

    async def failing() -> tuple[int, list[tuple[str, str | None]]]:
        raise ConnectionError("database down")

    with pytest.raises(ConnectionError):
        await index.owner(ROOM, str(uuid.uuid4()), failing)
    assert len(index) == 0
    assert await index.owner(ROOM, "not-a-uuid", Loader(1, [])) is Lookup.MISSING


async def test_a_scenes_fog_is_read_once_by_the_previews_that_ask_for_it_together() -> None:
    """The first previews of a room all find the fog missing: one read serves them all; a failed
    read is every waiter's error, and the next preview reads again."""
    from tableforge.domain.fog import Fog, parse_fog

    index = RoomTokens()
    load = Loader(1, [])
    reads, gate = [0], asyncio.Event()
    fog = parse_fog({"base": "hidden", "shapes": []})

    async def read_fog() -> Fog:
        reads[0] += 1
        await gate.wait()
        return fog

    asking = [asyncio.create_task(index.fog(ROOM, "scene", load, read_fog)) for _ in range(20)]
    await wait_until(lambda: reads[0] == 1, what="the first read under way")
    gate.set()
    assert [await t for t in asking] == [fog] * 20
    assert reads[0] == 1, "one read for 20 previews"
    assert await index.fog(ROOM, "scene", load, read_fog) is fog and reads[0] == 1, "then kept"

    async def failing() -> Fog:
        raise ConnectionError("database down")

    failed = [asyncio.create_task(index.fog(ROOM, "other", load, failing)) for _ in range(3)]
    assert [isinstance(e, ConnectionError) for e in await asyncio.gather(*failed, return_exceptions=True)] == [True] * 3
    assert await index.fog(ROOM, "other", load, read_fog) is fog, "read again after a failure"


async def test_a_caller_that_goes_away_does_not_cut_off_the_fog_read_of_the_others() -> None:
    from tableforge.domain.fog import Fog

    index = RoomTokens()
    loader = Loader(1, [])
    gate = asyncio.Event()
    reads: list[int] = []

    async def load_fog() -> Fog:
        reads.append(1)
        await gate.wait()
        return Fog()

    first = asyncio.create_task(index.fog(ROOM, "scene-3", loader, load_fog))
    await wait_until(lambda: len(reads) == 1, what="the read started")
    second = asyncio.create_task(index.fog(ROOM, "scene-3", loader, load_fog))
    first.cancel()  # its socket closed (whether the second has joined the read yet or not)
    gate.set()
    assert isinstance(await second, Fog)
    assert first.cancelled() and len(reads) == 1
