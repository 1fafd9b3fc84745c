"""Concurrent large uploads: at most TABLEFORGE_MAX_CONCURRENT_DECODES (2 here) are in memory and
being checked at once; the others wait their turn (spooled on disk) and then succeed.

Made deterministic without timing: the test holds the room's row (PostgreSQL) or the write lock
(SQLite), so the first uploads stop at their database write while holding their slots; the
server's own metrics then show exactly two uploads in progress and the rest waiting."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from tests.support.client import Api, png_bytes
from tests.support.metrics import sample
from tests.support.server import ServerProcess
from tests.support.waiting import eventually

LIMIT = 2
UPLOADS = 5


@asynccontextmanager
async def writes_blocked(server: ServerProcess, room_id: str) -> AsyncIterator[None]:
    """Hold what an upload's write transaction needs, until the block ends (then roll back)."""
    url = server.env.get("TABLEFORGE_DATABASE_URL")
    if url:
        conn = await asyncpg.connect(url)
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SELECT 1 FROM game_rooms WHERE id = $1::uuid FOR UPDATE", room_id)
        try:
            yield
        finally:
            await tx.rollback()
            await conn.close()
    else:
        db = sqlite3.connect(Path(server.env["TABLEFORGE_DATA_DIR"]) / "tableforge.db", isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            db.rollback()
            db.close()


async def test_concurrent_uploads_are_processed_at_most_two_at_a_time(api: Api, server: ServerProcess) -> None:
    gm = await api.register("gm")
    room = await api.room(gm)
    images = [png_bytes(700, 700, color) for color in ("blue", "red", "green", "black", "white")]
    waits0 = await sample(api.http, "tableforge_image_decode_waits_total")
    count0 = await sample(api.http, "tableforge_image_decode_concurrency_count")
    within0 = await sample(api.http, "tableforge_image_decode_concurrency_bucket", le=f"{float(LIMIT)}")

    async with writes_blocked(server, room["id"]):
        uploads = [asyncio.ensure_future(api.upload(gm, room["id"], data)) for data in images]

        async def queued() -> bool:  # two hold their slots (stuck at the write), the rest wait
            return await sample(api.http, "tableforge_image_decode_waits_total") - waits0 == UPLOADS - LIMIT

        await eventually(queued, within=20, what="the uploads beyond the limit to wait")
        assert await sample(api.http, "tableforge_image_decodes_in_progress") == LIMIT
        assert not any(u.done() for u in uploads)

    replies = await asyncio.gather(*uploads)
    assert [r.status_code for r in replies] == [201] * UPLOADS, [r.text for r in replies]
    assert len({r.json()["sha256"] for r in replies}) == UPLOADS
    assert await sample(api.http, "tableforge_image_decode_concurrency_count") - count0 == UPLOADS
    assert await sample(api.http, "tableforge_image_decode_concurrency_bucket",
                        le=f"{float(LIMIT)}") - within0 == UPLOADS  # none started beside two others
    assert await sample(api.http, "tableforge_image_decodes_in_progress") == 0
