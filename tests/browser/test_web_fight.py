"""A short fight with the play tools, in Debian's Chromium (Playwright): a GM and two players in a
room of the official "Dungeon Delve" system, on a two-instance scale-out cluster (the GM's page on
one instance, the players' on the other).

The GM sets and aligns the grid; tokens placed and dragged snap to cells (a 2x2 one to a corner);
names, bars and conditions are edited in the token panel, and a bar the GM makes GM-only leaves the
owner's page (state and DOM); initiative is rolled and sorted, turns go round with the current
token ringed on every board; a player measures with the ruler and the GM's page shows the same
distance; a held press pings; the system's dice presets roll with their label; the GM undoes two
moves (Ctrl+Z, then the Undo button). Then the tool panels are checked at phone width (390x844).
Screenshots of the board mid-fight go to test-artifacts/.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.pages import ARTIFACTS, CHROMIUM, _page, _png, _register, drag, stored_token

if not os.path.exists(CHROMIUM) and os.environ.get("CI") != "true":
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect

PHONE = {"width": 390, "height": 844}


def _h(account: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {account['token']}"}


def _token(page: Page, token_id: str) -> Any:
    return page.locator(f'.token[data-id="{token_id}"]')


def _centre(page: Page, token_id: str) -> tuple[float, float]:
    # the token's own box (its name label hangs below it, its conditions above)
    box = page.evaluate("""(id) => {
        const r = document.querySelector(`.token[data-id="${id}"]`).getBoundingClientRect();
        return [r.x + r.width / 2, r.y + r.height / 2]; }""", token_id)
    return float(box[0]), float(box[1])


def _zoom(page: Page) -> float:
    return float(page.evaluate("window.tableforge.board.view.zoom"))


def _place(page: Page, asset_name: str) -> str:
    """Place an image from the library as a token (at the middle of the view, snapped); its id."""
    before = set(page.evaluate("[...window.tableforge.state.tokens.keys()]"))
    page.get_by_role("button", name=f"Place {asset_name} as a token", exact=True).click()
    page.wait_for_function("(n) => window.tableforge.state.tokens.size === n", arg=len(before) + 1)
    [new] = set(page.evaluate("[...window.tableforge.state.tokens.keys()]")) - before
    return str(new)


def _on_centre(grid: dict[str, Any], token: dict[str, Any]) -> bool:
    """A 1x1 token on a square grid stands on a cell's centre."""
    half = grid["size"] / 2
    return ((token["x"] - grid["offset_x"] - half) % grid["size"] == 0
            and (token["y"] - grid["offset_y"] - half) % grid["size"] == 0)


def _wait_at(page: Page, token_id: str, x: float, y: float) -> None:
    page.wait_for_function("([id, x, y]) => { const t = window.tableforge.state.tokens.get(id);"
                           " return !!t && t.x === x && t.y === y; }", arg=[token_id, x, y])


def _upload(base: str, account: dict[str, Any], room_id: str, path: Path, name: str) -> None:
    with path.open("rb") as f:
        r = httpx.post(f"{base}/api/rooms/{room_id}/assets", headers=_h(account), timeout=10,
                       files={"file": (path.name, f, "image/png")}, data={"name": name})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("instances", ["two-instances"], indirect=True)
