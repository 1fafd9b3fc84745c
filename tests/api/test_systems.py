"""The game-system catalog."""

from __future__ import annotations

from tests.support.client import Api

TEMPLATE = {"sheet": {"fields": [{"key": "hp", "label": "HP", "type": "number"}]},
            "dice_presets": [{"label": "Attack", "notation": "1d20+3"}]}


async def test_seeded_catalog_is_official_first_with_templates(api: Api) -> None:
    r = await api.http.get("/api/systems", params={"limit": 100})
    assert r.status_code == 200
    body = r.json()
    assert {"systems", "total", "page", "limit"} <= set(body)
    official = [s for s in body["systems"] if s["is_official"]]
    assert len(official) >= 3
    flags = [s["is_official"] for s in body["systems"]]
    assert flags == sorted(flags, reverse=True), "official systems come first"
    assert all("usage_count" in s and "template" not in s for s in body["systems"])
    one = (await api.http.get(f"/api/systems/{official[0]['id']}")).json()
    assert one["template"]["dice_presets"] and one["template"]["sheet"]["fields"]
    assert "token_defaults" in one["template"]


async def test_create_search_filter_paginate_rate(api: Api, unique: str) -> None:
    owner = await api.register("owner")
    made = []
    for i, (cat, cx) in enumerate([("space", "beginner"), ("space", "advanced"), ("western", "beginner")]):
        r = await api.http.post("/api/systems", headers=owner.headers, json={
            "name": f"Sys{unique} {i}", "description": f"about {unique} number {i}", "category": cat + unique,
            "complexity": cx, "is_public": True, "template": TEMPLATE})
        assert r.status_code == 201, r.text
        assert r.json()["owner_id"] == owner.id and r.json()["template"] == TEMPLATE
        made.append(r.json())

    found = (await api.http.get("/api/systems", params={"search": unique})).json()
    assert found["total"] == 3
    space = (await api.http.get("/api/systems", params={"category": "space" + unique})).json()
    assert {s["id"] for s in space["systems"]} == {made[0]["id"], made[1]["id"]}
    easy = (await api.http.get("/api/systems", params={"category": "space" + unique, "complexity": "beginner"})).json()
    assert [s["id"] for s in easy["systems"]] == [made[0]["id"]]
    page2 = (await api.http.get("/api/systems", params={"search": unique, "limit": 2, "page": 2})).json()
    assert page2["total"] == 3 and len(page2["systems"]) == 1 and page2["page"] == 2 and page2["limit"] == 2
    wild = (await api.http.get("/api/systems", params={"search": "%_%' OR 1=1 --"})).json()
    assert wild["total"] == 0

    rater = await api.register("rater")
    r1 = await api.http.post(f"/api/systems/{made[2]['id']}/rating", json={"rating": 5}, headers=rater.headers)
    r2 = await api.http.post(f"/api/systems/{made[2]['id']}/rating", json={"rating": 3}, headers=owner.headers)
    r3 = await api.http.post(f"/api/systems/{made[2]['id']}/rating", json={"rating": 1}, headers=rater.headers)
    assert r1.status_code == r2.status_code == r3.status_code == 200
    assert r3.json()["average"] == 2.0 and r3.json()["rating_count"] == 2, "one rating per user"
    bad = await api.http.post(f"/api/systems/{made[2]['id']}/rating", json={"rating": 6}, headers=rater.headers)
    assert bad.status_code == 422
    # Rating ranks: the 2.0 system now comes before its unrated siblings in the same search.
    ordered = (await api.http.get("/api/systems", params={"search": unique})).json()["systems"]
    assert ordered[0]["id"] == made[2]["id"]


async def test_usage_count_counts_rooms(api: Api, unique: str) -> None:
    owner = await api.register("gm")
    system = (await api.http.post("/api/systems", headers=owner.headers, json={
        "name": f"Used{unique}", "category": "misc", "complexity": "beginner", "template": {}})).json()
    await api.room(owner, system_id=system["id"])
    await api.room(owner, system_id=system["id"])
    listed = (await api.http.get("/api/systems", params={"search": f"Used{unique}"})).json()["systems"][0]
    assert listed["usage_count"] == 2 and listed["download_count"] == 2


async def test_private_systems_and_ownership(api: Api, unique: str) -> None:
    owner = await api.register("own")
    other = await api.register("oth")
    priv = (await api.http.post("/api/systems", headers=owner.headers, json={
        "name": f"Secret{unique}", "category": "misc", "complexity": "advanced", "is_public": False,
        "template": {}})).json()
    assert (await api.http.get(f"/api/systems/{priv['id']}")).status_code == 404
    assert (await api.http.get(f"/api/systems/{priv['id']}", headers=other.headers)).status_code == 404
    assert (await api.http.get(f"/api/systems/{priv['id']}", headers=owner.headers)).status_code == 200
    assert (await api.http.get("/api/systems", params={"search": f"Secret{unique}"})).json()["total"] == 0

    pub = (await api.http.post("/api/systems", headers=owner.headers, json={
        "name": f"Pub{unique}", "category": "misc", "complexity": "advanced", "template": {}})).json()
    forbidden = await api.http.patch(f"/api/systems/{pub['id']}", json={"name": "Mine now"}, headers=other.headers)
    assert forbidden.status_code == 403
    patched = await api.http.patch(f"/api/systems/{pub['id']}", json={"name": f"Renamed{unique}"},
                                   headers=owner.headers)
    assert patched.status_code == 200 and patched.json()["name"] == f"Renamed{unique}"
    assert (await api.http.delete(f"/api/systems/{pub['id']}", headers=other.headers)).status_code == 403
    assert (await api.http.delete(f"/api/systems/{pub['id']}", headers=owner.headers)).status_code == 204
    assert (await api.http.get(f"/api/systems/{pub['id']}")).status_code == 404
    assert (await api.http.get("/api/systems/not-a-uuid")).status_code == 422
    assert (await api.http.get("/api/systems", params={"limit": 101})).status_code == 422
