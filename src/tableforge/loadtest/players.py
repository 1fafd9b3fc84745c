"""The simulated player: its socket (join, acks, the events it receives and their delivery
latency), reconnects with `since`, and the mix of actions it runs with a think time between them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import orjson
from websockets.asyncio.client import ClientConnection, connect

from tableforge.loadtest.hist import Hist, hist_for
from tableforge.loadtest.model import DICE, LATE_KEPT, MIX, SEARCH_WORDS, LoadConfig, Player, Room
from tableforge.loadtest.recorder import Recorder

RECONNECTING = 4000  # the close code of a client that comes straight back (docs/protocol.md)


class Simulation(Recorder):
    """The players of one run and what they do; `LoadTest` adds the phases around them."""

    def __init__(self, cfg: LoadConfig, players: list[Player], rooms: list[Room]) -> None:
        super().__init__(cfg)
        self.players = players
        self.rooms = rooms
        self.systems: list[str] = []  # catalog ids the players browse, filled in by the setup

    def online(self) -> int:
        return sum(1 for p in self.players if p.online)

    def progress(self) -> dict[str, Any]:
        """The live counts `tableforge loadtest` shows while it runs (ramp-up included)."""
        def counted(steady: dict[str, Hist], kind: str) -> int:
            ramp = self.ramp_hist.get(kind)
            return sum(h.count for h in steady.values()) + (ramp.count if ramp else 0)

        return {"online": self.online(), "users": len(self.players), "actions": sum(self.actions.values()),
                "errors": sum(self.errors.values()), "http": counted(self.http_hist, "http"),
                "acks": counted(self.ack_hist, "ack"), "deliveries": counted(self.delivery_hist, "delivery"),
                "delivery_p95_ms": self.tl_delivery.recent_p95()}

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
            if len(p.late) >= LATE_KEPT:
                p.late.pop(next(iter(p.late)))
            p.late[mid] = kind
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
            p.acked.add(reply["version"])
        return reply

    def _on_event(self, p: Player, msg: dict[str, Any], now: float, wall_ms: float) -> None:
        mtype = msg.get("type")
        if mtype == "room.resync":  # skipped up to its version, not applied: rejoin with `since`
            p.resync = True
            return
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
            hist_for(self.ramp_hist, "delivery").record(ms)
            return
        hist_for(self.delivery_hist, str(mtype)).record(ms)
        if isinstance(msg.get("ts"), int | float):
            self.delivery_ts.record(max(0.0, wall_ms - float(msg["ts"])))

    def _late_ack(self, p: Player, kind: str, msg: dict[str, Any]) -> None:
        """An ack after the client gave up waiting: not a latency sample (the timeout was counted),
        but its version was delivered to this player (a join's is the snapshot's: not an event)."""
        self.late_acks += 1
        if kind != "join" and msg.get("type") == "ack" and isinstance(msg.get("version"), int):
            p.versions.append(msg["version"])
            p.acked.add(msg["version"])

    async def read_loop(self, p: Player, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                now, wall_ms = time.perf_counter(), time.time() * 1000
                msg = orjson.loads(raw)
                if msg.get("type") == "batch":  # several frames in one message, in order
                    self.batches += 1
                    for frame in msg["frames"]:
                        self._on_frame(p, frame, now, wall_ms)
                else:
                    self._on_frame(p, msg, now, wall_ms)
        except Exception as exc:
            if not p.closing:
                self.error(f"ws_closed:{type(exc).__name__}")
        finally:
            if not p.closing:
                p.online = False

    def _on_frame(self, p: Player, msg: dict[str, Any], now: float, wall_ms: float) -> None:
        mtype = msg.get("type")
        if mtype in ("ack", "error") and "id" in msg:
            fut = p.futures.get(msg["id"])
            if fut is not None and not fut.done():
                fut.set_result(msg)
            elif fut is None and msg["id"] in p.late:
                self._late_ack(p, p.late.pop(msg["id"]), msg)
            return
        if mtype == "error":
            self.error(f"ws_error:{msg.get('code')}")
            return
        self._on_event(p, msg, now, wall_ms)

    async def connect(self, p: Player, since: int | None = None) -> bool:
        t = time.perf_counter()
        try:
            # ?room= as the web page sends it: a balancer with room affinity hashes it (a hint only)
            ws = await connect(f"{self.cfg.ws_url(p.url)}?room={p.room.id}",
                               additional_headers={"Authorization": f"Bearer {p.token}"},
                               compression=None, max_size=2 ** 22, open_timeout=30, ping_interval=None,
                               max_queue=None)
        except Exception as exc:
            self.error(f"ws_connect:{type(exc).__name__}")
            return False
        self._record_ack("connect", (time.perf_counter() - t) * 1000)
        p.ws, p.closing = ws, False
        p.reader = asyncio.create_task(self.read_loop(p, ws))
        return await self.join(p, since)

    async def join(self, p: Player, since: int | None = None) -> bool:
        """`join` on the open socket (again, after a room.resync): a snapshot the first time, then
        what came after `since`."""
        msg: dict[str, Any] = {"type": "join", "room_id": p.room.id}
        if since is not None:
            msg["since"] = since
        if self.cfg.batch:
            msg["batch"] = True
        p.resync = False
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
                # what was seen past a gap was not applied, and comes again here: not a duplicate
                seen = set(p.versions)
                p.versions.extend(v for e in ack["events"] if isinstance(v := e.get("version"), int) and v not in seen)
            else:
                self.resyncs_by_snapshot += 1
                p.covered.append((since, version))
        p.online = True
        return True

    async def disconnect(self, p: Player, code: int = 1000) -> None:
        """Close the player's socket: 1000 when it is done, 4000 when it comes straight back (as the web
        board's reconnect does, docs/protocol.md)."""
        p.closing = True
        p.online = False
        if p.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(p.ws.close(code), 5)
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
            await self.disconnect(p, RECONNECTING)
            await asyncio.sleep(p.rng.uniform(0.1, 0.8))
            self.reconnects += 1
            if not await self.connect(p, since=p.applied):
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
                await self.disconnect(p, RECONNECTING)
                self.reconnects += 1
                if not await self.connect(p, since=p.applied):
                    await asyncio.sleep(1.0)
                continue
            if p.resync:  # the server skipped events for this socket: fetch them
                self.rejoins += 1
                await self.join(p, since=p.applied)
                continue
            await self.act(p, http, p.rng.choices(names, weights)[0])

    async def prune_sent(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)
            cutoff = time.perf_counter() - 30
            for key in [k for k, t in self.sent_at.items() if t < cutoff]:
                self.sent_at.pop(key, None)

