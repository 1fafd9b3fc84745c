"""`tableforge export` / `tableforge import` as an operator moves a game: from an embedded (SQLite)
server to a PostgreSQL one and back, each room then seen through the API exactly as before (scenes,
fog, hidden tokens, whispers and secret rolls, assets by hash) for the GM and for each player."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.deploy.test_backup import cli
from tests.support.client import Api, Player, png_bytes
from tests.support.server import ServerProcess
from tests.support.services import require_postgres, temp_database
from tests.support.waiting import eventually

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_VOLATILE = {"invite_code", "spectator_invite_code", "is_online", "online"}


def normalized(value: Any) -> Any:
    """The snapshot with every id replaced by the order it first appears in: equal structure, equal
    references (a token's scene, a message's author), whatever the ids."""
    labels: dict[str, str] = {}

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items() if k not in _VOLATILE}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, str):
            return _UUID.sub(lambda m: labels.setdefault(m.group(0), f"<id{len(labels)}>"), v)
        return v

    return walk(value)


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two normalized snapshots differ (an empty list when they are equal), for a readable failure."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(a.keys() | b.keys())
                for d in differences(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for n, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{n}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


async def register(api: Api, name: str) -> Player:
    r = await api.http.post("/api/auth/register", json={"username": name, "password": "correct horse"})
    assert r.status_code == 201, r.text
    api.http.cookies.clear()
    return Player(r.json()["user"], r.json()["token"])


async def views(api: Api, room_id: str, people: dict[str, Player]) -> dict[str, Any]:
    """What each member sees, and what the GM sees of every scene."""
    out: dict[str, Any] = {name: await api.snapshot(p, room_id) for name, p in people.items()}
    for scene in out["gm"]["scenes"]:
        r = await api.http.get(f"/api/rooms/{room_id}", params={"scene_id": scene["id"]}, headers=people["gm"].headers)
        assert r.status_code == 200, r.text
        out[f"gm@{scene['name']}"] = r.json()
    return out


async def play(api: Api, people: dict[str, Player]) -> str:
    gm, alice, bob = people["gm"], people["alice"], people["bob"]
    room = await api.room(gm, alice, bob)
    rid = room["id"]
    the_map = await api.asset(gm, rid)
    secret = await api.http.post(f"/api/rooms/{rid}/assets", headers=gm.headers, data={"hidden": "true"},
                                 files={"file": ("secret.png", png_bytes(20, 20, "purple"), "image/png")})
    assert secret.status_code == 201, secret.text
    scene = (await api.snapshot(gm, rid))["scene_id"]
    g, a = await api.ws(gm), await api.ws(alice)
    try:
        for ws in (g, a):
            assert (await ws.request("join", room_id=rid))["type"] == "ack"
        steps = [
            (g, "token.add", {"asset_id": the_map["id"], "x": 100, "y": 100}),
            (g, "token.add", {"asset_id": the_map["id"], "x": 200, "y": 200, "hidden": True}),
            (g, "token.add", {"asset_id": secret.json()["id"], "x": 300, "y": 300}),
            (g, "token.add", {"asset_id": the_map["id"], "x": 1000, "y": 1000}),
            (g, "fog.change", {"scene_id": scene, "op": "hide",
                               "shape": {"type": "rect", "x": 900, "y": 900, "width": 200, "height": 200}}),
            (a, "token.add", {"asset_id": the_map["id"], "x": 50, "y": 50}),
            (g, "chat.send", {"text": "psst alice", "to": [alice.id]}),
            (a, "dice.roll", {"notation": "1d20", "visibility": "gm"}),
            (a, "chat.send", {"text": "hello all"}),
        ]
        for ws, mtype, fields in steps:
            reply = await ws.request(mtype, room_id=rid, **fields)
            assert reply["type"] == "ack", (mtype, reply)
        lair = await g.request("scene.create", room_id=rid, name="Lair", grid={"size": 70})
        assert lair["type"] == "ack", lair
        on_b = await g.request("token.add", room_id=rid, asset_id=the_map["id"], x=5, y=5,
                               scene_id=lair["scene"]["id"])
        assert on_b["type"] == "ack", on_b
    finally:
        await g.close()
        await a.close()

    async def everyone_left() -> bool:  # leaving is a room event too: the version settles after it
        return not [p for p in (await api.snapshot(gm, rid))["players"] if p["is_online"]]

    await eventually(everyone_left, 30, "the players' sockets to leave")
    return str(rid)


async def export_room(env: dict[str, str], room_id: str, target: Path) -> dict[str, Any]:
    code, out, err = await cli(env, "export", "--room", room_id, "--output", str(target))
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


async def cli_here(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`tableforge ARGS` run in this process, as `cli` runs it in a new one: for the many refused imports,
    each a check of the file, not of the command's wiring (which `cli` proves), and a process start each
    would cost more than the check. In a thread: the command runs an event loop of its own."""
    from typer.testing import CliRunner

    from tableforge.cli import app

    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


