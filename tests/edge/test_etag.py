"""ETag/304 and caching headers on the catalog, systems and room snapshots (both backends)."""

from __future__ import annotations

import uuid

from tests.support.client import Api

PUBLIC = "public, max-age=0, s-maxage=60, stale-while-revalidate=300"
PRIVATE = "private, no-cache"


def _system(name: str, *, public: bool = True) -> dict[str, object]:
    return {"name": name, "description": "d", "category": "fantasy", "complexity": "beginner",
            "is_public": public, "template": {"dice_presets": []}}


async def test_catalog_page_etag_304_and_new_etag_after_a_write(api: Api) -> None:
    marker = f"etag{uuid.uuid4().hex[:8]}"
    first = await api.http.get("/api/systems", params={"search": marker})
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == PUBLIC
    assert first.headers["surrogate-key"] == "catalog catalog-search" == first.headers["xkey"]
    unfiltered = await api.http.get("/api/systems", params={"complexity": "beginner"})
    assert unfiltered.headers["xkey"] == "catalog catalog-all-beginner"
    again = await api.http.get("/api/systems", params={"search": marker}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag and again.headers["cache-control"] == PUBLIC
    weak = await api.http.get("/api/systems", params={"search": marker},
                              headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304  # weak comparison, lists

    owner = await api.register("etag")
    made = await api.http.post("/api/systems", headers=owner.headers, json=_system(f"{marker} One"))
    assert made.status_code == 201
    after = await api.http.get("/api/systems", params={"search": marker}, headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["etag"] != etag
    assert after.json()["total"] == 1


async def test_system_etag_and_public_or_private_caching(api: Api) -> None:
    owner = await api.register("sys")
    public = (await api.http.post("/api/systems", headers=owner.headers, json=_system("Pub"))).json()
    r = await api.http.get(f"/api/systems/{public['id']}")
    assert r.headers["cache-control"] == PUBLIC and r.headers["xkey"] == f"system-{public['id']}"
    etag = r.headers["etag"]
    assert (await api.http.get(f"/api/systems/{public['id']}", headers={"If-None-Match": etag})).status_code == 304
    await api.http.patch(f"/api/systems/{public['id']}", headers=owner.headers, json={"description": "new"})
    changed = await api.http.get(f"/api/systems/{public['id']}", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["description"] == "new"

    private = (await api.http.post("/api/systems", headers=owner.headers, json=_system("Mine", public=False))).json()
    mine = await api.http.get(f"/api/systems/{private['id']}", headers=owner.headers)
    assert mine.status_code == 200 and mine.headers["cache-control"] == PRIVATE
    assert "xkey" not in mine.headers and "surrogate-key" not in mine.headers
    hidden = await api.http.get(f"/api/systems/{private['id']}", headers={"If-None-Match": mine.headers["etag"]})
    assert hidden.status_code == 404  # a validator never bypasses the permission check


async def test_room_snapshot_revalidates_cheaply_and_changes_with_every_acked_change(api: Api) -> None:
    gm, player, outsider = await api.register("gm"), await api.register("pl"), await api.register("out")
    room = await api.room(gm, player)
    path = f"/api/rooms/{room['id']}"
    r = await api.http.get(path, headers=gm.headers)
    assert r.status_code == 200 and r.headers["cache-control"] == PRIVATE
    etag = r.headers["etag"]
    assert etag.startswith('W/"')

    same = await api.http.get(path, headers={**gm.headers, "If-None-Match": etag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == etag
    # Another role sees another snapshot (the GM's has the invite code): never the GM's 304.
    as_player = await api.http.get(path, headers={**player.headers, "If-None-Match": etag})
    assert as_player.status_code == 200 and "invite_code" not in as_player.json()["room"]
    # Not a member: the validator does not bypass the membership check.
    assert (await api.http.get(path, headers={**outsider.headers, "If-None-Match": etag})).status_code == 403
    assert (await api.http.get(path, headers={**outsider.headers, "If-None-Match": "*"})).status_code == 403

    # An acked change (a stored event: the room version rises) -> a new ETag and the new body.
    asset = await api.asset(gm, room["id"])
    moved = await api.http.get(path, headers={**gm.headers, "If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["etag"] != etag
    assert [a["id"] for a in moved.json()["assets"]] == [asset["id"]]
    etag = moved.headers["etag"]
    tok = await api.http.post(f"{path}/tokens", headers=gm.headers, json={"asset_id": asset["id"], "x": 1, "y": 2})
    assert tok.status_code == 201
    after_token = await api.http.get(path, headers={**gm.headers, "If-None-Match": etag})
    assert after_token.status_code == 200 and len(after_token.json()["tokens"]) == 1
    etag = after_token.headers["etag"]

    # Changes that do not raise the version still change the ETag: a new member, closing.
    newcomer = await api.register("new")
    joined = await api.http.post("/api/rooms/join", json={"invite_code": room["invite_code"]}, headers=newcomer.headers)
    assert joined.status_code == 200
    with_member = await api.http.get(path, headers={**gm.headers, "If-None-Match": etag})
    assert with_member.status_code == 200 and len(with_member.json()["players"]) == 3
    etag = with_member.headers["etag"]
    assert (await api.http.delete(path, headers=gm.headers)).status_code == 204
    closed = await api.http.get(path, headers={**gm.headers, "If-None-Match": etag})
    assert closed.status_code == 200 and closed.json()["room"]["is_active"] is False
    final = await api.http.get(path, headers={**gm.headers, "If-None-Match": closed.headers["etag"]})
    assert final.status_code == 304


async def test_room_asset_list_is_right_after_each_upload_and_delete(api: Api) -> None:
    gm, player = await api.register("gm"), await api.register("pl")
    room = await api.room(gm, player)
    path = f"/api/rooms/{room['id']}/assets"
    assert (await api.http.get(path, headers=player.headers)).json()["assets"] == []
    made = [await api.asset(gm, room["id"]) for _ in range(3)]
    for who in (gm, player):  # read twice: the second list comes from the cache
        listed = (await api.http.get(path, headers=who.headers)).json()["assets"]
        assert [a["id"] for a in listed] == [a["id"] for a in made]
        assert listed == made
    assert (await api.http.delete(f"/api/assets/{made[1]['id']}", headers=gm.headers)).status_code == 204
    listed = (await api.http.get(path, headers=player.headers)).json()["assets"]
    assert [a["id"] for a in listed] == [made[0]["id"], made[2]["id"]]
    outsider = await api.register("out")
    assert (await api.http.get(path, headers=outsider.headers)).status_code == 403


async def test_filtered_catalog_pages_follow_moves_between_categories(api: Api) -> None:
    """Pages are invalidated per filter combination: moving a system invalidates where it was and is."""
    old, new = f"c{uuid.uuid4().hex[:8]}", f"c{uuid.uuid4().hex[:8]}"
    owner = await api.register("mover")
    made = (await api.http.post("/api/systems", headers=owner.headers,
                                json=_system("Mover") | {"category": old})).json()

    async def names(**params: str) -> list[str]:
        return [s["id"] for s in (await api.http.get("/api/systems", params=params)).json()["systems"]]

    for _ in range(2):  # cached
        assert await names(category=old) == [made["id"]] and await names(category=new) == []
        assert made["id"] in await names(category=old, complexity="beginner")
    r = await api.http.patch(f"/api/systems/{made['id']}", headers=owner.headers,
                             json={"category": new, "complexity": "advanced"})
    assert r.status_code == 200
    assert await names(category=old) == [] and await names(category=new) == [made["id"]]
    assert await names(category=old, complexity="beginner") == []
    assert await names(category=new, complexity="advanced") == [made["id"]]
    assert await names(category=new, complexity="beginner") == []
    other = (await api.http.post("/api/systems", headers=owner.headers,
                                 json=_system("Second") | {"category": new, "complexity": "advanced"})).json()
    assert await names(category=new) == [other["id"], made["id"]]  # newest first at equal ratings
    assert (await api.http.post(f"/api/systems/{made['id']}/rating", headers=owner.headers,
                                json={"rating": 5})).status_code == 200
    assert await names(category=new) == [made["id"], other["id"]]  # the rating reorders the page
    assert (await api.http.delete(f"/api/systems/{made['id']}", headers=owner.headers)).status_code == 204
    assert await names(category=new, complexity="advanced") == [other["id"]]
