"""`GET /assets/...` from the in-process byte cache (api/asset_files.py): the same answers as from
disk (headers, 304, Range, 404 once deleted), and a cache that stays within its limit."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import REGISTRY
from starlette.responses import FileResponse

from tableforge.api.asset_files import AssetBytes, CachedFile
from tests.support.client import Api, png_bytes
from tests.support.metrics import sample

# What differs between two answers of the same file: the time of the answer.
_PER_ANSWER = {"date"}


def _headers(r: object) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k not in _PER_ANSWER}  # type: ignore[attr-defined]


async def test_a_cached_asset_is_answered_as_from_disk(api: Api) -> None:
    gm = await api.register("gm")
    room = await api.room(gm)
    data = png_bytes(37, 11, "teal")  # bytes of this test's own: the first GET is a miss
    asset = (await api.upload(gm, room["id"], data)).json()
    url = asset["url"]
    hits = await sample(api.http, "tableforge_asset_cache_requests_total", result="hit")
    misses = await sample(api.http, "tableforge_asset_cache_requests_total", result="miss")

    first = await api.http.get(url)
    second = await api.http.get(url)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content == data
    assert _headers(first) == _headers(second), "a hit sends what the miss sent"
    h = second.headers
    assert (h["content-type"], h["content-length"], h["accept-ranges"]) == ("image/png", str(len(data)), "bytes")
    assert h["etag"] == f'"{asset["sha256"]}"' and h["cache-control"] == "public, max-age=31536000, immutable"
    assert h["x-content-type-options"] == "nosniff" and "sandbox" in h["content-security-policy"]
    assert h["cross-origin-resource-policy"] == "same-site" and h["last-modified"].endswith("GMT")
    assert await sample(api.http, "tableforge_asset_cache_requests_total", result="miss") == misses + 1
    assert await sample(api.http, "tableforge_asset_cache_requests_total", result="hit") >= hits + 1
    assert await sample(api.http, "tableforge_asset_cache_bytes") >= len(data)

    same = await api.http.get(url, headers={"If-None-Match": h["etag"]})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == h["etag"]
    weak = await api.http.get(url, headers={"If-None-Match": f'"other", W/{h["etag"]}'})
    assert weak.status_code == 304

    bypass = await sample(api.http, "tableforge_asset_cache_requests_total", result="bypass")
    part = await api.http.get(url, headers={"Range": "bytes=2-9"})
    assert part.status_code == 206 and part.content == data[2:10]
    assert part.headers["content-range"] == f"bytes 2-9/{len(data)}"
    beyond = await api.http.get(url, headers={"Range": f"bytes={len(data) + 5}-"})
    assert beyond.status_code == 416
    assert await sample(api.http, "tableforge_asset_cache_requests_total", result="bypass") == bypass + 2

    # Deleted (no other asset holds these bytes): 404 at once, though its bytes were in memory.
    assert (await api.http.delete(f"/api/assets/{asset['id']}", headers=gm.headers)).status_code == 204
    gone = await api.http.get(url)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "asset_not_found"


async def test_hidden_assets_stay_hidden_after_the_gm_read_the_room(api: Api) -> None:
    """The snapshot's membership check (in the snapshot's statement; on SQLite, through the event
    log) gives each member their own view on every read, and nobody else gets in."""
    gm, alice, stranger = await api.register("gm"), await api.register("al"), await api.register("st")
    room = await api.room(gm, alice)
    rid = room["id"]
    shown = await api.asset(gm, rid)
    hidden = (await api.http.post(f"/api/rooms/{rid}/assets", headers=gm.headers, data={"hidden": "true"},
                                  files={"file": ("secret.png", png_bytes(9, 9, "black"), "image/png")})).json()
    for _ in range(2):
        gm_view = await api.snapshot(gm, rid)
        assert {a["id"] for a in gm_view["assets"]} == {shown["id"], hidden["id"]}
        alice_view = await api.snapshot(alice, rid)
        assert [a["id"] for a in alice_view["assets"]] == [shown["id"]]
        assert "invite_code" not in alice_view["room"] and "invite_code" in gm_view["room"]
    for _ in range(2):
        r = await api.http.get(f"/api/rooms/{rid}", headers=stranger.headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_member"
    r = await api.http.get("/api/rooms/00000000-0000-4000-8000-000000000000", headers=gm.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "room_not_found"
    # Once a member, the stranger reads the room as a player.
    join = await api.http.post("/api/rooms/join", json={"invite_code": room["invite_code"]}, headers=stranger.headers)
    assert join.status_code == 200
    assert [a["id"] for a in (await api.snapshot(stranger, rid))["assets"]] == [shown["id"]]


def _file(tmp: Path, name: str, size: int) -> tuple[Path, os.stat_result]:
    path = tmp / name
    path.write_bytes(name.encode()[:1] * size)
    return path, path.stat()


_H = {"Cache-Control": "public, max-age=31536000, immutable", "ETag": '"x"'}


async def test_the_byte_cache_stays_within_its_limit(tmp_path: Path) -> None:
    files = AssetBytes(max_bytes=100, max_file_bytes=60)
    evictions = REGISTRY.get_sample_value("tableforge_asset_cache_evictions_total") or 0.0
    for name in ("a", "b", "c"):
        path, st = _file(tmp_path, name, 40)
        answer = await files.response(path, st, None, "image/png", _H)
        assert isinstance(answer, CachedFile) and answer.body == name.encode() * 40
    assert files.size <= 100 and len(files) == 2, "the oldest went"
    assert REGISTRY.get_sample_value("tableforge_asset_cache_evictions_total") == evictions + 1
    assert REGISTRY.get_sample_value("tableforge_asset_cache_bytes") == files.size == 80

    big, st = _file(tmp_path, "d", 61)
    answer = await files.response(big, st, None, "image/png", _H)
    assert type(answer) is FileResponse and len(files) == 2, "over the per-file limit: streamed, not kept"

    # The same path with other bytes and times (a re-upload touches the file): read again.
    path, _ = _file(tmp_path, "c", 40)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    path.write_bytes(b"z" * 30)
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))
    answer = await files.response(path, path.stat(), None, "image/png", _H)
    assert isinstance(answer, CachedFile) and answer.body == b"z" * 30
    assert (b"content-length", b"30") in answer.raw_headers
    assert (b"last-modified", b"Thu, 01 Jan 1970 00:00:02 GMT") in answer.raw_headers

    off = AssetBytes(max_bytes=0, max_file_bytes=512 * 1024)
    assert type(await off.response(path, path.stat(), None, "image/png", _H)) is FileResponse and len(off) == 0
