"""Undo on the page, in Chromium: a player moves their token with the keyboard and Ctrl+Z puts it back
(on the GM's page too), the Undo button takes back the token's placing, a further Ctrl+Z says there is
nothing left, and an undo after the GM moved the token shows the conflict's message."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.pages import CHROMIUM, _page, _png, _register, free_port
from tests.support.server import ServerProcess

if not os.path.exists(CHROMIUM) and os.environ.get("CI") != "true":
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = str(tmp_path_factory.mktemp("web-undo"))
    proc = ServerProcess(free_port(), {"TABLEFORGE_DATA_DIR": data}, name="web-undo")
    proc.start()
    yield proc
    proc.stop()


def _x(page: Page, token_id: str) -> Any:
    return page.evaluate("(id) => window.tableforge.state.tokens.get(id)?.x ?? null", token_id)


def test_ctrl_z_and_the_button_undo_my_token_changes(server: ServerProcess, browser: Browser) -> None:
    base = server.base_url
    suffix = uuid.uuid4().hex[:6]
    gm, player = _register(base, f"gm_{suffix}"), _register(base, f"pl_{suffix}")
    auth = {"Authorization": f"Bearer {player['token']}"}
    gm_auth = {"Authorization": f"Bearer {gm['token']}"}
    room = httpx.post(f"{base}/api/rooms", json={"name": "Undo"}, headers=gm_auth, timeout=10).json()
    assert httpx.post(f"{base}/api/rooms/join", json={"invite_code": room["invite_code"]}, headers=auth,
                      timeout=10).status_code == 200
    asset = httpx.post(f"{base}/api/rooms/{room['id']}/assets", headers=auth, timeout=10,
                       files={"file": ("t.png", _png((200, 40, 40)), "image/png")}).json()
    errors: list[str] = []
    pages = []
    for account in (gm, player):
        page = _page(browser, account, errors)
        page.goto(f"{base}/#room={room['id']}")
        expect(page.locator("#conn-status")).to_have_text("Connected")
        pages.append(page)
    gm_page, me = pages

    made = httpx.post(f"{base}/api/rooms/{room['id']}/tokens", headers=auth, timeout=10,
                      json={"asset_id": asset["id"], "x": 200, "y": 200}).json()
    token = me.locator(f".token[data-id='{made['id']}']")
    expect(token).to_be_visible()
    token.focus()
    me.keyboard.press("ArrowRight")
    me.wait_for_function("(id) => window.tableforge.state.tokens.get(id)?.version === 2", arg=made["id"])
    moved = _x(me, made["id"])
    assert moved != 200.0
    gm_page.wait_for_function("([id, x]) => window.tableforge.state.tokens.get(id)?.x === x", arg=[made["id"], moved])

    me.keyboard.press("Control+z")
    for page in (me, gm_page):
        page.wait_for_function("(id) => window.tableforge.state.tokens.get(id)?.x === 200", arg=made["id"])

    me.locator("#undo-button").click()  # the placing itself
    expect(token).to_have_count(0)
    expect(gm_page.locator(f".token[data-id='{made['id']}']")).to_have_count(0)
    me.keyboard.press("Control+z")
    expect(me.locator(".toast-error").last).to_contain_text("othing left to undo")

    # The GM moved the token after me: my undo is refused with the reason.
    other = httpx.post(f"{base}/api/rooms/{room['id']}/tokens", headers=auth, timeout=10,
                       json={"asset_id": asset["id"], "x": 300, "y": 300}).json()
    url = f"{base}/api/rooms/{room['id']}/tokens/{other['id']}"
    assert httpx.patch(url, headers=auth, json={"x": 320}, timeout=10).status_code == 200
    assert httpx.patch(url, headers=gm_auth, json={"x": 340}, timeout=10).status_code == 200
    me.wait_for_function("(id) => window.tableforge.state.tokens.get(id)?.x === 340", arg=other["id"])
    me.locator("#undo-button").click()
    expect(me.locator(".toast-error").last).to_contain_text("omeone else changed this token")
    assert _x(me, other["id"]) == 340
    assert errors == []
