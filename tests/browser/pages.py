"""Helpers of the browser tests: accounts over HTTP, test images, and pages already signed in."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "table-secret-1"
TIMEOUT_MS = 15_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _register(base_url: str, name: str) -> dict[str, Any]:
    r = httpx.post(f"{base_url}/api/auth/register", json={"username": name, "password": PASSWORD}, timeout=10)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _png(color: tuple[int, int, int], size: tuple[int, int] = (96, 96)) -> bytes:
    img = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(img)
    draw.ellipse((8, 8, size[0] - 8, size[1] - 8), fill=(250, 210, 40), outline=(0, 0, 0), width=3)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def _page(browser: Browser, account: dict[str, Any], errors: list[str]) -> Page:
    """A context already signed in: the token and user in localStorage, as the page keeps them."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    token, user = json.dumps(account["token"]), json.dumps(json.dumps(account["user"]))
    context.add_init_script(f"localStorage.setItem('tableforge.token', {token});"
                            f"localStorage.setItem('tableforge.user', {user});")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    name = account["user"]["username"]
    page.on("pageerror", lambda exc: errors.append(f"{name}: {exc}"))
    # The page is served with a strict Content-Security-Policy (api/edge.py): Chromium reports
    # anything it blocks on the console ("Refused to ... Content Security Policy ...").
    page.on("console", lambda msg: errors.append(f"{name}: {msg.text}")
            if "Content Security Policy" in msg.text else None)
    return page


def drag(page: Page, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
    """A mouse drag in `steps` moves, as a hand would (the page sees every pointermove)."""
    page.mouse.move(*start)
    page.mouse.down()
    for i in range(1, steps + 1):
        page.mouse.move(start[0] + (end[0] - start[0]) * i / steps, start[1] + (end[1] - start[1]) * i / steps)
    page.mouse.up()


def stored_token(page: Page, token_id: str) -> dict[str, Any]:
    token = page.evaluate("(id) => window.tableforge.state.tokens.get(id) || null", token_id)
    assert token is not None
    return dict(token)
