"""The new dice forms as the chat shows them, in Chromium: a label, each die of an exploding roll
marked, dropped dice struck through, successes counted, Fudge faces, one line per repeat; the other
player's page shows the same. A screenshot of the log goes to test-artifacts/dice-log.png."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM) and os.environ.get("CI") != "true":
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

from tests.support.server import ServerProcess  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = ServerProcess(port, {"TABLEFORGE_DATA_DIR": str(tmp_path_factory.mktemp("web-dice"))}, name="web-dice")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


def _account(base: str, name: str) -> dict[str, Any]:
    r = httpx.post(f"{base}/api/auth/register", json={"username": name, "password": "table-secret-1"}, timeout=10)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _page(browser: Browser, base: str, account: dict[str, Any], room_id: str, errors: list[str]) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    token, user = json.dumps(account["token"]), json.dumps(json.dumps(account["user"]))
    context.add_init_script(f"localStorage.setItem('tableforge.token', {token});"
                            f"localStorage.setItem('tableforge.user', {user});")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/#room={room_id}")
    expect(page.locator("#conn-status")).to_have_text("Connected")
    return page


def _roll(page: Page, text: str) -> None:
    page.fill("#chat-input", text)
    page.press("#chat-input", "Enter")
    expect(page.locator("#chat-input")).to_have_value("")


def test_rolls_show_each_die_with_its_marks(server: ServerProcess, browser: Browser) -> None:
    base = server.base_url
    suffix = uuid.uuid4().hex[:6]
    gm, player = _account(base, f"gm_{suffix}"), _account(base, f"pl_{suffix}")
    room = httpx.post(f"{base}/api/rooms", json={"name": "Dice"}, timeout=10,
                      headers={"Authorization": f"Bearer {gm['token']}"}).json()
    joined = httpx.post(f"{base}/api/rooms/join", json={"invite_code": room["invite_code"]}, timeout=10,
                        headers={"Authorization": f"Bearer {player['token']}"})
    assert joined.status_code == 200, joined.text
    errors: list[str] = []
    gm_page = _page(browser, base, gm, room["id"], errors)
    me = _page(browser, base, player, room["id"], errors)
    log = me.locator("#chat-log .msg-roll")

    _roll(me, "/roll 1d20+5 stealth")
    first = log.nth(0)
    expect(first.locator(".roll-label")).to_have_text("stealth")
    expect(first.locator(".roll-notation")).to_have_text("1d20+5")
    expect(first.locator(".die")).to_have_count(1)

    _roll(me, "/roll 100d2!")  # 100 two-sided dice: some 2s are all but certain, and each one explodes
    boom = log.nth(1)
    expect(boom.locator(".die-extra").first).to_be_visible()
    exploded, extra = boom.locator(".die-exploded").count(), boom.locator(".die-extra").count()
    assert exploded >= 1 and extra == exploded, "every exploded die added one"
    assert boom.locator(".die").count() == 100 + extra
    expect(boom.locator(".die-exploded").first).to_contain_text("!")

    _roll(me, "/roll 4d6kh3")
    keep = log.nth(2)
    expect(keep.locator(".die")).to_have_count(4)
    expect(keep.locator(".die-dropped s")).to_have_count(1)
    expect(keep.locator(".die-dropped")).to_contain_text("(dropped)")

    _roll(me, "/roll 10d6>=5")
    hits = log.nth(3)
    roll = me.evaluate("() => [...window.tableforge.state.messages.values()].filter(m => m.kind === 'roll')"
                       ".sort((a, b) => a.version - b.version)[3].roll")
    successes = roll["terms"][0]["successes"]
    expect(hits.locator(".die-success")).to_have_count(successes)
    expect(hits.locator(".roll-total")).to_contain_text(f"= {roll['total']}")
    expect(hits.locator(".roll-total")).to_contain_text("success")

    _roll(me, "/roll 4dF")
    fudge = log.nth(4)
    faces = fudge.locator(".die").all_inner_texts()
    assert len(faces) == 4 and all(f.strip()[0] in "+\u22120" for f in faces), faces  # +, minus sign, 0

    _roll(me, "/roll 3#1d20 attacks")
    repeat = log.nth(5)
    expect(repeat.locator(".roll-set")).to_have_count(3)
    expect(repeat.locator(".roll-label")).to_have_text("attacks")
    expect(repeat.locator(".roll-notation")).to_have_text("3#1d20")

    me.fill("#chat-input", "/roll 1d20 kh1")
    me.press("#chat-input", "Enter")
    expect(me.locator(".toast-error").last).to_contain_text("position 6")
    expect(me.locator("#chat-input")).to_have_value("/roll 1d20 kh1"), "kept, to be corrected"

    # The GM's page shows the same rolls, die for die.
    gm_log = gm_page.locator("#chat-log .msg-roll")
    expect(gm_log).to_have_count(6)
    for i in range(6):
        assert gm_log.nth(i).locator(".roll").inner_text() == log.nth(i).locator(".roll").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    # the whole log in the picture: a tall window, and the log not scrolling inside it
    me.set_viewport_size({"width": 1280, "height": 2600})
    me.locator("#chat-log").evaluate(
        "el => { el.style.maxHeight = 'none'; el.closest('.side').style.overflow = 'visible'; }")
    me.locator("#chat-log").screenshot(path=str(ARTIFACTS / "dice-log.png"))
    assert errors == []
