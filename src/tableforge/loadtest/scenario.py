"""The simulated players: setup over HTTP, then a ramped-up mix of play over WebSockets and HTTP.

Every player belongs to one room and talks to one server URL; the members of a room alternate
between the URLs, so with several instances every room's events cross instances. Each player runs
its actions one after another with an exponential think time between them:

- drag: a burst of preview `token.move` frames, then a committed `token.move` (acked);
- chat (`chat.send`) and dice (`dice.roll`), acked;
- HTTP reads: the room snapshot, the player list, catalog searches and a system's page, asset
  downloads (half revalidated with `If-None-Match`);
- reconnect: close the socket, wait a little, reconnect and `join` with `since` = the last version seen.

Delivery latency is the sender's send time → each other member's receipt (one clock: one process).
Lost / duplicate events come from room versions: every socket must see every version from its first
join to the room's final version, through events, its own acks and the `since` replays."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import struct
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from websockets.asyncio.client import ClientConnection, connect

from tableforge.loadtest.hist import Hist, Timeline
from tableforge.loadtest.probes import ClientMeter, ServerProbe

HTTP_CONCURRENCY = 32  # pooled keep-alive connections per server URL
SETUP_CONCURRENCY = 16
PASSWORD = "loadtest-pass-123"
SEARCH_WORDS = ("dragon", "space", "horror", "fantasy", "dice", "quest", "d20", "mystery", "", "")
DICE = ("1d20", "2d6+3", "4d6kh3", "1d100", "3d8-1", "1d20+5")
MIX: tuple[tuple[str, int], ...] = (
    ("drag", 30), ("chat", 12), ("dice", 10), ("snapshot", 10), ("catalog", 12), ("asset", 10),
    ("players", 6), ("reconnect", 3),
)


@dataclass
class LoadConfig:
    urls: list[str]
    users: int
    rooms: int
    duration: float
    ramp_up: float
    seed: int = 1
    think_time: float = 2.0
    admin_token: str | None = None
    setup_timeout: float = 600.0

    def ws_url(self, base: str) -> str:
        return base.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"


class SetupError(Exception):
    """The run could not be set up (registration, rooms, uploads)."""


SETUP_TIMEOUT = aiohttp.ClientTimeout(total=60)
PLAY_TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass(frozen=True, slots=True)
class HttpResult:
    """One answered request, read in full: what `LoadTest.http` hands back instead of the live
    aiohttp response (which is released as soon as its body is read)."""

    status: int
    headers: Mapping[str, str]  # case-insensitive (aiohttp's read-only CIMultiDictProxy)
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return orjson.loads(self.body)


def new_session(n_urls: int) -> aiohttp.ClientSession:
    """One keep-alive pool for the whole run: `HTTP_CONCURRENCY` connections per server URL.
    No cookie jar: players are told apart by their bearer tokens, and a shared jar would mix them."""
    connector = aiohttp.TCPConnector(limit=HTTP_CONCURRENCY * n_urls, limit_per_host=HTTP_CONCURRENCY)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                 json_serialize=lambda obj: orjson.dumps(obj).decode())


def _form(files: Mapping[str, tuple[str, bytes, str]]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, (filename, content, content_type) in files.items():
        form.add_field(name, content, filename=filename, content_type=content_type)
    return form


def tiny_png(seed: int, size: int = 24) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(((x * 7 + seed) % 256, (seed * 31) % 256, 160)) * size for x in range(size))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@dataclass
class Room:
    index: int
    id: str = ""
    invite_code: str = ""
    asset_id: str = ""
    asset_url: str = ""
    final_version: int = 0


@dataclass
class Player:
    index: int
    username: str
    room: Room
    url: str
    rng: random.Random
    token: str = ""
    user_id: str = ""
    ws: ClientConnection | None = None
    reader: asyncio.Task[None] | None = None
    token_id: str = ""
    first_version: int | None = None
    versions: list[int] = field(default_factory=list)
    covered: list[tuple[int, int]] = field(default_factory=list)  # (after, upto] ranges resynced by a snapshot
    futures: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    next_id: int = 0
    x: float = 0.0
    etag: str = ""
    closing: bool = False
    online: bool = False

    @property
    def last_version(self) -> int:
        return max([*self.versions, self.first_version or 0, *(b for _, b in self.covered)])


class LoadTest:
    def __init__(self, cfg: LoadConfig, on_phase: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.on_phase = on_phase or (lambda _p: None)
        tag = uuid.uuid4().hex[:6]
        self.rooms = [Room(i) for i in range(cfg.rooms)]
        n_urls = len(cfg.urls)
        self.players = [
            Player(i, f"lt{tag}_{i}", self.rooms[i % cfg.rooms], cfg.urls[(i // cfg.rooms + i % cfg.rooms) % n_urls],
                   random.Random(cfg.seed * 1_000_003 + i))
            for i in range(cfg.users)
        ]
        self.probes = [ServerProbe(u, cfg.admin_token) for u in cfg.urls]
        self.client = ClientMeter()
        self.phase = "starting"
        self.measuring = False  # play (ramp-up and steady phase): integrity and timelines
        self.steady = False  # the steady phase, after the ramp-up: the histograms the targets read
        self.t0 = time.perf_counter()
        self.http_hist: dict[str, Hist] = {}
        self.setup_hist: dict[str, Hist] = {}
        self.ramp_hist: dict[str, Hist] = {}  # http / ack / delivery while players were still arriving
        self.ack_hist: dict[str, Hist] = {}
        self.delivery_hist: dict[str, Hist] = {}
        self.delivery_ts = Hist()
        self.tl_http = Timeline(self.t0)
        self.tl_ack = Timeline(self.t0)
        self.tl_delivery = Timeline(self.t0)
        self.sent_at: dict[tuple[Any, ...], float] = {}
        self.errors: dict[str, int] = {}
        self.actions: dict[str, int] = {}
        self.unanswered = 0
        self.reconnects = 0
        self.resyncs_by_snapshot = 0
        self.systems: list[str] = []
        self.setup_seconds = 0.0
        self.play_started = 0.0
        self.play_seconds = 0.0
        self.steady_started = 0.0
        self.steady_seconds = 0.0

    # ------------------------------------------------------------ bookkeeping
    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    def count(self, action: str) -> None:
        self.actions[action] = self.actions.get(action, 0) + 1

    def online(self) -> int:
        return sum(1 for p in self.players if p.online)

    def _record_http(self, route: str, ms: float, setup: bool) -> None:
        if setup or not self.measuring:
            self.setup_hist.setdefault(route, Hist()).record(ms)
            return
        self.tl_http.record(time.perf_counter(), ms)
        hist = self.http_hist.setdefault(route, Hist()) if self.steady else self.ramp_hist.setdefault("http", Hist())
        hist.record(ms)

    def _record_ack(self, kind: str, ms: float) -> None:
        if not self.measuring:
            return
        self.tl_ack.record(time.perf_counter(), ms)
        hist = self.ack_hist.setdefault(kind, Hist()) if self.steady else self.ramp_hist.setdefault("ack", Hist())
        hist.record(ms)

    # ------------------------------------------------------------ HTTP
    async def http(self, http: aiohttp.ClientSession, method: str, url: str, route: str, p: Player | None = None,
                   setup: bool = False, ok: tuple[int, ...] = (200, 201, 204, 304), **kw: Any) -> HttpResult | None:
        """One request (three tries in setup), timed from just before sending to the end of the body.
        `files={"field": (filename, bytes, content type)}` sends a multipart form; the rest of `kw` goes
        to aiohttp (`json=`, `data=`, `params=`)."""
        headers = dict(kw.pop("headers", {}) or {})
        files: Mapping[str, tuple[str, bytes, str]] | None = kw.pop("files", None)
        if p is not None and p.token:
            headers["Authorization"] = f"Bearer {p.token}"
        attempts = 3 if setup else 1
        timeout = SETUP_TIMEOUT if setup else PLAY_TIMEOUT
        for attempt in range(attempts):
            if files is not None:
                kw["data"] = _form(files)  # a FormData is spent once sent: a fresh one per attempt
            t = time.perf_counter()
            try:
                async with http.request(method, url, headers=headers, timeout=timeout, **kw) as resp:
                    r = HttpResult(resp.status, resp.headers, await resp.read())
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.error(f"http:{type(exc).__name__}")
                if attempt + 1 < attempts:
                    await asyncio.sleep(0.3)
                    continue
                return None
            self._record_http(f"{method} {route}", (time.perf_counter() - t) * 1000, setup)
            if r.status in ok:
                return r
            self.error(f"http_{r.status}:{method} {route}")
            if r.status < 500 or attempt + 1 == attempts:
                return r
            await asyncio.sleep(0.3)
        return None

    async def setup(self, http: aiohttp.ClientSession) -> None:
        sem = asyncio.Semaphore(SETUP_CONCURRENCY * len(self.cfg.urls))
        t = time.perf_counter()

        async def need(method: str, path: str, route: str, p: Player | None, **kw: Any) -> Any:
            url = (p.url if p else self.cfg.urls[0]) + path
            async with sem:
                r = await self.http(http, method, url, route, p, setup=True, **kw)
            if r is None or r.status >= 300:
                detail = f"{r.status} {r.text[:200]}" if r is not None else "no answer"
                raise SetupError(f"{method} {route} on {url.split('/api')[0]}: {detail}")
            return r.json()

        async def register(p: Player) -> None:
            body = await need("POST", "/api/auth/register", "/api/auth/register", None,
                              json={"username": p.username, "password": PASSWORD})
            p.token, p.user_id = body["token"], body["user"]["id"]

        self.on_phase("registering players")
        await asyncio.gather(*(register(p) for p in self.players))
        gms = self.players[: self.cfg.rooms]

        async def make_room(gm: Player) -> None:
            room = gm.room
            body = await need("POST", "/api/rooms", "/api/rooms", gm, json={"name": f"load room {room.index}"})
            room.id, room.invite_code = body["id"], body["invite_code"]
            asset = await need("POST", f"/api/rooms/{room.id}/assets", "/api/rooms/{id}/assets", gm,
                               files={"file": (f"map{room.index}.png", tiny_png(room.index + self.cfg.seed),
                                               "image/png")})
            room.asset_id, room.asset_url = asset["id"], asset["url"]

        self.on_phase("creating rooms")
        await asyncio.gather(*(make_room(gm) for gm in gms))

        async def join(p: Player) -> None:
            await need("POST", "/api/rooms/join", "/api/rooms/join", p, json={"invite_code": p.room.invite_code})

        self.on_phase("joining rooms")
        await asyncio.gather(*(join(p) for p in self.players[self.cfg.rooms:]))
        body = await need("GET", "/api/systems?limit=50", "/api/systems", None)
        self.systems = [s["id"] for s in body.get("systems", [])]
        self.setup_seconds = time.perf_counter() - t

    # ------------------------------------------------------------ WebSocket
    async def request(self, p: Player, msg: dict[str, Any], kind: str, wait_s: float = 15.0) -> dict[str, Any] | None:
        if p.ws is None:
            return None
        p.next_id += 1
        mid = msg["id"] = p.next_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        p.futures[mid] = fut
        t = time.perf_counter()
        try:
            await p.ws.send(orjson.dumps(msg).decode())
            reply = await asyncio.wait_for(fut, wait_s)
        except TimeoutError:
            self.unanswered += 1
            self.error(f"ack_timeout:{kind}")
            return None
        except Exception as exc:
            self.error(f"ws_send:{type(exc).__name__}")
            return None
        finally:
            p.futures.pop(mid, None)
        if reply.get("type") == "error":
            self.error(f"ws_error:{reply.get('code')}")
            return None
        self._record_ack(kind, (time.perf_counter() - t) * 1000)
        if kind != "join" and isinstance(reply.get("version"), int):
            p.versions.append(reply["version"])
        return reply

    def _on_event(self, p: Player, msg: dict[str, Any], now: float, wall_ms: float) -> None:
        mtype = msg.get("type")
        version = msg.get("version")
        if isinstance(version, int) and msg.get("room_id") == p.room.id:
            p.versions.append(version)
        if not self.measuring:
            return
        key: tuple[Any, ...] | None = None
        if mtype in ("token.moved", "token.moving"):
            key = ("mv", msg.get("token_id"), msg.get("x"))
        elif mtype == "chat.message":
            key = ("chat", (msg.get("message") or {}).get("text"))
        elif mtype == "dice.rolled":
            key = ("dice", msg.get("by"))
        if key is None:
            return
        sent = self.sent_at.get(key)
        if sent is None:
            return
        ms = (now - sent) * 1000
        self.tl_delivery.record(now, ms)
        if not self.steady:
            self.ramp_hist.setdefault("delivery", Hist()).record(ms)
            return
        self.delivery_hist.setdefault(str(mtype), Hist()).record(ms)
        if isinstance(msg.get("ts"), int | float):
            self.delivery_ts.record(max(0.0, wall_ms - float(msg["ts"])))

    async def read_loop(self, p: Player, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                now, wall_ms = time.perf_counter(), time.time() * 1000
                msg = orjson.loads(raw)
                mtype = msg.get("type")
                if mtype in ("ack", "error") and "id" in msg:
                    fut = p.futures.get(msg["id"])
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                    if mtype == "error":
                        continue
                    continue
                if mtype == "error":
                    self.error(f"ws_error:{msg.get('code')}")
                    continue
                self._on_event(p, msg, now, wall_ms)
        except Exception as exc:
            if not p.closing:
                self.error(f"ws_closed:{type(exc).__name__}")
        finally:
            if not p.closing:
                p.online = False

    async def connect(self, p: Player, since: int | None = None) -> bool:
        t = time.perf_counter()
        try:
            ws = await connect(self.cfg.ws_url(p.url), additional_headers={"Authorization": f"Bearer {p.token}"},
                               compression=None, max_size=2 ** 22, open_timeout=30, ping_interval=None,
                               max_queue=None)
        except Exception as exc:
            self.error(f"ws_connect:{type(exc).__name__}")
            return False
        self._record_ack("connect", (time.perf_counter() - t) * 1000)
        p.ws, p.closing = ws, False
        p.reader = asyncio.create_task(self.read_loop(p, ws))
        msg: dict[str, Any] = {"type": "join", "room_id": p.room.id}
        if since is not None:
            msg["since"] = since
        ack = await self.request(p, msg, "join", wait_s=30)
        if ack is None:
            return False
        version = int(ack.get("version") or 0)
        if since is None and p.first_version is None:
            p.first_version = version
            # events at or before the snapshot's version are in the snapshot
            p.versions[:] = [v for v in p.versions if v > version]
        elif since is not None:
            if "events" in ack:
                p.versions.extend(int(e["version"]) for e in ack["events"] if isinstance(e.get("version"), int))
            else:
                self.resyncs_by_snapshot += 1
                p.covered.append((since, version))
        p.online = True
        return True

    async def disconnect(self, p: Player) -> None:
        p.closing = True
        p.online = False
        if p.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(p.ws.close(), 5)
        if p.reader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(p.reader, 5)
        p.ws = None

    # ------------------------------------------------------------ the mix
    async def act(self, p: Player, http: aiohttp.ClientSession, action: str) -> None:
        room = p.room
        if action == "drag":
            if not p.token_id:
                return
            steps = p.rng.randint(4, 10)
            for i in range(steps + 1):
                p.x += 1.0
                x, y = p.x, round(p.rng.uniform(0, 1000), 1)
                self.sent_at[("mv", p.token_id, x)] = time.perf_counter()
                msg = {"type": "token.move", "room_id": room.id, "token_id": p.token_id, "x": x, "y": y}
                if i < steps:
                    msg["preview"] = True
                    if p.ws is None:
                        return
                    try:
                        await p.ws.send(orjson.dumps(msg).decode())
                    except Exception as exc:
                        self.error(f"ws_send:{type(exc).__name__}")
                        return
                    await asyncio.sleep(0.03)
                else:
                    await self.request(p, msg, "token.move")
        elif action == "chat":
            text = f"{p.username} says {p.next_id} {p.rng.random():.6f}"
            self.sent_at[("chat", text)] = time.perf_counter()
            await self.request(p, {"type": "chat.send", "room_id": room.id, "text": text}, "chat.send")
        elif action == "dice":
            self.sent_at[("dice", p.user_id)] = time.perf_counter()
            await self.request(p, {"type": "dice.roll", "room_id": room.id, "notation": p.rng.choice(DICE)},
                               "dice.roll")
        elif action == "snapshot":
            await self.http(http, "GET", f"{p.url}/api/rooms/{room.id}", "/api/rooms/{id}", p)
        elif action == "players":
            await self.http(http, "GET", f"{p.url}/api/rooms/{room.id}/players", "/api/rooms/{id}/players", p)
        elif action == "catalog":
            if self.systems and p.rng.random() < 0.4:
                sid = p.rng.choice(self.systems)
                await self.http(http, "GET", f"{p.url}/api/systems/{sid}", "/api/systems/{id}", p)
            else:
                word = p.rng.choice(SEARCH_WORDS)
                page = p.rng.choice((1, 1, 1, 2))
                await self.http(http, "GET", f"{p.url}/api/systems?search={word}&page={page}&limit=20",
                                "/api/systems", p)
        elif action == "asset":
            headers = {"If-None-Match": p.etag} if p.etag and p.rng.random() < 0.5 else {}
            url = room.asset_url if room.asset_url.startswith("http") else p.url + room.asset_url
            r = await self.http(http, "GET", url, "/assets/{sha}", None, headers=headers)
            if r is not None and r.status == 200:
                p.etag = r.headers.get("etag", "")
        elif action == "reconnect":
            await self.disconnect(p)
            await asyncio.sleep(p.rng.uniform(0.1, 0.8))
            self.reconnects += 1
            if not await self.connect(p, since=p.last_version):
                return
        self.count(action)

    async def player_life(self, p: Player, http: aiohttp.ClientSession, start_at: float, stop_at: float) -> None:
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        if time.perf_counter() >= stop_at or not await self.connect(p):
            return
        ack = await self.request(p, {"type": "token.add", "room_id": p.room.id, "asset_id": p.room.asset_id,
                                     "x": 0.0, "y": float(p.index)}, "token.add")
        if ack is not None:
            p.token_id = ack["token"]["id"]
        names = [a for a, _ in MIX]
        weights = [w for _, w in MIX]
        while True:
            await asyncio.sleep(min(p.rng.expovariate(1 / self.cfg.think_time), 4 * self.cfg.think_time))
            if time.perf_counter() >= stop_at:
                return
            if p.ws is None or not p.online:  # dropped by the server: come back like a real client
                await self.disconnect(p)
                self.reconnects += 1
                if not await self.connect(p, since=p.last_version):
                    await asyncio.sleep(1.0)
                continue
            await self.act(p, http, p.rng.choices(names, weights)[0])

    async def prune_sent(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)
            cutoff = time.perf_counter() - 30
            for key in [k for k, t in self.sent_at.items() if t < cutoff]:
                self.sent_at.pop(key, None)

    async def sample(self, stop: asyncio.Event) -> None:
        for probe in self.probes:
            probe.find_process()
        expected = time.perf_counter() + 1.0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, expected - time.perf_counter()))
            lag = max(0.0, time.perf_counter() - expected) * 1000
            expected = time.perf_counter() + 1.0
            if not self.steady:
                continue
            self.client.sample(lag)
            for probe in self.probes:
                probe.sample()

    async def _scrape(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        """/metrics of every server (and the admin stats, kept), scraped at the same moment."""
        scraped = []
        for probe in self.probes:
            scraped.append(await probe.scrape(http))
            stats = await probe.admin_stats(http)
            if stats:
                probe.stats = stats
        return scraped

    async def _begin_steady(self, http: aiohttp.ClientSession, at: float) -> None:
        """At the end of the ramp-up: the servers' counters as they are now (the steady phase's
        baseline), then switch the client's histograms over."""
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        for probe, scraped in zip(self.probes, await self._scrape(http), strict=True):
            probe.before = scraped
        self.steady = True
        self.steady_started = time.perf_counter()

    # ------------------------------------------------------------ the run
    async def run(self) -> dict[str, Any]:
        async with new_session(len(self.cfg.urls)) as http:
            for probe in self.probes:
                await probe.check(http)
            await asyncio.wait_for(self.setup(http), self.cfg.setup_timeout)
            # Everything set up so far (players, sockets, histograms) lives until the end: out of the
            # collector's generations, full collections stop re-scanning it. Measured: without this,
            # the generator's own gen-2 pauses showed up as 40-60 ms delivery spikes every few seconds
            # while the server's event loop lag stayed under 2 ms.
            gc.collect()
            gc.freeze()
            stop = asyncio.Event()
            sampler = asyncio.create_task(self.sample(stop))
            pruner = asyncio.create_task(self.prune_sent(stop))
            self.measuring = True
            self.on_phase("playing")
            t0 = self.play_started = time.perf_counter()
            steady = asyncio.create_task(self._begin_steady(http, t0 + self.cfg.ramp_up))
            stop_at = t0 + self.cfg.ramp_up + self.cfg.duration
            n = len(self.players)
            lives = [self.player_life(p, http, t0 + self.cfg.ramp_up * i / n, stop_at)
                     for i, p in enumerate(sorted(self.players, key=lambda q: q.rng.random()))]
            await asyncio.gather(*lives)
            self.play_seconds = time.perf_counter() - t0
            self.on_phase("draining")
            await asyncio.sleep(1.5)  # let the last fan-out arrive
            await steady
            self.measuring = self.steady = False
            self.steady_seconds = time.perf_counter() - self.steady_started
            stop.set()
            await asyncio.gather(sampler, pruner)
            for probe, scraped in zip(self.probes, await self._scrape(http), strict=True):
                probe.after = scraped
            # the rooms' versions once play has gone quiet, before the sockets close (their
            # `player.left` events come after, and nobody is left to see them)
            self.on_phase("checking versions")
            gm_of = {p.room.index: p for p in self.players[: self.cfg.rooms]}
            for room in self.rooms:
                gm = gm_of[room.index]
                r = await self.http(http, "GET", f"{gm.url}/api/rooms/{room.id}", "/api/rooms/{id}", gm, setup=True)
                if r is not None and r.status == 200:
                    room.final_version = int(r.json()["room"]["version"])
            await asyncio.sleep(0.5)
            await asyncio.gather(*(self.disconnect(p) for p in self.players))
            self._attach_pids_from_stats()
        return self.result()

    def _attach_pids_from_stats(self) -> None:
        for probe in self.probes:
            for inst in probe.stats.get("instances", []):
                if probe.pid is not None and inst.get("pid") == probe.pid:
                    probe.instance_id = inst.get("instance_id")

    def integrity(self) -> dict[str, int]:
        lost = dup = checked = 0
        for p in self.players:
            if p.first_version is None:
                continue
            seen: set[int] = set()
            for v in p.versions:
                if v in seen:
                    dup += 1
                seen.add(v)
            for after, upto in p.covered:
                seen.update(range(after + 1, upto + 1))
            final = p.room.final_version
            expected = range(p.first_version + 1, final + 1)
            checked += len(expected)
            lost += sum(1 for v in expected if v not in seen)
        return {"lost": lost, "duplicates": dup, "versions_checked": checked}

    def result(self) -> dict[str, Any]:
        from tableforge.loadtest.report import build_result

        return build_result(self)