async def import_file(env: dict[str, str], source: Path, *extra: str, here: bool = False) -> dict[str, Any]:
    code, out, err = await (cli_here if here else cli)(env, "import", str(source), *extra)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    require_postgres()
    with temp_database() as url:
        lite = ServerProcess(free_port(), {"TABLEFORGE_DATA_DIR": str(tmp_path / "lite")}, name="sqlite")
        pg = ServerProcess(free_port(), {"TABLEFORGE_DATA_DIR": str(tmp_path / "pg"), "TABLEFORGE_DATABASE_URL": url},
                           name="postgres")
        lite.start()
        try:
            pg.start()
            try:
                yield lite, pg
            finally:
                pg.stop()
        finally:
            lite.stop()


async def test_a_game_moves_from_sqlite_to_postgresql_and_back(servers: tuple[ServerProcess, ServerProcess],
                                                               tmp_path: Path, unique: str) -> None:
    lite, pg = servers
    names = {"gm": f"gm{unique}", "alice": f"al{unique}", "bob": f"bo{unique}"}
    async with Api(lite.base_url) as here, Api(pg.base_url) as there:
        people = {k: await register(here, n) for k, n in names.items()}
        rid = await play(here, people)
        before = await views(here, rid, people)
        assert [t["hidden"] for t in before["gm"]["tokens"]].count(True) == 1  # the test sees what it moves
        assert len(before["gm"]["tokens"]) > len(before["alice"]["tokens"])
        assert [m["text"] for m in before["bob"]["messages"]] == ["hello all"]

        exported = await export_room(lite.env, rid, tmp_path / "game.tfroom")
        assert exported["rooms"][0]["tokens"] == 6 and exported["files"] == 2
        people_there = {k: await register(there, n) for k, n in names.items()}
        done = await import_file(pg.env, tmp_path / "game.tfroom")
        moved = done["rooms"][0]
        assert moved["skipped_members"] == [] and moved["id"] != rid
        after = await views(there, moved["id"], people_there)
        assert differences(normalized(after), normalized(before)) == []
        for asset in before["gm"]["assets"]:  # served by hash there, byte for byte
            here_bytes = (await here.http.get(asset["url"])).content
            there_r = await there.http.get(asset["url"])
            assert there_r.status_code == 200 and there_r.content == here_bytes

        # and back: a new room on the embedded server, the same again
        await export_room(pg.env, moved["id"], tmp_path / "back.tfroom")
        back = (await import_file(lite.env, tmp_path / "back.tfroom"))["rooms"][0]
        assert back["id"] not in (rid, moved["id"])
        assert differences(normalized(await views(here, back["id"], people)), normalized(before)) == []


def room_count(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "tableforge.db") as db:
        return int(db.execute("SELECT count(*) FROM game_rooms").fetchone()[0])


# A room file written by hand (the format of docs/deploy.md), to make hostile ones from.
T0 = "2026-01-02T03:04:05Z"


def room_doc(sha: str) -> dict[str, Any]:
    return {
        "id": "r1", "name": "Handmade", "version": 7, "created_at": T0, "is_active": True, "gm": "oldgm",
        "players_scene": "s1", "system": None,
        "members": [{"username": "oldgm", "role": "gm", "joined_at": T0},
                    {"username": "ghost", "role": "player", "joined_at": T0}],
        "scenes": [{"id": "s1", "name": "Scene 1", "position": 0, "map_asset": "a1", "grid": {},
                    "fog": {"base": "revealed", "shapes": []}, "fog_version": 0, "created_at": T0}],
        "assets": [{"id": "a1", "name": "map", "type": "png", "sha256": sha, "width": 8, "height": 8, "size": 10,
                    "created_at": T0, "hidden": False, "uploader": "ghost"}],
        "tokens": [{"id": "t1", "asset": "a1", "scene": "s1", "owner": "ghost", "x": 1.0, "y": 2.0, "rotation": 0.0,
                    "scale": 1.0, "z_index": 0, "version": 3, "created_at": T0, "hidden": True}],
        "messages": [{"id": "m1", "user": "ghost", "kind": "chat", "text": "psst", "roll": None, "version": 5,
                      "created_at": T0, "visibility": "whisper", "audience": ["u:ghost"], "to": ["ghost"]}],
    }


def write_room_file(path: Path, *, room: dict[str, Any] | None = None, image: bytes | None = None,
                    sha: str | None = None, extra: dict[str, bytes] | None = None,
                    raw_room: bytes | None = None) -> None:
    import hashlib
    import zipfile

    data = image if image is not None else png_bytes(8, 8, "green")
    digest = sha or hashlib.sha256(data).hexdigest()
    manifest = {"format": "tableforge-rooms", "format_version": 1, "schema_revision": "x", "exported_at": T0,
                "source": "sqlite", "rooms": [{"file": "rooms/0.json", "id": "r1", "name": "Handmade"}],
                "files": [{"sha256": digest, "type": "png", "size": len(data)}]}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest))
        z.writestr("rooms/0.json", raw_room if raw_room is not None else json.dumps(room or room_doc(digest)))
        z.writestr(f"assets/{digest}.png", data)
        for name, body in (extra or {}).items():
            z.writestr(name, body)