def test_a_short_fight(instances: list[Any], browser: Browser, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    gm_base, player_base = instances[0].base_url, instances[-1].base_url
    assert gm_base != player_base
    suffix = uuid.uuid4().hex[:6]
    gm_account = _register(gm_base, f"gm_{suffix}")
    p1_account = _register(gm_base, f"aria_{suffix}")
    p2_account = _register(gm_base, f"bram_{suffix}")
    p2_id = p2_account["user"]["id"]
    errors: list[str] = []

    systems = httpx.get(f"{gm_base}/api/systems", params={"search": "Dungeon Delve"}, timeout=10).json()["systems"]
    system = next(s for s in systems if s["name"].startswith("Dungeon Delve"))
    room = httpx.post(f"{gm_base}/api/rooms", json={"name": "Goblin cave", "game_system_id": system["id"]},
                      headers=_h(gm_account), timeout=10).json()
    room_id = room["id"]
    for account in (p1_account, p2_account):
        joined = httpx.post(f"{gm_base}/api/rooms/join", json={"invite_code": room["invite_code"]},
                            headers=_h(account), timeout=10)
        assert joined.status_code == 200, joined.text
    for account, name, colour in ((gm_account, "Ogre", (120, 60, 20)), (p1_account, "Hero", (30, 90, 200)),
                                  (p2_account, "Rogue", (40, 140, 60))):
        image = tmp_path / f"{name}.png"
        image.write_bytes(_png(colour))
        _upload(gm_base, account, room_id, image, name)

    gm = _page(browser, gm_account, errors)
    gm.on("dialog", lambda dialog: dialog.accept())
    gm.goto(f"{gm_base}/#room={room_id}")
    p1 = _page(browser, p1_account, errors)
    p1.goto(f"{player_base}/#room={room_id}")
    p2 = _page(browser, p2_account, errors)
    p2.goto(f"{player_base}/#room={room_id}")
    for page in (gm, p1, p2):
        expect(page.locator("#conn-status")).to_have_text("Connected")
        expect(page.locator("#room-system")).to_have_text(f"System: {system['name']}")
    expect(p1.locator("#grid-panel")).to_be_hidden()

    # -- the GM sets the grid (60 px cells), then aligns it with the map by dragging and by keys ------
    gm.fill("#grid-size", "60")
    gm.click("#grid-apply")
    p1.wait_for_function("() => window.tableforge.state.scene.grid.size === 60")
    gm.click("#grid-align")
    expect(gm.locator("#grid-align")).to_have_attribute("aria-pressed", "true")
    box = gm.locator("#board").bounding_box()
    assert box is not None
    corner = (box["x"] + 40, box["y"] + 60)
    drag(gm, corner, (corner[0] + 25, corner[1] + 15))
    preview = "() => { const g = window.tableforge.board.gridPreview; return [g.offset_x, g.offset_y]; }"
    dragged = gm.evaluate(preview)
    assert dragged != [0, 0]
    for key in ("ArrowRight", "ArrowRight", "ArrowRight", "ArrowDown"):
        gm.keyboard.press(key)
    nudged = gm.evaluate(preview)
    assert nudged == [dragged[0] + 3, dragged[1] + 1]
    expect(gm.locator("#grid-offset-x")).to_have_value(str(nudged[0]))
    gm.click("#grid-align-save")
    expect(gm.locator("#grid-align")).to_have_attribute("aria-pressed", "false")
    wanted = [nudged[0] % 60, nudged[1] % 60]
    for page in (p1, p2):
        page.wait_for_function("([x, y]) => { const g = window.tableforge.state.scene.grid;"
                               " return g.offset_x === x && g.offset_y === y; }", arg=wanted)
    grid = p1.evaluate("window.tableforge.state.scene.grid")

    # -- tokens snap: placed at the middle of the view, dragged a little off the cells -----------------
    ogre = _place(gm, "Ogre")
    assert _on_centre(grid, stored_token(gm, ogre))
    start = stored_token(gm, ogre)
    step = 60 * _zoom(gm)
    cx, cy = _centre(gm, ogre)
    drag(gm, (cx, cy), (cx + 2 * step + 7, cy - 6))  # two cells right, a few pixels off
    _wait_at(p1, ogre, start["x"] + 120, start["y"])
    hero = _place(p1, "Hero")
    assert _on_centre(grid, stored_token(p1, hero))
    hx, hy = _centre(p1, hero)
    here = stored_token(p1, hero)
    drag(p1, (hx, hy), (hx - 2 * 60 * _zoom(p1) + 5, hy + 60 * _zoom(p1) - 8))
    _wait_at(gm, hero, here["x"] - 120, here["y"] + 60)
    rogue = _place(p2, "Rogue")
    rogue_at = stored_token(p2, rogue)
    assert _on_centre(grid, rogue_at)
    _wait_at(gm, rogue, rogue_at["x"], rogue_at["y"])

    # the GM makes the ogre 2x2 cells: it grows to 120 px and its centre moves to a grid corner
    _token(gm, ogre).click()
    gm.select_option("#token-size", "2")
    p2.wait_for_function("(id) => window.tableforge.state.tokens.get(id).size === 2", arg=ogre)
    expect(_token(p2, ogre)).to_have_css("width", "120px")
    big = stored_token(p2, ogre)
    assert (big["x"] - grid["offset_x"]) % 60 == 0 and (big["y"] - grid["offset_y"]) % 60 == 0

    # -- characters: names, bars (from the system's token defaults), conditions, visibility ---------
    gm.fill("#token-name", "Ogre chief")
    gm.click("#token-name-save")
    gm.fill("#token-condition", "prone")
    expect(gm.locator('#token-condition-options option[value="poisoned"]')).to_have_count(1)  # the system's list
    gm.click("#token-condition-add")
    for page in (p1, p2):
        expect(_token(page, ogre).locator(".token-name")).to_have_text("Ogre chief")
        expect(_token(page, ogre).locator(".token-condition")).to_have_text(["prone"])
        expect(_token(page, ogre).locator(".token-bar")).to_have_count(0)  # the ogre's HP: owner (GM) only
    expect(_token(gm, ogre).locator(".token-bar")).to_have_count(2)
    expect(_token(gm, ogre).locator('.token-bar[data-key="hp"]')).to_have_text("10/10")

    _token(p1, hero).click()
    p1.fill("#token-name", "Aria")
    p1.click("#token-name-save")
    p1.fill('#token-bars .bar-row[data-key="hp"] input[data-role="value"]', "7")
    p1.click('#token-bars .bar-row[data-key="hp"] button[data-role="save"]')
    expect(_token(gm, hero).locator('.token-bar[data-key="hp"]')).to_have_text("7/10")
    expect(_token(p2, hero).locator(".token-name")).to_have_text("Aria")
    expect(_token(p2, hero).locator(".token-bar")).to_have_count(0)  # owners only: not the other player's
    expect(_token(p2, hero).locator(".token-art")).to_have_text("Aria")  # nothing else drawn on it

    # the GM hits the ogre, then makes the hero's HP GM-only: it leaves Aria's page entirely
    _token(gm, ogre).click()
    for _ in range(3):
        gm.get_by_role("button", name="HP minus one").click()
    expect(_token(gm, ogre).locator('.token-bar[data-key="hp"]')).to_have_text("7/10")
    _token(gm, hero).click()
    gm.select_option('#token-bars .bar-row[data-key="hp"] select[data-role="visibility"]', "gm")
    expect(_token(p1, hero).locator('.token-bar[data-key="hp"]')).to_have_count(0)
    expect(_token(p1, hero).locator('.token-bar[data-key="ac"]')).to_have_count(1)
    expect(p1.locator('#token-bars .bar-row[data-key="hp"]')).to_have_count(0)
    assert p1.evaluate("(id) => window.tableforge.state.tokens.get(id).bars.map((b) => b.key)", hero) == ["ac"]
    expect(_token(gm, hero).locator('.token-bar[data-key="hp"]')).to_have_text("7/10")

    # -- initiative: rolled with the system's formula (or typed), sorted, turns go round -----------------
    _token(gm, ogre).click()
    gm.click("#initiative-add")
    _token(p1, hero).click()
    p1.fill("#initiative-value", "15")
    p1.click("#initiative-add")
    _token(p2, rogue).click()
    p2.click("#initiative-add")
    for page in (gm, p1, p2):
        expect(page.locator("#initiative-list .initiative-entry")).to_have_count(3)
    version = "() => window.tableforge.state.initiative.version"
    for op in ("#initiative-sort", "#initiative-next"):  # each waits for the one before (if_version)
        before = gm.evaluate(version)
        gm.click(op)
        gm.wait_for_function(f"() => ({version})() > {before}")
    order = gm.evaluate("window.tableforge.state.initiative")
    values = [e["value"] for e in order["entries"]]
    assert values == sorted(values, reverse=True)
    assert 1 <= next(e["value"] for e in order["entries"] if e["token_id"] == ogre) <= 20
    turns = [e["token_id"] for e in order["entries"]]
    owners = {ogre: gm, hero: p1, rogue: p2}
    for turn in turns[:2]:
        for page in (gm, p1, p2):
            expect(page.locator(".token.is-turn")).to_have_count(1)
            expect(_token(page, turn)).to_have_class(re.compile(r"\bis-turn\b"))
            expect(page.locator(".initiative-entry.is-current")).to_have_attribute("data-token-id", turn)
        # whose turn it is ends it: a player with End my turn, the GM with Next
        owner = owners[turn]
        owner.click("#initiative-end-turn" if owner is not gm else "#initiative-next")
    for page in (gm, p2):
        expect(page.locator(".initiative-entry.is-current")).to_have_attribute("data-token-id", turns[2])
    gm.click("#initiative-round-next")
    expect(p1.locator("#initiative-round")).to_have_text("(round 2)")
    expect(p1.locator(".initiative-entry.is-current")).to_have_attribute("data-token-id", turns[0])

    # -- the system's dice presets and labelled rolls ----------------------------------------------------
    p1.get_by_role("button", name="Roll Advantage (2d20kh1)").click()
    p2.fill("#chat-input", "/roll 1d20+5 stealth")
    p2.press("#chat-input", "Enter")
    expect(gm.locator("#chat-log .roll-label")).to_have_text(["Advantage", "stealth"])
    advantage = gm.locator("#chat-log .msg-roll").first
    expect(advantage.locator(".die")).to_have_count(2)
    expect(advantage.locator(".die-dropped")).to_have_count(1)

    # -- the ruler: Bram measures three cells from his token; the GM's page shows the same -------------
    p2.click("#ruler-toggle")
    expect(p2.locator("#ruler-toggle")).to_have_attribute("aria-pressed", "true")
    rx, ry = _centre(p2, rogue)
    drag(p2, (rx, ry), (rx + 3 * 60 * _zoom(p2), ry))
    expect(p2.locator('.ruler-label[data-user="me"]')).to_have_text("15 ft")
    other_ruler = gm.locator(f'.ruler-label[data-user="{p2_id}"]')
    expect(other_ruler).to_contain_text("15 ft")
    expect(other_ruler).to_contain_text(p2_account["user"]["username"])
    expect(p1.locator(f'.ruler-label[data-user="{p2_id}"]')).to_contain_text("15 ft")

    # a ping: the GM holds the mouse still on the board; the players see the pulse
    gm.mouse.move(corner[0], corner[1])
    gm.mouse.down()
    gm.wait_for_function("() => window.tableforge.board.marks.pingsShown >= 1")
    gm.mouse.up()
    expect(p1.locator(f'.ping[data-by="{gm_account["user"]["username"]}"]')).to_have_count(1)
    gm.screenshot(path=str(ARTIFACTS / "fight-gm.png"))
    p1.screenshot(path=str(ARTIFACTS / "fight-player-aria.png"))
    p2.screenshot(path=str(ARTIFACTS / "fight-player-bram.png"))

    # R puts the ruler away: it leaves the others' boards
    p2.keyboard.press("r")
    expect(p2.locator("#ruler-toggle")).to_have_attribute("aria-pressed", "false")
    expect(other_ruler).to_have_count(0)

    # -- the same by keyboard: R on the board, arrows stretch the ruler a cell at a time, P pings --------
    p1_id = p1_account["user"]["id"]
    p1.locator("#board").focus()
    p1.keyboard.press("r")
    expect(p1.locator("#ruler-toggle")).to_have_attribute("aria-pressed", "true")
    p1.keyboard.press("ArrowRight")
    p1.keyboard.press("ArrowRight")
    expect(p1.locator('.ruler-label[data-user="me"]')).to_have_text("10 ft")
    expect(gm.locator(f'.ruler-label[data-user="{p1_id}"]')).to_contain_text("10 ft")
    p1.keyboard.press("Escape")  # clears the measurement; a second Esc puts the ruler away
    expect(gm.locator(f'.ruler-label[data-user="{p1_id}"]')).to_have_count(0)
    p1.keyboard.press("Escape")
    expect(p1.locator("#ruler-toggle")).to_have_attribute("aria-pressed", "false")
    p1.keyboard.press("p")
    expect(gm.locator(f'.ping[data-by="{p1_account["user"]["username"]}"]')).to_have_count(1)

    # a focused token moves a cell per arrow key (snapped), 10 px with Alt
    at = stored_token(gm, ogre)
    _token(gm, ogre).focus()
    gm.keyboard.press("ArrowDown")
    _wait_at(p1, ogre, at["x"], at["y"] + 60)
    gm.keyboard.press("Alt+ArrowRight")
    _wait_at(p1, ogre, at["x"] + 10, at["y"] + 60)

    # undo a move: Ctrl+Z takes back the GM's last one, the Undo button the one before, on every board
    gm.keyboard.press("Control+z")
    _wait_at(p1, ogre, at["x"], at["y"] + 60)
    gm.click("#undo-button")
    for page in (p1, p2, gm):
        _wait_at(page, ogre, at["x"], at["y"])

    # -- at phone width every tool is reachable (the panels stack under the board) ------------------------
    for page, ids in ((p2, ["ruler-toggle", "ping-button", "undo-button", "selection-panel", "token-panel",
                            "initiative-panel", "initiative-add", "chat-input", "dice-presets", "help-panel"]),
                      (gm, ["ruler-toggle", "grid-panel", "grid-align", "token-size", "initiative-next",
                            "initiative-panel"])):
        page.set_viewport_size(PHONE)
        _token(page, rogue if page is p2 else ogre).click()
        for element_id in ids:
            element = page.locator(f"#{element_id}")
            element.scroll_into_view_if_needed()
            expect(element).to_be_visible()
            bounds = element.bounding_box()
            assert bounds is not None, element_id
            assert bounds["x"] >= 0 and bounds["x"] + bounds["width"] <= PHONE["width"] + 0.5, element_id
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    p2.click("#ruler-toggle")
    expect(p2.locator("#ruler-toggle")).to_have_attribute("aria-pressed", "true")
    p2.screenshot(path=str(ARTIFACTS / "fight-phone.png"), full_page=True)

    assert not errors, errors
    for page in (gm, p1, p2):
        page.context.close()
