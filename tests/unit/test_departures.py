"""The held departures of dropped sockets (services/departures.py): due once, given up per room, bounded."""

from __future__ import annotations

import asyncio

from tableforge.services.departures import LINGERED, Departure, Departures


def _departure(user: str, key: str, *rooms: str) -> Departure:
    return Departure(user, key, list(rooms), {"id": user})


async def test_a_departure_is_due_once_after_its_grace() -> None:
    held = Departures()
    due: asyncio.Queue[Departure] = asyncio.Queue()
    assert held.hold(_departure("u1", "i/a", "r1", "r2"), 0.01, due.put_nowait)
    assert len(held) == 1
    got = await asyncio.wait_for(due.get(), 5)
    assert (got.conn_key, got.rooms) == ("i/a", ["r1", "r2"])
    assert len(held) == 0 and held.take_all() == []


async def test_a_goodbye_takes_the_users_keys_in_that_room_only() -> None:
    held = Departures()
    held.hold(_departure("u1", "i/a", "r1", "r2"), 60, lambda d: None)
    held.hold(_departure("u1", "i/b", "r1"), 60, lambda d: None)
    held.hold(_departure("u2", "i/c", "r1"), 60, lambda d: None)
    assert sorted(held.take_room("r1", "u1")) == ["i/a", "i/b"]
    assert held.take_room("r1", "u1") == [], "given up once"
    assert held.take_room("r3", "u2") == []
    # The departures stay for the rest: i/a still holds r2, and every one the user's mark until its grace.
    rest = {d.conn_key: d.rooms for d in held.take_all()}
    assert rest == {"i/a": ["r2"], "i/b": [], "i/c": ["r1"]}


async def test_take_all_cancels_every_timer() -> None:
    held = Departures()
    departures = [_departure("u1", f"i/{n}", "r1") for n in range(3)]
    for d in departures:
        held.hold(d, 60, lambda d: None)
    assert {d.conn_key for d in held.take_all()} == {"i/0", "i/1", "i/2"}
    assert all(d.timer is not None and d.timer.cancelled() for d in departures)
    assert len(held) == 0


async def test_past_the_limit_a_socket_departs_at_once() -> None:
    held = Departures(limit=2)
    refused = LINGERED.labels("refused")._value.get()
    assert held.hold(_departure("u1", "i/a", "r1"), 60, lambda d: None)
    assert held.hold(_departure("u2", "i/b", "r1"), 60, lambda d: None)
    assert not held.hold(_departure("u3", "i/c", "r1"), 60, lambda d: None)
    assert LINGERED.labels("refused")._value.get() == refused + 1
    assert len(held) == 2
    held.take_all()
