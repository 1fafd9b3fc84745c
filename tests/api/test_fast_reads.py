"""The hot GETs (api/fast_reads.py) answer as every other route does: the same bodies, errors,
validation details, security headers and per-route metrics, whether the request is one the fast
lane answers (valid parameters, an `AppError`) or one it leaves to the full stack (a parameter that
does not validate, another method)."""

from __future__ import annotations

import uuid

from tests.support.client import Api
from tests.support.metrics import sample

API_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "same-origin",
               "content-security-policy": "default-src 'none'; frame-ancestors 'none'"}


def _api_headers(headers: object) -> dict[str, str]:
    return {k: headers.get(k) for k in API_HEADERS}  # type: ignore[attr-defined]


async def test_the_hot_reads_answer_their_errors_in_the_documented_shape(api: Api) -> None:
    gm, alice, outsider = await api.register("gm"), await api.register("al"), await api.register("out")
    room = await api.room(gm, alice)
    rid, http = room["id"], api.http
    counted = await sample(http, "tableforge_http_request_seconds_count", method="GET",
                           route="/api/rooms/{room_id}", status="403")

    stranger = await http.get(f"/api/rooms/{rid}", headers=outsider.headers)  # an AppError, from the lane
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (403, "not_member"), stranger.text
    assert set(stranger.json()["error"]) == {"code", "message", "details"}
    assert _api_headers(stranger.headers) == API_HEADERS
    assert await sample(http, "tableforge_http_request_seconds_count", method="GET", route="/api/rooms/{room_id}",
                        status="403") == counted + 1

    nobody = await http.get(f"/api/rooms/{rid}/players")
    assert (nobody.status_code, nobody.json()["error"]["code"]) == (401, "unauthorized")
    assert _api_headers(nobody.headers) == API_HEADERS

    # parameters that do not validate: the full stack's 422, with the field and where it is
    bad_path = await http.get("/api/rooms/not-a-room", headers=gm.headers)
    assert bad_path.status_code == 422 and bad_path.json()["error"]["code"] == "validation_error"
    assert [(d["field"], d["in"]) for d in bad_path.json()["error"]["details"]] == [("room_id", "path")]
    bad_query = await http.get(f"/api/rooms/{rid}/players", params={"online": "maybe"}, headers=gm.headers)
    assert [(d["field"], d["in"]) for d in bad_query.json()["error"]["details"]] == [("online", "query")]
    too_many = await http.get("/api/systems", params={"limit": 101, "page": 0})
    assert sorted(d["field"] for d in too_many.json()["error"]["details"]) == ["limit", "page"]
    assert _api_headers(too_many.headers) == API_HEADERS

    missing = await http.get(f"/api/systems/{uuid.uuid4()}")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "system_not_found")
    no_file = await http.get(f"/assets/{'0' * 64}.png")
    assert (no_file.status_code, no_file.json()["error"]["code"]) == (404, "asset_not_found")


async def test_the_hot_reads_take_their_query_parameters(api: Api) -> None:
    gm, alice = await api.register("gm"), await api.register("al")
    room = await api.room(gm, alice)
    rid, http = room["id"], api.http
    everyone = (await http.get(f"/api/rooms/{rid}/players", headers=gm.headers)).json()
    assert sorted(p["user"]["id"] for p in everyone["players"]) == sorted([gm.id, alice.id])
    online = (await http.get(f"/api/rooms/{rid}/players", params={"online": "true"}, headers=gm.headers)).json()
    assert online == {"players": [], "total": 0}  # nobody has a socket in the room
    first = (await http.get("/api/systems", params={"limit": 2})).json()
    second = (await http.get("/api/systems", params={"limit": 2, "page": 2})).json()
    assert len(first["systems"]) == len(second["systems"]) == 2 and first["total"] == second["total"] > 4
    assert {s["id"] for s in first["systems"]}.isdisjoint(s["id"] for s in second["systems"])
    one = first["systems"][0]
    again = await http.get(f"/api/systems/{one['id']}")
    assert again.status_code == 200 and again.json()["name"] == one["name"]
    cached = await http.get(f"/api/systems/{one['id']}", headers={"If-None-Match": again.headers["etag"]})
    assert cached.status_code == 304 and _api_headers(cached.headers) == API_HEADERS

    other_method = await http.post(f"/api/rooms/{rid}/players", headers=gm.headers)  # not a GET: the full stack
    assert (other_method.status_code, other_method.json()["error"]["code"]) == (405, "method_not_allowed")
