"""A scripted game session with hidden information, run against one server (embedded) or against
two instances (the GM on one, the players on the other). It records every frame the players' and
the spectator's sockets receive and every HTTP reply they get, and checks that hidden data never
arrives: the ids of tokens and assets that stay hidden the whole session never appear anywhere, and
a token that was shown and then hidden again never appears after its `token.removed`.

Each step also checks what *should* arrive (a visible token's moves and previews, `token.added` on
a reveal), so that the scan cannot pass by receiving nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.support.client import Api, Player, Ws, png_bytes
from tests.support.waiting import wait_until

ACTIONS = ("token.add", "token.move", "token.update", "token.remove", "chat.send", "dice.roll", "pointer",
           "scene.create", "scene.update", "scene.remove", "scene.activate", "scene.view", "fog.change",
           "token.bar", "token.condition", "initiative", "ruler", "board.ping", "undo")


def frames(ws: Ws, start: int = 0) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in ws.raw[start:]]


async def frame_at(ws: Ws, version: int, within: float = 20.0) -> dict[str, Any]:
    """The room event (or room.skip) this socket got for `version`."""
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        for frame in frames(ws):
            if frame.get("type") not in ("ack", "error", "pong") and frame.get("version") == version:
                found.append(frame)
                return True
        return False

    await wait_until(arrived, within, f"version {version}")
    return found[0]


async def ephemeral(ws: Ws, etype: str, token_id: str, within: float = 20.0) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        for frame in frames(ws):
            if frame.get("type") == etype and frame.get("token_id") == token_id:
                found.append(frame)
                return True
        return False

    await wait_until(arrived, within, f"{etype} of {token_id}")
    return found[0]


@dataclass
class Table:
    gm_api: Api
    player_api: Api
    gm: Player
    alice: Player
    bob: Player
    spectator: Player
    room: dict[str, Any]
    g: Ws
    a: Ws
    b: Ws
    s: Ws
    http_replies: list[str] = field(default_factory=list)
    sockets: list[Ws] = field(default_factory=list)

    @property
    def room_id(self) -> str:
        return str(self.room["id"])

    @property
    def watchers(self) -> list[Ws]:
        """The sockets that see what players see."""
        return [self.a, self.b, self.s]

    async def http(self, method: str, path: str, who: Player, **kw: Any) -> Any:
        """A request from a player or the spectator; its reply is kept for the scan."""
        r = await self.player_api.http.request(method, path, headers=who.headers, **kw)
        self.http_replies.append(r.text)
        return r

    async def close(self) -> None:
        for ws in self.sockets:
            await ws.close()


async def seat(gm_api: Api, player_api: Api, system: dict[str, Any] | None = None) -> Table:
    """A room with a GM (on gm_api's server), two players and a spectator (on player_api's), all joined.
    `system`: a game system (POST /api/systems body) the GM makes first and the room uses."""
    gm, alice, bob, spectator = [await gm_api.register(n) for n in ("gm", "alice", "bob", "spec")]
    system_id = None
    if system is not None:
        made = await gm_api.http.post("/api/systems", headers=gm.headers, json=system)
        assert made.status_code == 201, made.text
        system_id = str(made.json()["id"])
    room = await gm_api.room(gm, alice, bob, system_id=system_id)
    assert room["spectator_invite_code"] and room["spectator_invite_code"] != room["invite_code"]
    r = await player_api.http.post("/api/rooms/join", json={"invite_code": room["spectator_invite_code"]},
                                   headers=spectator.headers)
    assert r.status_code == 200 and r.json()["role"] == "spectator", r.text
    g = await Ws.connect(gm_api.ws_url, gm.token)
    a, b, s = [await Ws.connect(player_api.ws_url, p.token) for p in (alice, bob, spectator)]
    table = Table(gm_api, player_api, gm, alice, bob, spectator, room, g, a, b, s, sockets=[g, a, b, s])
    for ws, role in ((g, "gm"), (a, "player"), (b, "player"), (s, "spectator")):
        ack = await ws.request("join", room_id=table.room_id)
        assert ack["type"] == "ack" and ack["role"] == role, ack
    return table


async def _changed(t: Table, ack: dict[str, Any]) -> list[dict[str, Any]]:
    """What each watcher got for the change acked by `ack` (its version)."""
    assert ack["type"] == "ack", ack
    return [await frame_at(ws, ack["version"]) for ws in t.watchers]


def _scan(t: Table, never: set[str], before: int | None = None) -> None:
    """No frame a player or the spectator received (up to version `before`, if given) holds any of
    `never`."""
    for ws in {*t.watchers, *t.sockets} - {t.g}:
        for raw in ws.raw:
            if before is not None and f'"version":{before}' in raw:
                break
            leaked = [secret for secret in never if secret in raw]
            assert not leaked, f"{leaked} reached a player: {raw[:300]}"


def _skips(got: list[dict[str, Any]], version: int) -> None:
    for frame in got:
        assert frame == {"type": "room.skip", "room_id": frame["room_id"], "version": version}, frame


async def hidden_tokens_session(gm_api: Api, player_api: Api) -> None:
    """Add hidden, drag, move, reveal, hide again, fog over a token, switch scenes, reconnect with
    `since`; the players' and spectator's frames and HTTP replies are scanned for hidden ids."""
    t = await seat(gm_api, player_api)
    try:
        await _play_hidden(t)
    finally:
        await t.close()


async def _play_hidden(t: Table) -> None:
    g, rid = t.g, t.room_id
    visible_asset = await t.gm_api.asset(t.gm, rid)
    r = await t.gm_api.http.post(f"/api/rooms/{rid}/assets", headers=t.gm.headers, data={"hidden": "true"},
                                 files={"file": ("secret.png", png_bytes(20, 20, "blue"), "image/png")})
    assert r.status_code == 201 and r.json()["hidden"] is True, r.text
    secret_asset = r.json()
    never: set[str] = {secret_asset["id"], secret_asset["sha256"]}  # must never reach a player
    scene_a = t.room["players_scene_id"]

    # A visible token: the control. Players get its add, moves and previews.
    visible = (await g.request("token.add", room_id=rid, asset_id=visible_asset["id"], x=100, y=100))
    for frame in await _changed(t, visible):
        assert frame["type"] == "token.added" and frame["token"] == visible["token"]
    v_id = visible["token"]["id"]

    # 1. A hidden token, added, dragged (previews), moved: players get room.skip, nothing else.
    hid = await g.request("token.add", room_id=rid, asset_id=visible_asset["id"], x=200, y=200, hidden=True)
    assert hid["token"]["hidden"] is True and hid["token"]["scene_id"] == scene_a
    h1 = hid["token"]["id"]
    never.add(h1)
    _skips(await _changed(t, hid), hid["version"])
    for step in range(5):
        await g.send("token.move", room_id=rid, token_id=h1, x=200 + step, y=200, preview=True)
    await g.send("token.move", room_id=rid, token_id=v_id, x=101, y=100, preview=True)
    for ws in t.watchers:  # the visible token's preview arrives, after the hidden one's would have
        await ephemeral(ws, "token.moving", v_id)
    moved = await g.request("token.move", room_id=rid, token_id=h1, x=250, y=250)
    _skips(await _changed(t, moved), moved["version"])
    # A token on the hidden asset is hidden data too.
    on_secret = await g.request("token.add", room_id=rid, asset_id=secret_asset["id"], x=300, y=300)
    never.add(on_secret["token"]["id"])
    _skips(await _changed(t, on_secret), on_secret["version"])

    # Players cannot touch what they cannot see: the same answer as for an id that never existed.
    for msg in ({"type": "token.move", "x": 1, "y": 1}, {"type": "token.update", "rotation": 5},
                {"type": "token.remove"}, {"type": "token.move", "x": 1, "y": 1, "preview": True}):
        fields = {k: v for k, v in msg.items() if k != "type"}
        err = await t.a.request(str(msg["type"]), room_id=rid, token_id=h1, **fields)
        assert err["type"] == "error" and err["code"] == "token_not_found", err
    err = await t.a.request("token.add", room_id=rid, asset_id=secret_asset["id"], x=1, y=1)
    assert err["code"] == "asset_not_found", err
    for method, extra in (("PATCH", {"json": {"x": 1, "if_version": 1}}), ("DELETE", {"params": {"if_version": 1}})):
        resp = await t.http(method, f"/api/rooms/{rid}/tokens/{h1}", t.alice, **extra)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "token_not_found", resp.text

    # 2. Reveal, then hide again: players get the whole token, then its removal; then nothing.
    h2 = (await g.request("token.add", room_id=rid, asset_id=visible_asset["id"], x=400, y=400, hidden=True))
    h2_id = h2["token"]["id"]
    await frame_at(t.a, h2["version"])
    revealed = await g.request("token.update", room_id=rid, token_id=h2_id, hidden=False)
    for frame in await _changed(t, revealed):
        assert frame["type"] == "token.added" and frame["token"] == revealed["token"] | {"hidden": False}
        assert frame["token"]["x"] == 400 and frame["token"]["asset_id"] == visible_asset["id"]
    rehidden = await g.request("token.update", room_id=rid, token_id=h2_id, hidden=True)
    for frame in await _changed(t, rehidden):
        assert frame == {"type": "token.removed", "room_id": rid, "version": rehidden["version"], "ts": frame["ts"],
                         "by": t.gm.id, "token_id": h2_id}
    gone = {ws: len(ws.raw) for ws in t.watchers}  # from here on, h2 must not appear either
    moved = await g.request("token.move", room_id=rid, token_id=h2_id, x=777, y=777)
    _skips(await _changed(t, moved), moved["version"])

    # 3. Fog: a visible token under a hidden rectangle disappears, its moves are skips, revealing
    # brings it back whole. Moving a token into and out of fog is token.removed / token.added.
    fogged = await g.request("token.add", room_id=rid, asset_id=visible_asset["id"], x=1000, y=1000)
    f_id = fogged["token"]["id"]
    await frame_at(t.a, fogged["version"])
    cover = await g.request("fog.change", room_id=rid, scene_id=scene_a, op="hide",
                            shape={"type": "rect", "x": 900, "y": 900, "width": 200, "height": 200})
    for frame in await _changed(t, cover):
        assert frame["type"] == "fog.changed" and frame["tokens_removed"] == [f_id] and frame["tokens_added"] == []
        assert frame["shape"] == {"type": "rect", "x": 900.0, "y": 900.0, "width": 200.0, "height": 200.0}
    gone_f = {ws: len(ws.raw) for ws in t.watchers}
    for step in range(3):
        await g.send("token.move", room_id=rid, token_id=f_id, x=1000 + step, y=1000, preview=True)
    under = await g.request("token.move", room_id=rid, token_id=f_id, x=1050, y=1050)
    _skips(await _changed(t, under), under["version"])
    err = await t.a.request("token.move", room_id=rid, token_id=f_id, x=0, y=0)
    assert err["code"] == "token_not_found"
    # the visible token into the fog and back out (a preview over fog reaches the GMs only)
    await g.send("token.move", room_id=rid, token_id=v_id, x=950, y=950, preview=True)
    into = await g.request("token.move", room_id=rid, token_id=v_id, x=950, y=950)
    for frame in await _changed(t, into):
        assert frame["type"] == "token.removed" and frame["token_id"] == v_id
    out = await g.request("token.move", room_id=rid, token_id=v_id, x=120, y=120)
    for frame in await _changed(t, out):
        assert frame["type"] == "token.added" and frame["token"]["id"] == v_id and frame["token"]["x"] == 120
    # a polygon reveal over the fogged token brings it back whole, where it now is
    uncover = await g.request("fog.change", room_id=rid, scene_id=scene_a, op="reveal",
                              shape={"type": "polygon", "points": [[1000, 1000], [1100, 1000], [1100, 1100],
                                                                  [1000, 1100]]})
    for frame in await _changed(t, uncover):
        assert [tok["id"] for tok in frame["tokens_added"]] == [f_id] and frame["tokens_added"][0]["x"] == 1050
    for ws, start in gone_f.items():  # between covering and uncovering, nothing of it arrived
        between = [raw for raw in ws.raw[start:] if f'"version":{uncover["version"]}' not in raw]
        assert not [raw for raw in between if f_id in raw], "a fogged token leaked"

    # 4. Scenes: a second scene prepared by the GM is invisible until the players are moved there.
    created = await g.request("scene.create", room_id=rid, name="Dragon's lair", grid={"size": 70})
    scene_b = created["scene"]["id"]
    assert created["scene"]["grid"]["size"] == 70 and created["scene"]["grid"]["type"] == "square"
    never.update({scene_b, "Dragon's lair"})
    _skips(await _changed(t, created), created["version"])
    lair = await g.request("token.add", room_id=rid, asset_id=visible_asset["id"], x=5, y=5, scene_id=scene_b)
    lurker = await g.request("token.add", room_id=rid, asset_id=visible_asset["id"], x=6, y=6, scene_id=scene_b,
                             hidden=True)
    never.update({lair["token"]["id"], lurker["token"]["id"]})
    _skips(await _changed(t, lair), lair["version"])
    _skips(await _changed(t, lurker), lurker["version"])
    err = await t.a.request("token.add", room_id=rid, asset_id=visible_asset["id"], x=1, y=1, scene_id=scene_b)
    assert err["code"] == "scene_not_found"
    mine = await t.a.request("token.add", room_id=rid, asset_id=visible_asset["id"], x=50, y=50)
    assert mine["token"]["scene_id"] == scene_a
    view = await g.request("scene.view", room_id=rid, scene_id=scene_b)
    assert view["scene_id"] == scene_b and {tok["id"] for tok in view["snapshot"]["tokens"]} == {
        lair["token"]["id"], lurker["token"]["id"]}
    # The GM now views B: A's events are skips for its socket (one scene's events per view).
    moved_a = await t.a.request("token.move", room_id=rid, token_id=mine["token"]["id"], x=55, y=55)
    assert (await frame_at(g, moved_a["version"]))["type"] == "room.skip"

    # 5. Reconnect with `since` while hidden things happen: the recovery carries skips only.
    await t.b.close()
    last = max(f.get("version", 0) for f in frames(t.b) if f.get("type") != "ack")
    hidden_move = await g.request("token.move", room_id=rid, token_id=lurker["token"]["id"], x=9, y=9)
    whisper = await g.request("chat.send", room_id=rid, text="the lair is empty", to=[t.alice.id])
    b2 = await Ws.connect(t.player_api.ws_url, t.bob.token)
    t.sockets.append(b2)
    back = await b2.request("join", room_id=rid, since=last)
    assert "events" in back, back
    got = {e["version"]: e for e in back["events"]}
    assert got[hidden_move["version"]] == {"type": "room.skip", "room_id": rid, "version": hidden_move["version"]}
    assert got[whisper["version"]]["type"] == "room.skip"
    assert sorted(got) == list(range(last + 1, back["version"] + 1)), "no gap: every version, as a skip or not"
    t.b = b2

    # 6. Move the players to B: they get B and the tokens of it they may see; not the hidden one.
    activated = await g.request("scene.activate", room_id=rid, scene_id=scene_b)
    for frame in await _changed(t, activated):
        assert frame["type"] == "scene.activated" and frame["scene_id"] == scene_b
        assert [tok["id"] for tok in frame["tokens"]] == [lair["token"]["id"]]
        assert frame["scene"]["name"] == "Dragon's lair" and frame["scene"]["grid"]["size"] == 70
    _scan(t, never, before=activated["version"])
    never -= {scene_b, "Dragon's lair", lair["token"]["id"]}  # legitimately known from here on
    # A's tokens are not the players' business any more; B's visible token is.
    moved_old = await g.request("token.move", room_id=rid, token_id=v_id, x=140, y=140)
    _skips(await _changed(t, moved_old), moved_old["version"])
    moved_new = await g.request("token.move", room_id=rid, token_id=lair["token"]["id"], x=15, y=15)
    for frame in await _changed(t, moved_new):
        assert frame["type"] == "token.moved" and frame["x"] == 15

    # HTTP as a player and as the spectator: the snapshot, assets, scenes.
    for who in (t.alice, t.spectator):
        snap = (await t.http("GET", f"/api/rooms/{rid}", who)).json()
        assert snap["scene_id"] == scene_b and [tok["id"] for tok in snap["tokens"]] == [lair["token"]["id"]]
        assert [s["id"] for s in snap["scenes"]] == [scene_b]
        assert {a["id"] for a in snap["assets"]} == {visible_asset["id"]}
        other = await t.http("GET", f"/api/rooms/{rid}", who, params={"scene_id": scene_a})
        assert other.status_code == 404 and other.json()["error"]["code"] == "scene_not_found"
        listed = (await t.http("GET", f"/api/rooms/{rid}/assets", who)).json()
        assert [a["id"] for a in listed["assets"]] == [visible_asset["id"]]
        scenes = (await t.http("GET", f"/api/rooms/{rid}/scenes", who)).json()
        assert [s["id"] for s in scenes["scenes"]] == [scene_b] and scenes["players_scene_id"] == scene_b
    gm_snap = await t.gm_api.http.get(f"/api/rooms/{rid}", params={"scene_id": scene_a}, headers=t.gm.headers)
    assert h1 in {tok["id"] for tok in gm_snap.json()["tokens"]}, "the GM sees everything"
    assert len(gm_snap.json()["scenes"]) == 2

    # The scan: nothing that stayed hidden ever reached a player or the spectator.
    _scan(t, never)
    for ws, start in gone.items():
        assert not [raw for raw in ws.raw[start:] if h2_id in raw], "a token hidden again leaked"
    for reply in t.http_replies:
        assert not [secret for secret in never if secret in reply], reply[:300]


async def whispers_and_rolls_session(gm_api: Api, player_api: Api) -> None:
    """Whispers and secret rolls reach exactly their audience, live, in `join {since}` and in the
    snapshot's messages."""
    t = await seat(gm_api, player_api)
    try:
        g, a, b, s, rid = t.g, t.a, t.b, t.s, t.room_id
        start = {ws: max([f.get("version", 0) for f in frames(ws)] + [0]) for ws in (g, a, b, s)}
        sent = {
            "whisper_to_alice": await g.request("chat.send", room_id=rid, text="psst alice", to=[t.alice.id]),
            "alice_to_bob": await a.request("chat.send", room_id=rid, text="psst bob", to=[t.bob.id]),
            "gm_roll": await a.request("dice.roll", room_id=rid, notation="1d20", visibility="gm"),
            "self_roll": await b.request("dice.roll", room_id=rid, notation="1d6", visibility="self"),
            "room_roll": await b.request("dice.roll", room_id=rid, notation="2d6"),
            "gm_self_roll": await g.request("dice.roll", room_id=rid, notation="1d100", visibility="gm"),
        }
        # who may see it (the sender gets the ack, never the event)
        audience = {
            "whisper_to_alice": {a}, "alice_to_bob": {b}, "gm_roll": {g}, "self_roll": set(),
            "room_roll": {g, a, s}, "gm_self_roll": set(),
        }
        senders = {"whisper_to_alice": g, "alice_to_bob": a, "gm_roll": a, "self_roll": b, "room_roll": b,
                   "gm_self_roll": g}
        for name, ack in sent.items():
            assert ack["type"] == "ack", (name, ack)
            for ws in (g, a, b, s):
                if ws is senders[name]:
                    continue
                frame = await frame_at(ws, ack["version"])
                if ws in audience[name]:
                    assert frame["type"] in ("chat.message", "dice.rolled"), (name, frame)
                else:
                    assert frame == {"type": "room.skip", "room_id": rid, "version": ack["version"]}, (name, frame)
        assert sent["whisper_to_alice"]["message"]["visibility"] == "whisper"
        assert sent["whisper_to_alice"]["message"]["to"] == [t.alice.id]
        assert sent["gm_roll"]["roll"]["visibility"] == "gm"
        bad = await a.request("chat.send", room_id=rid, text="x", to=[t.gm.id, "00000000-0000-4000-8000-000000000000"])
        assert bad["type"] == "error" and bad["code"] == "unknown_recipient", bad

        # In history: a rejoin with since, and the snapshot's messages, show each only what reached them.
        texts = {"whisper_to_alice": "psst alice", "alice_to_bob": "psst bob"}
        for ws, who in ((a, t.alice), (b, t.bob), (s, t.spectator), (g, t.gm)):
            again = await ws.request("join", room_id=rid, since=start[ws])
            got = {e["version"]: e for e in again["events"]}
            snap = await (t.gm_api if who is t.gm else t.player_api).http.get(f"/api/rooms/{rid}",
                                                                                 headers=who.headers)
            messages = {m["version"] for m in snap.json()["messages"]}
            for name, ack in sent.items():
                may = ws in audience[name] or ws is senders[name]
                assert (got[ack["version"]]["type"] != "room.skip") == may, (name, who.user["username"])
                assert (ack["version"] in messages) == may, (name, who.user["username"], "snapshot")
                if name in texts and not may:
                    assert texts[name] not in snap.text and texts[name] not in json.dumps(again)
    finally:
        await t.close()


