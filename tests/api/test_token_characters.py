"""Tokens as characters on one server, both embedded backends (SQLite; PostgreSQL without Redis):
the scripted session of tests/support/character_session.py."""

from __future__ import annotations

from tests.support.character_session import character_session
from tests.support.client import Api


async def test_bars_conditions_and_their_visibility_reach_each_audience(api: Api) -> None:
    await character_session(api, api)


async def test_the_token_routes_take_character_fields_and_answer_the_callers_copy(api: Api) -> None:
    gm, alice = await api.register("gm"), await api.register("alice")
    room = await api.room(gm, alice)
    asset = await api.asset(gm, room["id"])
    url = f"/api/rooms/{room['id']}/tokens"
    r = await api.http.post(url, headers=gm.headers, json={
        "asset_id": asset["id"], "x": 5, "y": 5, "name": "Ogre", "size": 3, "conditions": ["angry"],
        "bars": [{"key": "hp", "label": "HP", "max": 30, "visibility": "gm"}], "name_visibility": "gm"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["name"], made["size"], made["bars"][0]["value"], made["conditions"]) == ("Ogre", 3.0, 30, ["angry"])
    seen = next(t for t in (await api.snapshot(alice, room["id"]))["tokens"] if t["id"] == made["id"])
    assert (seen["name"], seen["bars"], seen["conditions"]) == ("", [], ["angry"])
    r = await api.http.patch(f"{url}/{made['id']}", headers=gm.headers, json={"name": "Big Ogre", "if_version": 1})
    assert r.status_code == 200 and r.json()["name"] == "Big Ogre" and r.json()["version"] == 2, r.text
    mine = (await api.http.post(url, headers=alice.headers, json={"asset_id": asset["id"], "x": 1, "y": 1})).json()
    r = await api.http.patch(f"{url}/{mine['id']}", headers=alice.headers, json={"bars": []})
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_gm", r.text
    r = await api.http.patch(f"{url}/{mine['id']}", headers=alice.headers, json={"bars": [{"key": "x"}] * 4})
    assert r.status_code == 422, r.text
    r = await api.http.post(url, headers=gm.headers, json={"asset_id": asset["id"], "x": 1, "y": 1,
                                                           "bars": [{"key": "Bad Key"}]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_token_field", r.text
