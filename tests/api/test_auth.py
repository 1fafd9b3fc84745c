"""Accounts and sessions, as a client sees them."""

from __future__ import annotations

from tests.support.client import Api


async def test_register_login_me_logout(api: Api, unique: str) -> None:
    r = await api.http.post("/api/auth/register", json={"username": f"ann{unique}", "password": "s3cret-pass",
                                                          "first_name": "Ann", "last_name": "Lee"})
    assert r.status_code == 201
    body = r.json()
    assert body["user"]["username"] == f"ann{unique}" and body["user"]["first_name"] == "Ann"
    assert body["user"]["is_admin"] is False and "password" not in str(body["user"])
    token = body["token"]

    me = await api.http.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert set(me.json()) >= {"id", "username", "first_name", "last_name", "profile_image_url", "is_admin"}

    again = await api.http.post("/api/auth/register", json={"username": f"ann{unique}", "password": "other-pass"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "username_taken"

    login = await api.http.post("/api/auth/login", json={"username": f"ann{unique}", "password": "s3cret-pass"})
    assert login.status_code == 200 and login.json()["token"] != token
    second = login.json()["token"]
    api.http.cookies.clear()

    out = await api.http.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert out.status_code == 204
    gone = await api.http.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "invalid_token"
    # Logging out one session leaves the others working.
    still = await api.http.get("/api/users/me", headers={"Authorization": f"Bearer {second}"})
    assert still.status_code == 200


async def test_bad_credentials_and_tokens(api: Api, unique: str) -> None:
    await api.http.post("/api/auth/register", json={"username": f"bob{unique}", "password": "right-password"})
    wrong = await api.http.post("/api/auth/login", json={"username": f"bob{unique}", "password": "wrong-password"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_credentials"
    nobody = await api.http.post("/api/auth/login", json={"username": f"nobody{unique}", "password": "x" * 10})
    assert nobody.status_code == 401
    api.http.cookies.clear()
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer " + "x" * 5000}):
        r = await api.http.get("/api/users/me", headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] in ("unauthorized", "invalid_token")


async def test_cookie_session(api: Api, unique: str) -> None:
    r = await api.http.post("/api/auth/register", json={"username": f"cky{unique}", "password": "cookie-pass"})
    assert "tableforge_session" in r.cookies
    api.http.cookies.set("tableforge_session", r.json()["token"])
    me = await api.http.get("/api/users/me")
    assert me.status_code == 200


async def test_registration_validation(api: Api) -> None:
    cases = [
        ({"username": "ab", "password": "long-enough"}, 422),
        ({"username": "has space", "password": "long-enough"}, 422),
        ({"username": "fine_name", "password": "short"}, 422),
        ({"username": "fine_name"}, 422),
        ({"username": "x' OR 1=1 --", "password": "long-enough"}, 422),
        ({"username": "fine_name", "password": "long-enough", "is_admin": True}, 422),
    ]
    for body, status in cases:
        r = await api.http.post("/api/auth/register", json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"] == "validation_error"
    malformed = await api.http.post("/api/auth/register", content=b"{not json",
                                    headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "bad_json"
