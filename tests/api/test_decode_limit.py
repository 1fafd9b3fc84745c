"""Concurrent image uploads: at most TABLEFORGE_MAX_CONCURRENT_DECODES (2) images are checked at
once; the others wait their turn and still succeed. Read from the server's own metrics: a
histogram of how many checks were running (this one included) each time one started."""

from __future__ import annotations

import asyncio
import io
import struct
import zlib

from PIL import Image

from tests.support.client import Api
from tests.support.metrics import sample

LIMIT = 2
UPLOADS = 4


def _chunk(cid: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + cid + data + struct.pack(">I", zlib.crc32(cid + data))


def slow_png(size: int = 600_000, color: str = "blue") -> bytes:
    """A valid PNG padded with ~50,000 empty private chunks: Pillow checks each one, so the check
    takes a few tenths of a second (long enough for the uploads to overlap) in under 1 MB."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, "PNG")
    png = buf.getvalue()
    filler = _chunk(b"prVt", b"")
    return png[:33] + filler * ((size - len(png)) // len(filler)) + png[33:]  # after the signature and IHDR


async def test_concurrent_uploads_are_checked_at_most_two_at_a_time(api: Api) -> None:
    gm = await api.register("gm")
    room = await api.room(gm)
    images = [slow_png(color=c) for c in ("blue", "red", "green", "black", "white", "yellow")]

    async def histogram() -> tuple[float, float]:
        count = await sample(api.http, "tableforge_image_decode_concurrency_count")
        within = await sample(api.http, "tableforge_image_decode_concurrency_bucket", le=f"{float(LIMIT)}")
        return count, within

    count0, within0 = await histogram()
    waits0 = await sample(api.http, "tableforge_image_decode_waits_total")
    replies = await asyncio.gather(*(api.upload(gm, room["id"], data) for data in images[:UPLOADS]))
    assert [r.status_code for r in replies] == [201] * UPLOADS, [r.text for r in replies]
    count1, within1 = await histogram()
    assert count1 - count0 == UPLOADS
    assert within1 - within0 == UPLOADS, "a check started while two others were running"
    assert await sample(api.http, "tableforge_image_decode_waits_total") - waits0 >= 1, "nobody had to wait"
    assert await sample(api.http, "tableforge_image_decodes_in_progress") == 0
