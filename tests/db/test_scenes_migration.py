"""Migration 0004 on a database that already holds rooms, tokens, messages and events: nothing is
lost (no table holding foreign keys to the rooms is rebuilt), every room gets one scene that is its
players' scene and holds all its tokens, a spectator code of its own, and reads as before, on SQLite
and PostgreSQL. Downgrading takes it all back out."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command

from tableforge.config import Settings
from tableforge.db import schema
from tableforge.db.engine import Database
from tableforge.db.migrate import alembic_config, upgrade
from tableforge.db.schema import board_tokens, game_assets, game_rooms, room_events, room_messages, room_players, users
from tableforge.services import snapshots
from tests.support.services import require_postgres, temp_database

U = "aaaaaaaa-0000-4000-8000-000000000001"
ROOMS = ["bbbbbbbb-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"]
ASSET = "cccccccc-0000-4000-8000-000000000001"
TOKENS = ["dddddddd-0000-4000-8000-000000000001", "dddddddd-0000-4000-8000-000000000002"]


async def _to(db: Database, revision: str, *, down: bool = False) -> None:
    async with db.writer.begin() as conn:
        def run(sync_conn: Any) -> None:
            cfg = alembic_config(db.url)
            cfg.attributes["connection"] = sync_conn
            (command.downgrade if down else command.upgrade)(cfg, revision)

        await conn.run_sync(run)


async def _check(db: Database) -> None:
    await _to(db, "0003")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.writer.begin() as conn:  # as the app stores them (through its column types)
        await conn.execute(sa.insert(users).values(id=U, username="gm", password_hash="x", created_at=now))
        for i, room in enumerate(ROOMS):
            await conn.execute(sa.insert(game_rooms).values(id=room, name="r", gm_id=U, invite_code=f"CODE{i}",
                                                            is_active=True, version=3, created_at=now))
            await conn.execute(sa.insert(room_players).values(room_id=room, user_id=U, role="gm", is_online=False,
                                                              joined_at=now))
            await conn.execute(sa.insert(room_events).values(room_id=room, version=3, body="{}"))
        await conn.execute(sa.insert(game_assets).values(id=ASSET, room_id=ROOMS[0], uploader_id=U, name="a",
                                                         type="png", sha256="ab" * 32, file_path="x", width=1,
                                                         height=1, size=1, created_at=now))
        for i, token in enumerate(TOKENS):
            await conn.execute(sa.insert(board_tokens).values(id=token, room_id=ROOMS[0], asset_id=ASSET, owner_id=U,
                                                              x=float(i), y=0.0, rotation=0.0, scale=1.0, z_index=0,
                                                              version=1, created_at=now))
        await conn.execute(sa.insert(room_messages).values(id="eeeeeeee-0000-4000-8000-000000000001", room_id=ROOMS[0],
                                                           user_id=U, kind="chat", text="hello", version=2,
                                                           created_at=now))
    await upgrade(db)
    async with db.writer.begin() as conn:
        rooms = (await conn.execute(sa.select(game_rooms.c.id, game_rooms.c.players_scene_id,
                                              game_rooms.c.spectator_invite_code, game_rooms.c.fog_free)
                                    .order_by(game_rooms.c.id))).all()
        scenes = (await conn.execute(sa.select(schema.scenes.c.id, schema.scenes.c.room_id))).all()
        tokens = (await conn.execute(sa.select(board_tokens.c.id, board_tokens.c.scene_id, board_tokens.c.hidden,
                                               board_tokens.c.fogged, board_tokens.c.asset_hidden)))
        tokens_by_id = {str(t[0]): t for t in tokens}
        counts = (await conn.execute(sa.text(
            "SELECT (SELECT count(*) FROM room_players), (SELECT count(*) FROM room_events), "
            "(SELECT count(*) FROM room_messages), (SELECT count(*) FROM game_assets)"))).one()
    assert tuple(counts) == (2, 2, 1, 1), "nothing was lost"
    assert len(scenes) == 2 and {str(s[1]) for s in scenes} == set(ROOMS), scenes
    scene_of = {str(s[1]): str(s[0]) for s in scenes}
    for room in rooms:
        assert str(room[1]) == scene_of[str(room[0])] and bool(room[3])
        assert len(room[2]) == 12 and room[2].isalnum()
    assert rooms[0][2] != rooms[1][2]
    assert {str(t[1]) for t in tokens_by_id.values()} == {scene_of[ROOMS[0]]}
    assert all(not t[2] and not t[3] and not t[4] for t in tokens_by_id.values())
    async with db.read() as conn:
        snap = await snapshots.read_snapshot(conn, ROOMS[0], is_gm=False, user_id=U)
    assert [t["id"] for t in snap["tokens"]] == TOKENS and snap["scene"]["name"] == "Scene 1"
    assert snap["scene"]["fog"] == {"base": "revealed", "shapes": []} and snap["scene"]["grid"]["size"] == 70
    assert [m["text"] for m in snap["messages"]] == ["hello"] and snap["messages"][0]["visibility"] == "room"
    await _to(db, "0003", down=True)
    async with db.writer.begin() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM board_tokens"))).scalar() == 2
        assert (await conn.execute(sa.text("SELECT count(*) FROM room_messages"))).scalar() == 1


async def test_sqlite(tmp_path: Path) -> None:
    db = Database(Settings(data_dir=tmp_path))  # type: ignore[call-arg]
    try:
        await _check(db)
    finally:
        await db.dispose()


async def test_postgres(tmp_path: Path) -> None:
    require_postgres()
    with temp_database() as url:
        db = Database(Settings(database_url=url, data_dir=tmp_path))  # type: ignore[call-arg]
        try:
            await _check(db)
        finally:
            await db.dispose()
