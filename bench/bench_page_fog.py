"""What a full fog costs the GM's page: Chromium (Playwright) against an embedded server.

Run: .venv/bin/python bench/bench_page_fog.py [--tokens 300] [--shapes 200] [--rounds 30]

It starts `python -m tableforge serve` on a free 127.0.0.1 port with a fresh data dir, opens the
room page as its GM, places `--tokens` tokens spread over the board, then draws `--shapes` fog
shapes (the protocol's limit is 200: half rectangles, half 64-corner polygons, hide and reveal
alternating). Measured in the page, medians over `--rounds`: redrawing every token (the GM's board
marks each token under fog), drawing the fog, applying one more `fog.changed` as the page does on
an event (JavaScript only, then the whole frame it costs), and one pan frame (timed with
requestAnimationFrame). The server and data dir are removed on any exit.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx
from PIL import Image
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 60, 40)).save(out, "PNG")
    return out.getvalue()


# The fog, through the page's socket as the fog tools send it: 64-corner circles and squares.
DRAW_FOG = """async ([shapes, extent]) => {
  const { socket, state } = window.tableforge;
  const circle = (cx, cy, r) => Array.from({ length: 64 }, (_, k) => [
    Math.round(cx + r * Math.cos((2 * Math.PI * k) / 64)), Math.round(cy + r * Math.sin((2 * Math.PI * k) / 64))]);
  for (let i = 0; i < shapes; i += 1) {
    const cx = (i * 7919) % extent, cy = (i * 104729) % extent, r = 40 + (i % 5) * 30;
    const shape = i % 2 ? { type: "rect", x: cx - r, y: cy - r, width: 2 * r, height: 2 * r }
      : { type: "polygon", points: circle(cx, cy, r) };
    const op = i % 3 ? "reveal" : "hide";
    await socket.request("fog.change", { scene_id: state.sceneId, op, shape }, {
      asEvent: () => ({ type: "fog.changed", scene_id: state.sceneId, op, shape }) });
  }
}"""

# Medians in the page. A "frame" is requestAnimationFrame to the next one: style, layout, paint and
# compositing of what changed (about 16.7 ms when nothing is slow).
MEASURE = """async (rounds) => {
  const { board, state } = window.tableforge;
  const { applyFogChange } = await import("/js/fog.js");
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const time = (fn) => { const t = performance.now(); fn(); return performance.now() - t; };
  const frame = (fn) => new Promise((done) => requestAnimationFrame((t0) => {
    fn();
    requestAnimationFrame((t1) => done(t1 - t0));
  }));
  const out = { renderAll: [], fogDraw: [], fogChanged: [], panFrame: [], fogChangedFrame: [] };
  for (let i = 0; i < rounds; i += 1) {
    out.renderAll.push(time(() => board.renderAll()));
    out.fogDraw.push(time(() => board.fog.render(state.scene.fog, { gm: true })));
    const before = state.scene.fog;
    const more = (k) => applyFogChange(before, "reveal", { type: "rect", x: k, y: k, width: 50, height: 50 });
    // one more shape arrives: the page replaces the fog, redraws it and marks the tokens under it
    out.fogChanged.push(time(() => {
      state.scene = { ...state.scene, fog: more(i) };
      state.emit("fog");
    }));
    out.fogChangedFrame.push(await frame(() => {
      state.scene = { ...state.scene, fog: more(i + 1) };
      state.emit("fog");
    }));
    state.scene = { ...state.scene, fog: before };
    state.emit("fog");
    out.panFrame.push(await frame(() => board.panBy(3, 2)));
  }
  const result = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, median(v)]));
  result.tokensShown = document.querySelectorAll(".token").length;
  result.underFog = document.querySelectorAll(".token.is-fogged").length;
  return result;
}"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--shapes", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="bench-fog-")
    port = free_port()
    env = {**os.environ, "TABLEFORGE_DATA_DIR": data, "TABLEFORGE_WS_RATE_PER_SECOND": "5000",
           "TABLEFORGE_WS_RATE_BURST": "10000", "TABLEFORGE_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen([sys.executable, "-m", "tableforge", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        account = httpx.post(f"{base}/api/auth/register", json={"username": "bench_gm", "password": "bench-secret-1"},
                             timeout=10).json()
        headers = {"Authorization": f"Bearer {account['token']}"}
        room = httpx.post(f"{base}/api/rooms", json={"name": "Fog bench"}, headers=headers, timeout=10).json()
        asset = httpx.post(f"{base}/api/rooms/{room['id']}/assets", files={"file": ("t.png", png(), "image/png")},
                           headers=headers, timeout=30).json()
        side = math.ceil(math.sqrt(args.tokens))
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            for i in range(args.tokens):
                client.post(f"/api/rooms/{room['id']}/tokens",
                            json={"asset_id": asset["id"], "x": (i % side) * 90, "y": (i // side) * 90})
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            user = json.dumps(json.dumps(account["user"]))
            context.add_init_script(f"localStorage.setItem('tableforge.token', {json.dumps(account['token'])});"
                                    f"localStorage.setItem('tableforge.user', {user});")
            page = context.new_page()
            page.goto(f"{base}/#room={room['id']}")
            page.wait_for_function("(n) => window.tableforge && window.tableforge.state.tokens.size === n",
                                   arg=args.tokens, timeout=60_000)
            page.evaluate(DRAW_FOG, [args.shapes, side * 90])
            page.wait_for_function("(n) => window.tableforge.state.scene.fog.shapes.length === n", arg=args.shapes)
            result: dict[str, Any] = page.evaluate(MEASURE, args.rounds)
            browser.close()
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "?")
        counts = {"tokens_shown": result.pop("tokensShown"), "tokens_under_fog": result.pop("underFog")}
        print(json.dumps({"tokens": args.tokens, "shapes": args.shapes, "rounds": args.rounds, "cpu": cpu,
                          "load_average": os.getloadavg()[0], "median_ms": {k: round(v, 2) for k, v in result.items()},
                          **counts}, indent=2))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
