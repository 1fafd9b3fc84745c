"""The web page's socket (web/js/socket.js) in Debian's Chromium, against a stand-in WebSocket, so each
frame and close is the test's to give: it names its room in the URL (`?room=`), comes back promptly
(0.1-1.1 s) after a 1012, and sends again, after rejoining with `since`, a request that a polite close
(`server draining`) left unanswered; any other close fails such a request instead."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM) and os.environ.get("CI") != "true":
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

from tests.support.cluster import free_port  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

ROOM = "6f1c1a52-2f0e-4a36-9a53-0a8d2f4b8c11"

# A WebSocket that records what the page sends and lets the test open, answer and close it.
FAKE_SOCKET = """
window.sockets = [];
window.statuses = [];
class FakeSocket extends EventTarget {
  static OPEN = 1;
  constructor(url) { super(); this.url = url; this.readyState = 0; this.sent = []; window.sockets.push(this); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code, reason) { this.readyState = 3; }
  open() { this.readyState = 1; this.dispatchEvent(new Event("open")); }
  frame(obj) { const e = new Event("message"); e.data = JSON.stringify(obj); this.dispatchEvent(e); }
  drop(code, reason) {
    this.readyState = 3;
    const e = new Event("close"); e.code = code; e.reason = reason; this.dispatchEvent(e);
  }
}
window.WebSocket = FakeSocket;
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(free_port(), {"TABLEFORGE_DATA_DIR": str(tmp_path_factory.mktemp("socket-js"))},
                         name="socket-js")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def page(server: ServerProcess) -> Iterator[Page]:
    with sync_playwright() as p:
        browser: Browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.goto(server.base_url + "/")  # same origin: the module can be imported
        yield page
        browser.close()


def _start(page: Page) -> None:
    """A fresh RoomSocket joined to ROOM on a stand-in socket (version 10)."""
    page.evaluate("() => {" + FAKE_SOCKET + "}")
    page.evaluate("""async (room) => {
      const { RoomSocket } = await import("/js/socket.js");
      const noop = () => {};
      window.rs = new RoomSocket({ roomId: room, token: "secret-token", url: "ws://lb.example/ws", handlers: {
        onSnapshot: noop, onEvent: noop, onEphemeral: noop, onNotice: noop, onError: noop, onAuthFailed: noop,
        onJoinFailed: noop, onStatus: (status, detail) => window.statuses.push([status, detail]) } });
      window.rs.connect();
    }""", ROOM)
    page.wait_for_function("() => window.sockets.length === 1")
    page.evaluate("""() => { const s = window.sockets[0]; s.open();
      const join = s.sent.find((m) => m.type === "join");
      s.frame({ type: "ack", id: join.id, role: "player", version: 10,
                snapshot: { room: { version: 10 }, tokens: [], players: [], assets: [], messages: [] } }); }""")
    page.wait_for_function("() => window.rs.connected")


def test_the_socket_url_names_the_room(page: Page) -> None:
    _start(page)
    url = page.evaluate("window.sockets[0].url")
    assert url == f"ws://lb.example/ws?token=secret-token&room={ROOM}"


def test_a_polite_1012_reconnects_promptly_and_sends_the_unanswered_request_again(page: Page) -> None:
    _start(page)
    page.evaluate("""() => { window.result = null;
      window.rs.request("token.move", { token_id: "t1", x: 5, y: 6 })
        .then((ack) => { window.result = ["ok", ack.version]; }, (err) => { window.result = ["err", err.code]; }); }""")
    sent = page.evaluate("window.sockets[0].sent.find((m) => m.type === 'token.move')")
    assert sent["x"] == 5 and sent["room_id"] == ROOM
    page.evaluate("window.sockets[0].drop(1012, 'server draining')")
    delay = page.evaluate("window.statuses.filter(([s]) => s === 'reconnecting').at(-1)[1].delay")
    assert 100 <= delay <= 1100  # prompt, jittered
    assert page.evaluate("window.result") is None  # not failed: it waits for the rejoin
    page.wait_for_function("() => window.sockets.length === 2")
    page.evaluate("window.sockets[1].open()")
    join = page.evaluate("window.sockets[1].sent[0]")
    assert join["type"] == "join" and join["since"] == 10
    assert page.evaluate("window.sockets[1].sent.length") == 1  # nothing resent before the rejoin
    page.evaluate("(id) => window.sockets[1].frame({ type: 'ack', id, version: 10, events: [] })", join["id"])
    page.wait_for_function("() => window.sockets[1].sent.length === 2")
    again = page.evaluate("window.sockets[1].sent[1]")
    assert again == sent  # the same request, once
    page.evaluate("(id) => window.sockets[1].frame({ type: 'ack', id, version: 11, token_version: 2 })", sent["id"])
    page.wait_for_function("() => window.result !== null")
    assert page.evaluate("window.result") == ["ok", 11]


def test_any_other_close_fails_the_unanswered_request(page: Page) -> None:
    _start(page)
    page.evaluate("""() => { window.result = null;
      window.rs.request("chat.send", { text: "hello" })
        .then(() => { window.result = ["ok"]; }, (err) => { window.result = ["err", err.code]; }); }""")
    page.evaluate("window.sockets[0].drop(1006, '')")
    page.wait_for_function("() => window.result !== null")
    assert page.evaluate("window.result") == ["err", "disconnected"]
    delay = page.evaluate("window.statuses.filter(([s]) => s === 'reconnecting').at(-1)[1].delay")
    assert delay >= 250  # the usual backoff, not the prompt one
    page.evaluate("window.rs.close()")
