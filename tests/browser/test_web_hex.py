"""A hex grid on the page, in Chromium (one embedded server): on a pointy-top hex scene a token dropped
a little off a hex lands on that hex's centre, as domain/grid.py computes it; the ruler shows the hex
distance the server's geometry gives, and a second drag from the ruler's end adds a bend. Also what a
GM sees of a token's character: its name stays upright under it when it is turned 90 degrees, and a
bar added in the token panel is removed with its remove button."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tableforge.domain.grid import cell_at, cell_center, measure, snap
from tableforge.domain.grid_settings import GridSettings
from tests.browser.pages import CHROMIUM, _page, _png, _register, drag, free_port, stored_token
from tests.support.server import ServerProcess

if not os.path.exists(CHROMIUM) and os.environ.get("CI") != "true":
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = str(tmp_path_factory.mktemp("web-hex"))
    proc = ServerProcess(free_port(), {"TABLEFORGE_DATA_DIR": data}, name="web-hex")
    proc.start()
    yield proc
    proc.stop()


def _screen(page: Page, x: float, y: float) -> tuple[float, float]:
    """Where the board point (x, y) is on the screen."""
    at = page.evaluate("""([x, y]) => { const b = window.tableforge.board; const r = b.viewport.getBoundingClientRect();
        return [r.left + b.view.x + x * b.view.zoom, r.top + b.view.y + y * b.view.zoom]; }""", [x, y])
    return float(at[0]), float(at[1])


def _rect(page: Page, selector: str) -> dict[str, float]:
    return dict(page.evaluate("(s) => document.querySelector(s).getBoundingClientRect().toJSON()", selector))


def _js_round(v: float) -> int:
    return math.floor(v + 0.5)  # what the page stores (Math.round)


def test_hex_snap_ruler_and_character(server: ServerProcess, browser: Browser) -> None:
    base = server.base_url
    gm_account = _register(base, f"gm_{uuid.uuid4().hex[:6]}")
    auth = {"Authorization": f"Bearer {gm_account['token']}"}
    room = httpx.post(f"{base}/api/rooms", json={"name": "Hexes"}, headers=auth, timeout=10).json()
    httpx.post(f"{base}/api/rooms/{room['id']}/assets", headers=auth, timeout=10, data={"name": "Orc"},
               files={"file": ("orc.png", _png((120, 60, 20)), "image/png")}).raise_for_status()
    errors: list[str] = []
    gm = _page(browser, gm_account, errors)
    gm.goto(f"{base}/#room={room['id']}")
    expect(gm.locator("#conn-status")).to_have_text("Connected")

    # -- a pointy-top hex grid of 60 px ---------------------------------------------------------------
    gm.select_option("#grid-type", "hex_pointy")
    gm.fill("#grid-size", "60")
    gm.click("#grid-apply")
    gm.wait_for_function("() => { const g = window.tableforge.state.scene.grid;"
                         " return g.type === 'hex_pointy' && g.size === 60; }")
    g = GridSettings.from_dict(gm.evaluate("window.tableforge.state.scene.grid"))

    # -- a token dropped a few pixels off a hex two hexes away lands on that hex's centre ------------
    before = set(gm.evaluate("[...window.tableforge.state.tokens.keys()]"))
    gm.get_by_role("button", name="Place Orc as a token", exact=True).click()
    gm.wait_for_function("(n) => window.tableforge.state.tokens.size === n", arg=len(before) + 1)
    [orc] = set(gm.evaluate("[...window.tableforge.state.tokens.keys()]")) - before
    placed = stored_token(gm, orc)
    here = cell_at(g, placed["x"], placed["y"])
    target_cell = (here[0] + 2, here[1] + 1)  # two along the row, one down-right
    centre = cell_center(g, target_cell)
    drop = (centre[0] + 7, centre[1] - 6)
    expected = snap(g, *drop)
    assert expected == centre  # the geometry's answer: that hex's centre
    start = _screen(gm, placed["x"], placed["y"])
    zoom = float(gm.evaluate("window.tableforge.board.view.zoom"))
    drag(gm, start, (start[0] + (drop[0] - placed["x"]) * zoom, start[1] + (drop[1] - placed["y"]) * zoom))
    want = [_js_round(expected[0]), _js_round(expected[1])]
    gm.wait_for_function("([id, x, y]) => { const t = window.tableforge.state.tokens.get(id);"
                         " return t.x === x && t.y === y; }", arg=[orc, *want])

    # -- the ruler: three hexes along the row, then a bend two hexes down-left from its end ----------
    gm.click("#ruler-toggle")
    expect(gm.locator("#ruler-toggle")).to_have_attribute("aria-pressed", "true")
    a = cell_center(g, target_cell)
    b = cell_center(g, (target_cell[0] + 3, target_cell[1]))
    drag(gm, _screen(gm, *a), _screen(gm, *b))
    label = gm.locator('.ruler-label[data-user="me"]')
    expect(label).to_have_text(measure(g, [a, b]).text)
    assert measure(g, [a, b]).text == "15 ft"  # 3 hexes of 5 ft
    c = cell_center(g, (target_cell[0] + 2, target_cell[1] + 2))
    drag(gm, _screen(gm, *b), _screen(gm, *c))  # from the ruler's end: a bend
    points = gm.evaluate("window.tableforge.board.ruler.points")
    assert len(points) == 3
    expect(label).to_have_text(measure(g, [a, b, c]).text)
    assert measure(g, [a, b, c]).text == "25 ft"
    gm.click("#ruler-toggle")
    expect(label).to_have_count(0)

    # -- its name stays upright and under it when it is turned 90 degrees ------------------------------
    gm.locator(f'.token[data-id="{orc}"]').click()
    gm.fill("#token-name", "Orc chieftain of the hills")
    gm.click("#token-name-save")
    name = f'.token[data-id="{orc}"] .token-name'
    expect(gm.locator(name)).to_have_text("Orc chieftain of the hills")
    gm.locator(f'.token[data-id="{orc}"]').focus()
    for _ in range(6):
        gm.keyboard.press("r")  # 15 degrees each
    gm.wait_for_function("(id) => window.tableforge.state.tokens.get(id).rotation === 90", arg=orc)
    gm.wait_for_function("(id) => document.querySelector(`.token[data-id=\"${id}\"]`)"
                         ".style.transform.includes('rotate(90deg)')", arg=orc)
    label_box, token_box = _rect(gm, name), _rect(gm, f'.token[data-id="{orc}"]')
    assert label_box["width"] > 3 * label_box["height"]  # reads left to right, not top to bottom
    assert label_box["top"] >= token_box["bottom"] - 1  # under the token
    assert abs((label_box["left"] + label_box["right"]) / 2 - (token_box["left"] + token_box["right"]) / 2) < 2

    # -- a bar added, then removed with its button ------------------------------------------------------
    gm.fill("#token-bar-label", "HP")
    gm.fill("#token-bar-max", "12")
    gm.locator("#token-bar-add button[type=submit]").click()
    expect(gm.locator(f'.token[data-id="{orc}"] .token-bar')).to_have_text(["12/12"])
    remove = gm.get_by_role("button", name="Remove bar HP")
    remove.focus()
    gm.keyboard.press("Enter")  # reachable and usable from the keyboard
    expect(gm.locator(f'.token[data-id="{orc}"] .token-bar')).to_have_count(0)
    expect(gm.locator("#token-bars .bar-row")).to_have_count(0)
    assert stored_token(gm, orc)["bars"] == []
    gm.locator("#undo-button").click()  # the help panel says Undo brings a removed bar back
    expect(gm.locator(f'.token[data-id="{orc}"] .token-bar')).to_have_text(["12/12"])
    assert errors == []
