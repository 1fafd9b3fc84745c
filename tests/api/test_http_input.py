"""HTTP bad input and serving: free-form JSON limits, NUL refused as `invalid_text` on every
surface (same answer on SQLite and PostgreSQL, and the server keeps working), assets served
typed and sandboxed, HTML polyglots refused, and the security headers of pages and API answers."""

from __future__ import annotations

import io
import struct
import zlib

import httpx

from tests.support.client import Api, Player, png_bytes

SYSTEM = {"name": "Limits", "category": "test", "complexity": "beginner"}


def _nested(depth: int) -> dict:
    doc: dict = {}
    cur = doc
    for _ in range(depth - 1):
        cur["x"] = {}
        cur = cur["x"]
    return doc


def _detail(r: httpx.Response, code: str) -> dict:
    assert r.status_code == 422, (r.status_code, r.text)
    error = r.json()["error"]
    assert error["code"] == code, error
    return dict(error["details"][0])


async def test_free_form_template_limits(api: Api) -> None:
    gm = await api.register("lim")
    made = await api.http.post("/api/systems", json={**SYSTEM, "template": {"hp": 10, "deep": _nested(31)}},
                               headers=gm.headers)
    assert made.status_code == 201, made.text
    system = made.json()
    url = f"/api/systems/{system['id']}"
    cases = [
        ({"template": {"hp": 2**70}}, "int_range", "/hp"),
        ({"template": {"a": [1, -(2**63)]}}, "int_range", "/a/1"),
        ({"template": _nested(300)}, "max_depth", None),
        ({"template": {"k": "x" * 20_001}}, "max_string_chars", "/k"),
        ({"template": {str(i): i for i in range(1001)}}, "max_keys", "/"),
    ]
    for body, limit, path in cases:
        for method, target in (("POST", "/api/systems"), ("PATCH", url)):
            payload = {**SYSTEM, **body} if method == "POST" else body
            detail = _detail(await api.http.request(method, target, json=payload, headers=gm.headers),
                             "validation_error")
            assert detail["field"] == "template" and detail["limit"] == limit, (method, detail)
            if path:
                assert detail["path"] == path, detail
    # NaN is not JSON, but Python's parser takes it: refused by the same check
    nan = await api.http.patch(url, content=b'{"template": {"x": NaN}}', headers=gm.headers | {
        "content-type": "application/json"})
    assert _detail(nan, "validation_error")["limit"] == "finite_number"
    for field in ("name", "category", "complexity", "is_public", "template", "description"):
        detail = _detail(await api.http.patch(url, json={field: None}, headers=gm.headers), "validation_error")
        assert detail["field"] == field, detail
    stored = (await api.http.get(url, headers=gm.headers)).json()
    assert stored["template"] == {"hp": 10, "deep": _nested(31)} and stored["name"] == "Limits"


async def test_nul_is_invalid_text_everywhere(api: Api) -> None:
    gm = await api.register("nul")
    room = await api.room(gm)
    system = (await api.http.post("/api/systems", json=SYSTEM, headers=gm.headers)).json()
    h = gm.headers
    attempts = [
        api.http.post("/api/auth/register", json={"username": "bad\x00name", "password": "correct horse"}),
        api.http.post("/api/auth/login", json={"username": "bad\x00name", "password": "correct horse"}),
        api.http.post("/api/auth/login", json={"username": gm.user["username"], "password": "correct\x00horse"}),
        api.http.get("/api/systems", params={"search": "orc\x00"}),
        api.http.get("/api/systems", params={"category": "\x00"}),
        api.http.post("/api/systems", json={**SYSTEM, "name": "a\x00b"}, headers=h),
        api.http.post("/api/systems", json={**SYSTEM, "template": {"sheet": ["ok", "no\x00"]}}, headers=h),
        api.http.patch(f"/api/systems/{system['id']}", json={"template": {"k\x00": 1}}, headers=h),
        api.http.patch(f"/api/systems/{system['id']}", json={"description": "\x00"}, headers=h),
        api.http.post("/api/rooms", json={"name": "Room\x00"}, headers=h),
        api.http.post("/api/rooms", json={"name": "Room", "extra\x00": 1}, headers=h),
        api.http.post("/api/rooms/join", json={"invite_code": "abcd\x00"}, headers=h),
        api.http.get(f"/api/rooms/{room['id']}%00", headers=h),
        api.http.post(f"/api/rooms/{room['id']}/assets", headers=h, data={"name": "map\x00"},
                      files={"file": ("m.png", png_bytes(), "image/png")}),
        api.http.post(f"/api/rooms/{room['id']}/assets", headers=h | {"content-type": f"multipart/form-data; "
                      f"boundary={_BOUNDARY}"}, content=_raw_multipart('m\x00.png')),  # httpx would escape it
    ]
    for i, attempt in enumerate(attempts):
        r = await attempt
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_text", (i, r.status_code, r.text)
        assert r.json()["error"]["details"][0]["limit"] == "nul", (i, r.text)
    # nothing was stored, and the database connections are fine (PostgreSQL used to drop them)
    assert (await api.http.get("/ready")).status_code == 200
    assert len((await api.http.get(f"/api/rooms/{room['id']}/assets", headers=h)).json()["assets"]) == 0
    rooms = (await api.http.get("/api/rooms", headers=h)).json()["rooms"]
    assert [r["name"] for r in rooms] == ["Table"]
    found = (await api.http.get("/api/systems", params={"search": "Limits"})).json()
    assert all("\x00" not in s["name"] for s in found["systems"])


