"""Hidden information on the web page, in Debian's Chromium (Playwright), GM and player in two
browser contexts (a spectator in a third), against real servers: once embedded, once two scale-out
instances with the GM on one and the player and spectator on the other.

The GM uploads an image hidden and drags its token, hides a token on the GM layer, covers the
board with fog (rectangle, hide all, polygon, by mouse and by keyboard), whispers, rolls for
the GM only, and moves the players between scenes. The player's page must show none of what is
hidden: no element, no state and no WebSocket frame carries the secret token's or image's id.
Revealing shows them. Screenshots of both views go to test-artifacts/.
"""

from __future__ import annotations

import json
import os
import random
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.pages import ARTIFACTS, CHROMIUM, _page, _png, _register

if not os.path.exists(CHROMIUM) and os.environ.get("CI") != "true":
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect

# `instances` (embedded, then two scale-out instances) and `browser`: tests/browser/conftest.py.


def _h(account: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {account['token']}"}


def _record_frames(page: Page) -> tuple[list[str], list[str]]:
    """Every WebSocket frame the page receives and sends, as text."""
    received: list[str] = []
    sent: list[str] = []

    def text(payload: str | bytes) -> str:
        return payload if isinstance(payload, str) else payload.decode()

    def on_socket(ws: Any) -> None:
        ws.on("framereceived", lambda payload: received.append(text(payload)))
        ws.on("framesent", lambda payload: sent.append(text(payload)))

    page.on("websocket", on_socket)
    return received, sent


def _token(page: Page, token_id: str) -> Any:
    return page.locator(f'.token[data-id="{token_id}"]')


def _centre(page: Page, token_id: str) -> tuple[float, float]:
    box = _token(page, token_id).bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _place_from_library(page: Page, asset_name: str) -> str:
    """Click the library's Token button for `asset_name`; the new token's id."""
    before = set(page.evaluate("[...window.tableforge.state.tokens.keys()]"))
    page.get_by_role("button", name=f"Place {asset_name} as a token", exact=True).click()
    page.wait_for_function("(n) => window.tableforge.state.tokens.size === n", arg=len(before) + 1)
    [new] = set(page.evaluate("[...window.tableforge.state.tokens.keys()]")) - before
    return str(new)


def _no_trace(page: Page, secret: str) -> None:
    """Nothing of `secret` on the page: no element, no state, no markup."""
    expect(page.locator(f'[data-id="{secret}"]')).to_have_count(0)
    assert secret not in page.content()
    state = page.evaluate("""() => { const s = window.tableforge.state; return JSON.stringify(
        [[...s.tokens.values()], [...s.assets.values()], [...s.messages.values()], s.scene]); }""")
    assert secret not in state


def _drag(page: Page, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    for i in range(1, steps + 1):
        page.mouse.move(start[0] + (end[0] - start[0]) * i / steps, start[1] + (end[1] - start[1]) * i / steps)
    page.mouse.up()


def _fog_shapes(page: Page) -> int:
    return int(page.locator(".board-fog").get_attribute("data-shapes") or "0")


def test_gm_hides_and_the_player_never_sees_it(instances: list[Any], browser: Browser, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    gm_base, player_base = instances[0].base_url, instances[-1].base_url
    suffix = uuid.uuid4().hex[:6]
    gm_account = _register(gm_base, f"gm_{suffix}")
    player_account = _register(gm_base, f"pl_{suffix}")
    watcher_account = _register(gm_base, f"sp_{suffix}")
    player_name = player_account["user"]["username"]
    errors: list[str] = []

    room = httpx.post(f"{gm_base}/api/rooms", json={"name": "Ambush"}, headers=_h(gm_account), timeout=10).json()
    room_id = room["id"]
    joined = httpx.post(f"{gm_base}/api/rooms/join", json={"invite_code": room["invite_code"]},
                        headers=_h(player_account), timeout=10)
    assert joined.status_code == 200, joined.text
    hero_png = tmp_path / "hero.png"
    hero_png.write_bytes(_png((30, 90, 200)))
    trap_png = tmp_path / "trap.png"
    trap_png.write_bytes(_png((200, 20, 20), (80, 80)))

    gm = _page(browser, gm_account, errors)
    gm.on("dialog", lambda dialog: dialog.accept())
    gm.goto(f"{gm_base}/#room={room_id}")
    expect(gm.locator("#conn-status")).to_have_text("Connected")
    expect(gm.locator("#gm-tools")).to_be_visible()
    player = _page(browser, player_account, errors)
    player_frames, player_sent = _record_frames(player)
    player.goto(f"{player_base}/#room={room_id}")
    expect(player.locator("#conn-status")).to_have_text("Connected")
    expect(player.locator("#gm-tools")).to_be_hidden()
    expect(player.locator("#role-note")).to_have_text("Player")

    # -- the spectator follows the spectator link shown to the GM --------------------------------
    gm.click("#copy-spectator-invite")
    spectator_code = gm.evaluate("window.tableforge.state.room.spectator_invite_code")
    assert spectator_code and spectator_code != room["invite_code"]
    expect(gm.locator(".toast").last).to_contain_text(f"/#join={spectator_code}")
    watcher = _page(browser, watcher_account, errors)
    watcher_frames, watcher_sent = _record_frames(watcher)
    watcher.goto(f"{gm_base}/#join={spectator_code}")
    expect(watcher.locator("#conn-status")).to_have_text("Connected")
    expect(watcher.locator("#role-note")).to_have_text("Spectator")
    expect(watcher.locator("#chat-input")).to_be_disabled()
    expect(watcher.locator("#spectator-note")).to_be_visible()
    expect(watcher.locator("#images-panel")).to_be_hidden()
    expect(gm.locator("#player-list .role-spectator")).to_have_text("Spectator")

    # -- a visible token, and an image uploaded hidden whose token the GM drags around -----------
    gm.set_input_files("#upload-file", str(hero_png))
    gm.fill("#upload-name", "Hero")
    gm.click("#upload-button")
    expect(gm.locator(".token")).to_have_count(1)
    hero = gm.locator(".token").first.get_attribute("data-id")
    assert hero
    expect(_token(player, hero)).to_be_visible()
    expect(_token(watcher, hero)).to_be_visible()

    gm.set_input_files("#upload-file", str(trap_png))
    gm.fill("#upload-name", "Trap")
    gm.check("#upload-hidden")
    gm.click("#upload-button")
    expect(gm.locator(".token")).to_have_count(2)
    trap = next(t for t in gm.evaluate("[...window.tableforge.state.tokens.keys()]") if t != hero)
    trap_asset = gm.evaluate("(id) => window.tableforge.state.tokens.get(id).asset_id", trap)
    trap_sha = gm.evaluate("(id) => window.tableforge.state.assets.get(id).sha256", trap_asset)
    expect(_token(gm, trap)).to_have_class(re.compile(r"\bis-hidden\b"))
    expect(gm.locator(f'.library-item[data-asset-id="{trap_asset}"] .badge-hidden')).to_have_text("hidden")
    _drag(gm, _centre(gm, trap), (_centre(gm, trap)[0] + 90, _centre(gm, trap)[1] + 40))
    gm.wait_for_function("(id) => window.tableforge.state.tokens.get(id).version >= 2", arg=trap)
    assert gm.evaluate("window.tableforge.board.previewsSent") >= 1

    # -- the GM layer: a token placed hidden, then revealed and hidden again ---------------------
    gm.check("#gm-new-hidden")
    expect(gm.locator("#gm-layer-note")).to_be_visible()
    ambusher = _place_from_library(gm, "Hero")
    gm.uncheck("#gm-new-hidden")
    expect(_token(gm, ambusher)).to_have_class(re.compile(r"\bis-hidden\b"))
    expect(_token(gm, ambusher).locator(".token-flag")).to_have_text("hidden")
    expect(player.locator(".token")).to_have_count(1)  # the hero only
    _no_trace(player, ambusher)
    gm.uncheck("#gm-show-hidden")
    expect(_token(gm, ambusher)).to_have_count(0)
    expect(_token(gm, trap)).to_have_count(0)
    gm.check("#gm-show-hidden")
    _token(gm, ambusher).click()
    expect(gm.locator("#toggle-hidden")).to_have_text("Reveal to players")
    gm.click("#toggle-hidden")
    expect(_token(player, ambusher)).to_be_visible()
    expect(_token(watcher, ambusher)).to_be_visible()
    expect(_token(gm, ambusher)).not_to_have_class(re.compile(r"\bis-hidden\b"))
    _token(gm, ambusher).focus()
    gm.keyboard.press("h")  # the key does the same
    expect(_token(player, ambusher)).to_have_count(0)
    expect(_token(gm, ambusher)).to_have_class(re.compile(r"\bis-hidden\b"))

    # -- fog: a rectangle over the hero hides it from the player -------------------------------
    gm.click("#fog-hide-rect")
    hx, hy = _centre(gm, hero)
    _drag(gm, (hx - 30, hy - 30), (hx + 30, hy + 30))
    expect(_token(player, hero)).to_have_count(0)
    expect(_token(watcher, hero)).to_have_count(0)
    expect(_token(gm, hero)).to_have_class(re.compile(r"\bis-fogged\b"))
    expect(player.locator(".board-fog")).to_have_attribute("data-shapes", "1")
    # what the canvas shows where the hero stands: fog, opaque for the player, see-through for the GM
    hero_at = gm.evaluate("(id) => { const t = window.tableforge.state.tokens.get(id); return [t.x, t.y]; }", hero)
    assert player.evaluate("([x, y]) => window.tableforge.board.fog.drawnAt(x, y)", hero_at) is True
    assert gm.evaluate("([x, y]) => window.tableforge.board.fog.drawnAt(x, y)", hero_at) is True
    assert player.evaluate("getComputedStyle(document.querySelector('.board-fog')).opacity") == "1"
    assert float(gm.evaluate("getComputedStyle(document.querySelector('.board-fog')).opacity")) < 1
    gm.click("#fog-reveal-all")  # confirmed in the dialog
    expect(_token(player, hero)).to_be_visible()
    expect(player.locator(".board-fog")).to_have_attribute("data-shapes", "0")

    # hide all, then reveal a polygon around the hero (click, click, double-click)
    gm.click("#fog-hide-all")
    expect(_token(player, hero)).to_have_count(0)
    expect(player.locator(".board-fog")).to_have_attribute("data-base", "hidden")
    gm.click("#fog-reveal-poly")
    expect(gm.locator("#fog-reveal-poly")).to_have_attribute("aria-pressed", "true")
    hx, hy = _centre(gm, hero)
    gm.mouse.click(hx - 70, hy - 60)
    gm.mouse.click(hx + 80, hy - 50)
    expect(gm.locator("#fog-status")).to_contain_text("2 corners")
    gm.mouse.dblclick(hx + 10, hy + 90)
    expect(_token(player, hero)).to_be_visible()
    assert _fog_shapes(player) == 1
    assert player.evaluate("([x, y]) => window.tableforge.board.fog.drawnAt(x, y)", hero_at) is False
    assert player.evaluate("([x, y]) => window.tableforge.board.fog.drawnAt(x + 150, y)", hero_at) is True
    gm.keyboard.press("Escape")  # puts the tool down
    # the pictures: the GM sees the fog dark but see-through and the hidden tokens faded; the
    # player sees opaque fog around the revealed polygon, and only the hero
    gm.mouse.move(0, 0)
    gm.screenshot(path=str(ARTIFACTS / "hidden-gm.png"))
    player.screenshot(path=str(ARTIFACTS / "hidden-player.png"))
    expect(gm.locator("#fog-reveal-poly")).to_have_attribute("aria-pressed", "false")

    # by keyboard: the cross-hair starts mid-board; arrows (10 px a press) and Space draw a
    # rectangle over the hero, then "Reveal view" uncovers what the board shows
    gm.click("#fog-hide-rect")
    board = gm.locator("#board").bounding_box()
    assert board is not None
    hx, hy = _centre(gm, hero)
    for key, px in (("ArrowRight", hx - 60 - (board["x"] + board["width"] / 2)),
                    ("ArrowDown", hy - 60 - (board["y"] + board["height"] / 2))):
        opposite = {"ArrowRight": "ArrowLeft", "ArrowDown": "ArrowUp"}[key]
        for _ in range(round(abs(px) / 10)):
            gm.keyboard.press(key if px > 0 else opposite)
    gm.keyboard.press("Space")
    for _ in range(12):
        gm.keyboard.press("ArrowRight")
        gm.keyboard.press("ArrowDown")
    gm.keyboard.press("Space")
    expect(_token(player, hero)).to_have_count(0)
    expect(gm.locator(".board-fog")).to_have_attribute("data-shapes", "2")
    gm.click("#fog-cancel")
    gm.click("#fog-reveal-view")
    expect(_token(player, hero)).to_be_visible()
    expect(player.locator(".board-fog")).to_have_attribute("data-shapes", "3")

    # -- whispers and secret rolls reach their audience only -----------------------------------
    gm.fill("#chat-input", f"/w {player_name.upper()} the door is trapped")
    gm.press("#chat-input", "Enter")
    expect(player.locator("#chat-log .msg-whisper")).to_contain_text("the door is trapped")
    expect(player.locator("#chat-log .msg-whisper .msg-audience")).to_have_text("whispers to you")
    expect(gm.locator("#chat-log .msg-whisper .msg-audience")).to_have_text(f"whisper to {player_name}")
    player.fill("#chat-input", "/gmroll 1d20")
    player.press("#chat-input", "Enter")
    expect(gm.locator("#chat-log .msg-roll.msg-secret")).to_contain_text("1d20")
    expect(player.locator("#chat-log .msg-roll .msg-audience")).to_have_text("to the GM only")
    player.select_option("#roll-visibility", "self")
    player.click("button[data-sides='6']")
    expect(player.locator("#chat-log .msg-roll")).to_have_count(2)
    gm.fill("#chat-input", "everyone hears this")
    gm.press("#chat-input", "Enter")
    expect(watcher.locator("#chat-log .msg-chat")).to_have_text(re.compile("everyone hears this"))
    expect(gm.locator("#chat-log .msg-roll")).to_have_count(1)  # not the player's private d6
    expect(watcher.locator("#chat-log .msg-whisper")).to_have_count(0)
    expect(watcher.locator("#chat-log .msg-roll")).to_have_count(0)

    # -- the spectator cannot act: dragging moves nothing and sends nothing ----------------------
    sx, sy = _centre(watcher, hero)
    _drag(watcher, (sx, sy), (sx + 60, sy + 60))
    hero_state = gm.evaluate("(id) => window.tableforge.state.tokens.get(id)", hero)
    assert watcher.evaluate("(id) => window.tableforge.state.tokens.get(id).x", hero) == hero_state["x"]
    assert {json.loads(f)["type"] for f in watcher_sent} <= {"join", "leave", "ping"}

    # -- scenes: the GM prepares another scene, then moves the players there and back ---------
    first_scene = gm.evaluate("window.tableforge.state.sceneId")
    gm.fill("#scene-new-name", "Cave")
    gm.click("#scene-create")
    expect(gm.locator("#scene-current")).to_have_text("Viewing: Cave")
    expect(gm.locator(".token")).to_have_count(0)
    cave = gm.evaluate("window.tableforge.state.sceneId")
    assert cave != first_scene
    bat = _place_from_library(gm, "Hero")
    gm.get_by_role("button", name="Make Hero the map of the scene you view").click()
    expect(gm.locator(".scene-map")).to_be_visible()
    expect(_token(player, hero)).to_be_visible()  # the players are still on the first scene
    gm.locator(f'.scene-item[data-scene-id="{cave}"] [data-role="activate"]').click()
    expect(player.locator("#scene-current")).to_have_text("You are on: Cave")
    expect(_token(player, bat)).to_be_visible()
    expect(_token(player, hero)).to_have_count(0)
    expect(player.locator(".scene-map")).to_be_visible()  # the scene's map, under its fog
    assert player.locator(".scene-map").get_attribute("src") == gm.locator(".scene-map").get_attribute("src")
    expect(_token(watcher, bat)).to_be_visible()
    expect(gm.locator(f'.scene-item[data-scene-id="{cave}"] .badge-players')).to_have_text("players here")
    item = gm.locator(f'.scene-item[data-scene-id="{cave}"]')
    item.locator('[data-role="rename"]').click()
    item.locator('[data-role="rename-input"]').fill("Deep cave")
    item.locator('[data-role="rename-input"]').press("Enter")
    expect(player.locator("#scene-current")).to_have_text("You are on: Deep cave")

    # the GM views the first scene again and keeps viewing it across a reconnect
    gm.locator(f'.scene-item[data-scene-id="{first_scene}"] [data-role="view"]').click()
    expect(gm.locator(".token")).to_have_count(3)
    gm.evaluate("window.tableforge.socket.dropForTest()")
    expect(gm.locator("#conn-status")).not_to_have_text("Connected")
    expect(gm.locator("#conn-status")).to_have_text("Connected")
    assert gm.evaluate("window.tableforge.state.sceneId") == first_scene
    expect(gm.locator(".token")).to_have_count(3)

    # changes on a scene the player is not on reach them as room.skip: a reconnect with `since`
    # catches up without a snapshot
    snapshots = player.evaluate("window.tableforge.socket.stats.snapshots")
    player.evaluate("() => { const s = window.tableforge.socket; s.stopped = true; s.ws.close(); }")
    expect(player.locator("#conn-status")).not_to_have_text("Connected")
    _token(gm, hero).focus()
    gm.keyboard.press("ArrowLeft")
    gm.wait_for_function("(id) => window.tableforge.state.tokens.get(id).version >= 2", arg=hero)
    player.evaluate("() => { const s = window.tableforge.socket; s.stopped = false; s.connect(); }")
    expect(player.locator("#conn-status")).to_have_text("Connected")
    gm_version = gm.evaluate("window.tableforge.state.version")
    player.wait_for_function("(v) => window.tableforge.state.version === v", arg=gm_version)
    assert player.evaluate("window.tableforge.socket.stats.snapshots") == snapshots

    gm.locator(f'.scene-item[data-scene-id="{first_scene}"] [data-role="activate"]').click()
    expect(_token(player, hero)).to_be_visible()
    expect(_token(player, bat)).to_have_count(0)
    assert _fog_shapes(player) == 3

    # removing the scene the GM views takes the GM back to the players' scene
    gm.locator(f'.scene-item[data-scene-id="{cave}"] [data-role="view"]').click()
    expect(gm.locator("#scene-current")).to_have_text("Viewing: Deep cave")
    gm.locator(f'.scene-item[data-scene-id="{cave}"] [data-role="remove"]').click()  # confirmed in the dialog
    expect(gm.locator("#scene-current")).to_have_text("Viewing: Scene 1")
    expect(gm.locator(".scene-item")).to_have_count(1)
    expect(gm.locator(".token")).to_have_count(3)

    # -- what never reached the player's or the spectator's page, in any frame ------------------
    for page, frames in ((player, player_frames), (watcher, watcher_frames)):
        for secret in (trap, trap_asset, trap_sha):
            _no_trace(page, secret)
            assert not [f for f in frames if secret in f], secret
        assert not any('"type":"error"' in f.replace(" ", "") for f in frames)
        assert page.evaluate("window.tableforge.socket.stats.resyncs") == 0  # room.skip is not a gap
    assert player.evaluate("window.tableforge.socket.stats.skips") > 0
    listing = httpx.get(f"{player_base}/api/rooms/{room_id}", headers=_h(player_account), timeout=10).text
    assert trap not in listing and trap_asset not in listing
    assert {json.loads(f)["type"] for f in player_sent} >= {"join", "dice.roll"}

    # hiding an image hides every token showing it (the players get asset.removed), and back; the
    # image is also the scene's map, which stays on the player's board (reason "hidden")
    hero_asset = gm.evaluate("(id) => window.tableforge.state.tokens.get(id).asset_id", hero)
    gm.get_by_role("button", name="Make Hero the map of the scene you view").click()
    expect(player.locator(".scene-map")).to_be_visible()
    gm.get_by_role("button", name="Hide Hero and its tokens from the players").click()
    expect(_token(player, hero)).to_have_count(0)
    expect(player.locator(".scene-map")).to_be_visible()  # handled with the token's removal, in one event
    assert player.evaluate("window.tableforge.state.scene.map.asset_id") == hero_asset
    expect(gm.locator(f'.library-item[data-asset-id="{hero_asset}"] .badge-hidden')).to_have_text("hidden")
    expect(_token(gm, hero)).to_have_class(re.compile(r"\bis-hidden\b"))
    assert player.evaluate("(id) => window.tableforge.state.assets.has(id)", hero_asset) is False
    gm.get_by_role("button", name="Reveal Hero and its tokens to the players").click()
    expect(_token(player, hero)).to_be_visible()
    expect(_token(player, ambusher)).to_have_count(0)  # still on the GM layer itself
    gm.click("#scene-clear-map")
    expect(player.locator(".scene-map")).to_be_hidden()

    # readable at phone width, for the GM too
    gm.set_viewport_size({"width": 390, "height": 844})
    expect(gm.locator("#gm-tools")).to_be_visible()
    wide = gm.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter((e) => e.getBoundingClientRect().right > 391 && e.offsetParent !== null)
        .slice(0, 5).map((e) => `${e.tagName}#${e.id}.${e.className}`)""")
    assert gm.evaluate("document.documentElement.scrollWidth") <= 390, wide
    gm.screenshot(path=str(ARTIFACTS / "hidden-gm-phone.png"), full_page=True)
    assert not errors, errors


@pytest.mark.parametrize("instances", ["embedded"], indirect=True)
def test_the_pages_fog_rule_is_the_servers(instances: list[Any], browser: Browser) -> None:
    """The page decides by itself that a player's own move put their token under fog (the mover
    gets an ack, never the server's token.removed), so its rule must answer as the server's does:
    the same fogs, asked about random points and the awkward ones (edges, corners, vertices)."""
    from tableforge.domain.fog import parse_fog

    rng = random.Random(15)

    def shape() -> dict[str, Any]:
        if rng.random() < 0.5:
            return {"type": "rect", "x": rng.randint(-300, 200), "y": rng.randint(-300, 200),
                    "width": rng.randint(1, 300), "height": rng.randint(1, 300)}
        # any polygon, self-crossing ones included (even-odd rule)
        return {"type": "polygon", "points": [[rng.randint(-300, 300), rng.randint(-300, 300)]
                                              for _ in range(rng.randint(3, 9))]}

    fogs = []
    for _ in range(40):
        shapes = [{"op": rng.choice(["reveal", "hide"]), **shape()} for _ in range(rng.randint(0, 8))]
        fogs.append({"base": rng.choice(["revealed", "hidden"]), "shapes": shapes})
    points: list[list[float]] = [[rng.uniform(-320, 320), rng.uniform(-320, 320)] for _ in range(150)]
    for fog in fogs:
        for s in fog["shapes"]:
            if s["type"] == "rect":  # corners and mid-edges are inside (boundary included)
                points += [[s["x"], s["y"]], [s["x"] + s["width"], s["y"] + s["height"] / 2]]
            else:
                (ax, ay), (bx, by) = s["points"][:2]
                points += [[ax, ay], [(ax + bx) / 2, (ay + by) / 2]]
    expected = [[parse_fog(fog).fogged(x, y) for x, y in points] for fog in fogs]

    errors: list[str] = []
    page = _page(browser, _register(instances[0].base_url, f"fog_{uuid.uuid4().hex[:6]}"), errors)
    page.goto(instances[0].base_url + "/")
    got = page.evaluate("""async ([fogs, points]) => {
        const { fogged } = await import("/js/fog.js");
        return fogs.map((fog) => points.map(([x, y]) => fogged(fog, x, y)));
    }""", [fogs, points])
    mismatches = [(i, points[j]) for i, row in enumerate(expected) for j, v in enumerate(row) if got[i][j] != v]
    assert not mismatches, mismatches[:5]
    assert any(any(row) for row in expected) and not all(all(row) for row in expected)
    page.context.close()
    assert not errors, errors
