"""The simulated players: setup over HTTP, then a ramped-up mix of play over WebSockets and HTTP.

Every player belongs to one room and talks to one server URL; the members of a room alternate
between the URLs, so with several instances every room's events cross instances. Each player runs
its actions one after another with an exponential think time between them:

- drag: a burst of preview `token.move` frames, then a committed `token.move` (acked);
- chat (`chat.send`) and dice (`dice.roll`), acked;
- HTTP reads: the room snapshot, the player list, catalog searches and a system's page, asset
  downloads (half revalidated with `If-None-Match`);
- reconnect: close the socket (code 4000, "coming straight back", as the web board's reconnect), wait a
  little, reconnect and `join` with `since` = the last version seen.

Delivery latency is the sender's send time → each other member's receipt (one clock: a room's
players always play in one process, also with `--processes`).
Lost / duplicate events come from room versions: every socket must see every version from its first
join to the room's final version, through events, its own acks and the `since` replays."""

from __future__ import annotations

import asyncio
import gc
import random
import time
import uuid
from collections.abc import Callable, Collection
from typing import Any

import aiohttp

from tableforge.loadtest.conductor import Conductor
from tableforge.loadtest.model import PASSWORD, LoadConfig, Player, Room, SetupError, integrity, tiny_png
from tableforge.loadtest.players import Simulation
from tableforge.loadtest.recorder import HttpResult, new_session

__all__ = ["HttpResult", "LoadConfig", "LoadTest", "SetupError", "new_session"]

SETUP_CONCURRENCY = 16
END_WAIT_MAX_S = 30.0  # each of the two waits at the end for what is still in flight (see `finish`)


class LoadTest(Simulation, Conductor):
    """One run: setup over HTTP, the ramped-up play, the steady phase's baseline, the final checks.

    `rooms_subset` keeps only those rooms and their players (a worker process of `--processes`);
    `tag` names the accounts (one tag for all the workers of a run)."""

    def __init__(self, cfg: LoadConfig, on_phase: Callable[[str], None] | None = None,
                 rooms_subset: Collection[int] | None = None, tag: str | None = None) -> None:
        self.on_phase = on_phase or (lambda _p: None)
        tag = tag or uuid.uuid4().hex[:6]
        rooms = [Room(i) for i in range(cfg.rooms) if rooms_subset is None or i in rooms_subset]
        by_index = {r.index: r for r in rooms}
        n_urls = len(cfg.urls)
        players = [
            Player(i, f"lt{tag}_{i}", by_index[i % cfg.rooms], cfg.urls[(i // cfg.rooms + i % cfg.rooms) % n_urls],
                   random.Random(cfg.seed * 1_000_003 + i))
            for i in range(cfg.users) if i % cfg.rooms in by_index
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
        gms = [p for p in self.players if p.index < self.cfg.rooms]  # player r is room r's GM

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
        await asyncio.gather(*(join(p) for p in self.players if p.index >= self.cfg.rooms))
        body = await need("GET", "/api/systems?limit=50", "/api/systems", None)
        self.systems = [s["id"] for s in body.get("systems", [])]
        self.setup_seconds = time.perf_counter() - t

    # ------------------------------------------------------------ the phases
    async def prepare(self, http: aiohttp.ClientSession) -> None:
        await asyncio.wait_for(self.setup(http), self.cfg.setup_timeout)
        # Everything set up so far (players, sockets, histograms) lives until the end: out of the
        # collector's generations, full collections stop re-scanning it. Measured: without this,
        # the generator's own gen-2 pauses showed up as 40-60 ms delivery spikes every few seconds
        # while the server's event loop lag stayed under 2 ms.
        gc.collect()
        gc.freeze()

    async def play(self, http: aiohttp.ClientSession, t0: float) -> None:
        """The players arrive over the ramp-up from `t0` (this process's clock) and play until
        the steady phase ends; then the last fan-out drains."""
        stop = asyncio.Event()
        pruner = asyncio.create_task(self.prune_sent(stop))
        self.measuring = True
        self.start_timelines(t0)
        self.play_started = t0
        self.on_phase("playing")
        stop_at = t0 + self.cfg.ramp_up + self.cfg.duration
        n = len(self.players)
        lives = [self.player_life(p, http, t0 + self.cfg.ramp_up * i / n, stop_at)
                 for i, p in enumerate(sorted(self.players, key=lambda q: q.rng.random()))]
        await asyncio.gather(*lives)
        self.play_seconds = time.perf_counter() - t0
        self.on_phase("draining")
        await asyncio.sleep(1.5)  # let the last fan-out arrive
        stop.set()
        await pruner

    async def finish(self, http: aiohttp.ClientSession) -> dict[str, int]:
        """The rooms' versions once play has gone quiet, before the sockets close (their
        `player.left` events come after, and nobody is left to see them); then the integrity check.

        A server far behind (seconds of delivery lag on a saturated machine) still has acks and
        events on their way when play ends: what is in flight is not lost, so the check waits
        (`END_WAIT_MAX_S` at most, the wait reported) for the connected players' acks, then for
        every connected player to reach its room's final version."""
        self.on_phase("checking versions")
        t = time.perf_counter()
        await self._wait_for(lambda p: bool(p.late or p.futures))
        gm_of = {p.room.index: p for p in self.players if p.index < self.cfg.rooms}
        for room in self.rooms:
            gm = gm_of[room.index]
            r = await self.http(http, "GET", f"{gm.url}/api/rooms/{room.id}", "/api/rooms/{id}", gm, setup=True)
            if r is not None and r.status == 200:
                room.final_version = int(r.json()["room"]["version"])
        await self._wait_for(lambda p: p.first_version is not None and p.last_version < p.room.final_version)
        self.end_wait_s = time.perf_counter() - t
        for p in self.players:
            p.online_at_end = p.online
        await asyncio.sleep(0.5)
        await asyncio.gather(*(self.disconnect(p) for p in self.players))
        self.players_joined = sum(1 for p in self.players if p.first_version is not None)
        return integrity(self.players)

    async def _wait_for(self, behind: Callable[[Player], bool]) -> None:
        """Until no connected player is `behind`, or `END_WAIT_MAX_S`."""
        for _ in range(int(END_WAIT_MAX_S / 0.2)):
            if not any(p.online and behind(p) for p in self.players):
                return
            await asyncio.sleep(0.2)

    # ------------------------------------------------------------ the run, in this process
    async def run(self) -> dict[str, Any]:
        async with new_session(len(self.cfg.urls)) as http:
            try:
                await self.open_run()
                await self.prepare(http)
                stop = asyncio.Event()
                sampler = asyncio.create_task(self.sample(stop, own_lag=True))
                t0 = time.perf_counter()
                steady = asyncio.create_task(self.begin_steady(t0 + self.cfg.ramp_up))
                await self.play(http, t0)
                await steady
                await self.end_steady()
                stop.set()
                await sampler
                checked = await self.finish(http)
            finally:
                await self.close_run()
        return self.result_of(checked)
