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
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp

from tableforge.loadtest.model import PASSWORD, LoadConfig, Player, Room, SetupError, integrity, tiny_png
from tableforge.loadtest.players import Simulation
from tableforge.loadtest.recorder import HttpResult, new_session
from tableforge.loadtest.report import build_result

__all__ = ["HttpResult", "LoadConfig", "LoadTest", "SetupError", "new_session"]

SETUP_CONCURRENCY = 16


class LoadTest(Simulation):
    """One run: setup over HTTP, the ramped-up play, the steady phase's baseline, the final checks."""

    def __init__(self, cfg: LoadConfig, on_phase: Callable[[str], None] | None = None) -> None:
        self.rng = random.Random(cfg.seed)
        self.on_phase = on_phase or (lambda _p: None)
        tag = uuid.uuid4().hex[:6]
        rooms = [Room(i) for i in range(cfg.rooms)]
        n_urls = len(cfg.urls)
        players = [
            Player(i, f"lt{tag}_{i}", rooms[i % cfg.rooms], cfg.urls[(i // cfg.rooms + i % cfg.rooms) % n_urls],
                   random.Random(cfg.seed * 1_000_003 + i))
            for i in range(cfg.users)
        ]
        super().__init__(cfg, players, rooms)
        self.phase = "starting"

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

    # ------------------------------------------------------------ the phases
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

    def result(self) -> dict[str, Any]:
        return build_result(self, integrity(self.players))