def asset_files(data_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(data_dir)) for p in (data_dir / "assets").rglob("*") if p.is_file())


async def test_import_maps_members_and_refuses_hostile_files_changing_nothing(tmp_path: Path) -> None:
    env = {"TABLEFORGE_DATA_DIR": str(tmp_path / "data"), "TABLEFORGE_MAX_UPLOAD_BYTES": str(64 * 1024)}
    # In this process but one (the refusal without --owner, a real `tableforge import`): each start of
    # the command costs more than the check it makes; test_a_game_moves... runs import and export for real.
    code, _, err = await cli_here(env, "users", "create", "newgm", "--password", "correct horse")
    assert code == 0, err
    good = tmp_path / "good.tfroom"
    write_room_file(good)
    dry = await import_file(env, good, "--owner", "newgm", "--dry-run", here=True)
    assert dry["dry_run"] is True and dry["users_missing"] == ["ghost", "oldgm"]
    assert room_count(tmp_path / "data") == 0 and asset_files(tmp_path / "data") == []

    # without --owner the exported GM must have an account here
    code, _, err = await cli(env, "import", str(good))
    assert code == 1 and "oldgm" in err and "--owner" in err and "nothing was changed" in err
    done = (await import_file(env, good, "--owner", "newgm", here=True))["rooms"][0]
    assert done["skipped_members"] == ["ghost", "oldgm"] and done["members"] == 1 and done["version"] == 7
    assert room_count(tmp_path / "data") == 1
    with sqlite3.connect(tmp_path / "data" / "tableforge.db") as db:
        gm = db.execute("SELECT u.username FROM game_rooms r JOIN users u ON u.id = r.gm_id").fetchone()[0]
        whisper = db.execute("SELECT user_id, audience, to_users, version FROM room_messages").fetchone()
        token = db.execute("SELECT hidden, owner_id, x, version FROM board_tokens").fetchone()
    assert gm == "newgm"
    # the whisper's author and recipient are not here: it stays private (a selector naming no one)
    assert whisper[0] is None and whisper[1].startswith("u:") and whisper[2] in (None, "null") and whisper[3] == 5
    assert token == (1, None, 1.0, 3)
    stored = asset_files(tmp_path / "data")
    assert len(stored) == 1

    digest = stored[0].rsplit("/", 1)[1].split(".")[0]
    bomb = json.dumps(room_doc(digest)).encode() + b" " * 2_000_000
    hostile: dict[str, tuple[dict[str, Any], str]] = {
        "traversal": ({"extra": {"../../evil.png": b"x"}}, "unexpected entry '../../evil.png'"),
        "absolute": ({"extra": {"/etc/cron.d/x": b"x"}}, "unexpected entry"),
        "bad sha": ({"sha": "0" * 64}, "do not match their sha256"),
        "bad json": ({"raw_room": b'{"id": "r1", "name": '}, "rooms/0.json:"),
        "wrong type": ({"room": {**room_doc(digest), "version": "seven"}}, "rooms/0.json: Expected `int`"),
        "unknown scene": ({"room": {**room_doc(digest), "tokens": [{**room_doc(digest)["tokens"][0],
                                                                    "scene": "nowhere"}]}}, "token t1 refers"),
        "not an image": ({"image": b"<html><script>alert(1)</script></html>"}, "markup"),
        "too large image": ({"image": png_bytes(8, 8) + b"\0" * 70_000}, "larger than 65536 bytes"),
        "bad fog": ({"room": {**room_doc(digest), "scenes": [{**room_doc(digest)["scenes"][0],
                                                               "fog": {"base": "murky"}}]}}, "fog base"),
        "zip bomb": ({"raw_room": bomb}, "inflates to more than"),
    }
    for name, (kwargs, message) in hostile.items():
        path = tmp_path / f"{name.replace(' ', '_')}.tfroom"
        write_room_file(path, **kwargs)
        args = ("--max-bytes", "1000000") if name == "zip bomb" else ()
        code, out, err = await cli_here(env, "import", str(path), "--owner", "newgm", *args)
        assert code == 1 and message in err and "nothing was changed" in err, (name, err)
        assert out == ""
    not_zip = tmp_path / "not.tfroom"
    not_zip.write_bytes(b"PK\x03\x04 this is no zip")
    code, _, err = await cli_here(env, "import", str(not_zip))
    assert code == 1 and "not a TableForge room file" in err
    assert room_count(tmp_path / "data") == 1 and asset_files(tmp_path / "data") == stored
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith(".import-")]