_BOUNDARY = "tableforge-test-boundary"


def _raw_multipart(filename: str) -> bytes:
    head = (f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: image/png\r\n\r\n").encode()
    return head + png_bytes() + f"\r\n--{_BOUNDARY}--\r\n".encode()


def _polyglot() -> bytes:
    """A valid PNG whose tEXt chunk holds an HTML page: a browser that sniffed it would run it."""
    png = png_bytes()
    text = b"Comment\x00<html><body><script>alert(document.domain)</script></body></html>"
    chunk = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text))
    return png[:33] + chunk + png[33:]  # after the 8-byte signature and the 25-byte IHDR chunk


async def test_assets_are_typed_sandboxed_and_polyglots_refused(api: Api) -> None:
    from PIL import Image

    gm: Player = await api.register("ast")
    room = await api.room(gm)
    poly = _polyglot()
    with Image.open(io.BytesIO(poly)) as img:
        img.verify()  # a real image: only the markup gives it away
    refused = await api.upload(gm, room["id"], poly)
    assert refused.status_code == 415 and refused.json()["error"]["code"] == "polyglot_image", refused.text
    asset = await api.asset(gm, room["id"])
    served = await api.http.get(asset["url"])
    assert served.status_code == 200 and served.content == png_bytes()
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    csp = served.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script" not in csp
    assert served.headers["cross-origin-resource-policy"] == "same-site"
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    again = await api.http.get(asset["url"], headers={"If-None-Match": served.headers["etag"]})
    assert again.status_code == 304 and again.headers["x-content-type-options"] == "nosniff"


async def test_security_headers(api: Api) -> None:
    page = await api.http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"
    assert "camera=()" in page.headers["permissions-policy"]
    script = await api.http.get("/js/app.js")
    assert script.status_code == 200 and script.headers["x-content-type-options"] == "nosniff"
    catalog = await api.http.get("/api/systems")
    assert catalog.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert catalog.headers["x-content-type-options"] == "nosniff"
    assert catalog.headers["cache-control"].startswith("public")  # the edge caching headers are untouched
    docs = await api.http.get("/docs")
    assert docs.status_code == 200 and "content-security-policy" not in docs.headers  # Swagger UI's inline script
    missing = await api.http.get("/api/rooms/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 401 and missing.headers["x-content-type-options"] == "nosniff"


async def test_versions_beyond_bigint_are_validation_errors(api: Api) -> None:
    gm = await api.register("ver")
    room = await api.room(gm)
    asset = await api.asset(gm, room["id"])
    made = await api.http.post(f"/api/rooms/{room['id']}/tokens", json={"asset_id": asset["id"], "x": 1, "y": 1},
                               headers=gm.headers)
    token = made.json()
    url = f"/api/rooms/{room['id']}/tokens/{token['id']}"
    patch = await api.http.patch(url, json={"x": 5, "if_version": 2**63}, headers=gm.headers)
    assert _detail(patch, "validation_error")["field"] == "if_version"
    delete = await api.http.delete(url, params={"if_version": str(2**64)}, headers=gm.headers)
    assert _detail(delete, "validation_error")["field"] == "if_version"
    snap = await api.snapshot(gm, room["id"])
    assert [(t["x"], t["version"]) for t in snap["tokens"]] == [(1, token["version"])]