async def spectator_session(gm_api: Api, player_api: Api) -> None:
    """A spectator sees what players see and every action of theirs is refused."""
    t = await seat(gm_api, player_api)
    try:
        rid, s = t.room_id, t.s
        asset = await t.gm_api.asset(t.gm, rid)
        added = await t.g.request("token.add", room_id=rid, asset_id=asset["id"], x=1, y=1)
        token = added["token"]
        assert (await frame_at(s, added["version"]))["token"] == token, "the spectator sees what players see"
        scene = t.room["players_scene_id"]
        attempts: list[tuple[str, dict[str, Any]]] = [
            ("token.add", {"asset_id": asset["id"], "x": 1, "y": 1}),
            ("token.move", {"token_id": token["id"], "x": 2, "y": 2}),
            ("token.move", {"token_id": token["id"], "x": 2, "y": 2, "preview": True}),
            ("token.update", {"token_id": token["id"], "rotation": 9}),
            ("token.remove", {"token_id": token["id"]}),
            ("chat.send", {"text": "hi"}),
            ("chat.send", {"text": "hi", "to": [t.gm.id]}),
            ("dice.roll", {"notation": "1d6"}),
            ("pointer", {"x": 1, "y": 1}),
            ("scene.create", {"name": "x"}),
            ("scene.update", {"scene_id": scene, "name": "x"}),
            ("scene.remove", {"scene_id": scene}),
            ("scene.activate", {"scene_id": scene}),
            ("scene.view", {"scene_id": scene}),
            ("fog.change", {"scene_id": scene, "op": "hide_all"}),
            ("token.bar", {"token_id": token["id"], "key": "hp", "value": 1}),
            ("token.condition", {"token_id": token["id"], "add": ["prone"]}),
            ("initiative", {"op": "add", "token_id": token["id"], "value": 3}),
            ("ruler", {"points": [[0, 0], [100, 0]]}),
            ("board.ping", {"x": 1, "y": 1}),
            ("undo", {}),
        ]
        assert {name for name, _ in attempts} == set(ACTIONS)
        for name, fields in attempts:
            err = await s.request(name, room_id=rid, **fields)
            assert err["type"] == "error" and err["code"] == "spectator_read_only", (name, err)
        http = [
            ("POST", f"/api/rooms/{rid}/tokens", {"json": {"asset_id": asset["id"], "x": 1, "y": 1}}),
            ("PATCH", f"/api/rooms/{rid}/tokens/{token['id']}", {"json": {"x": 3}}),
            ("DELETE", f"/api/rooms/{rid}/tokens/{token['id']}", {}),
            ("POST", f"/api/rooms/{rid}/assets", {"files": {"file": ("a.png", png_bytes(), "image/png")}}),
            ("DELETE", f"/api/assets/{asset['id']}", {}),
            ("PATCH", f"/api/assets/{asset['id']}", {"json": {"hidden": True}}),
        ]
        for method, path, kw in http:
            r = await t.http(method, path, t.spectator, **kw)
            assert r.status_code == 403 and r.json()["error"]["code"] == "spectator_read_only", (method, path, r.text)
        # Nothing changed: the room is at the version it was, the token where it was.
        snap = (await t.http("GET", f"/api/rooms/{rid}", t.spectator)).json()
        assert [(tok["id"], tok["x"], tok["version"]) for tok in snap["tokens"]] == [(token["id"], 1.0, 1)]
        me = [p for p in snap["players"] if p["user"]["id"] == t.spectator.id]
        assert me and me[0]["role"] == "spectator"
        # ...and a player's code makes the spectator a player.
        r = await t.http("POST", "/api/rooms/join", t.spectator, json={"invite_code": t.room["invite_code"]})
        assert r.json()["role"] == "player"
    finally:
        await t.close()

