"""The cache through the real app: hit rate and database load on a Zipf mix of catalog and room reads.

Run: .venv/bin/python bench/bench_cache_app.py [--backend postgres|sqlite] [--redis-url URL | --no-redis]
                                                 [--requests 20000] [--concurrency 16] [--modes ...] [--quick]

Each mode gets a fresh database (PostgreSQL: a temporary database, dropped at the end; SQLite: a
temporary data dir) and a fresh Redis namespace, the same deterministic data (users, public
systems, rooms with members, an asset and tokens each) and the same request sequence, sent
through the real ASGI app in process (httpx.ASGITransport, the app's own lifespan):

- 45 % catalog pages (`GET /api/systems` over category x complexity x page, Zipf s=1.1),
- 10 % one system (`GET /api/systems/{id}`, Zipf), 30 % room snapshots (`GET /api/rooms/{id}` by a
  random member who sends the ETag of their last read: 304 when nothing changed), 10 % room asset
  lists, 4 % `GET /api/users/me`, and 1 % writes: token moves (new room version) and ratings
  (every catalog page and the system are invalidated).

Modes: `tableforge` (tier 1 + Redis tier 2 + ETag revalidation), `cashews` (the same reads through
cashews 7 on Redis with client-side caching, plus ETag), `none` (no app cache; clients send no
If-None-Match: every read is built from the database).
Every SQL statement is counted with SQLAlchemy's `before_cursor_execute` on both engines.
Reported: app-cache hit rate per kind, 304 share of room reads, the combined hit rate (cache hits +
304s over cache lookups + room snapshot reads), SQL statements per request, and the database
statements per second needed at 1000 requests/s of this mix.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg
import httpx
import redis.asyncio
from sqlalchemy import event

from tableforge.api.app import create_app
from tableforge.cache import KIND_TTLS
from tableforge.config import load_settings

CATEGORIES = ["fantasy", "scifi", "horror", "western", "mystery", "space"]
COMPLEXITIES = ["beginner", "intermediate", "advanced"]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def zipf_sampler(n: int, s: float, rng: random.Random) -> Callable[[], int]:
    cumulative = list(itertools.accumulate(1.0 / (rank**s) for rank in range(1, n + 1)))
    order = list(range(n))
    rng.shuffle(order)  # popularity not correlated with creation order
    total = cumulative[-1]
    return lambda: order[bisect.bisect_left(cumulative, rng.random() * total)]


# -- alternative caches with the interface the services use -----------------------------------


class NullCache:
    """No cache: every read calls its loader."""

    healthy = True
    edge = None

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def get_or_load(self, key: str, loader: Callable[[], Awaitable[Any]], *, ttl: float | None = None,
                          kind: str = "default") -> Any:
        return await loader()

    async def get_many_or_load(self, keys: Sequence[str], loader: Callable[[list[str]], Awaitable[dict[str, Any]]],
                               *, ttl: float | None = None, kind: str = "default") -> dict[str, Any]:
        return await loader(list(dict.fromkeys(keys)))

    async def delete(self, *keys: str) -> None: ...

    async def invalidate_pattern(self, pattern: str) -> int:
        return 0

    async def generation(self, tag: str) -> int:
        return 0

    async def bump_generation(self, tag: str) -> None: ...

    async def purge_edge(self, *keys: str) -> None: ...

    def stats(self) -> dict[str, Any]:
        return {"healthy": True, "mode": "none", "redis": None, "kinds": {}}


MISSING = {"__missing__": True}


class CashewsCache(NullCache):
    """cashews on Redis (client-side caching when available): get, then load and set on a miss;
    get_many/set_many for batches; generations with INCR. No single flight, no locks."""

    def __init__(self, url: str, namespace: str) -> None:
        from cashews import Cache

        self.ns = namespace
        self.cache = Cache()
        self.cache.setup(url, client_side=True)
        self.hits: Counter[str] = Counter()
        self.lookups: Counter[str] = Counter()

    async def start(self) -> None:
        await self.cache.init()

    async def close(self) -> None:
        await self.cache.delete_match(f"{self.ns}:*")
        await self.cache.close()

    def _k(self, key: str) -> str:
        return f"{self.ns}:{key}"

    async def get_or_load(self, key: str, loader: Callable[[], Awaitable[Any]], *, ttl: float | None = None,
                          kind: str = "default") -> Any:
        self.lookups[kind] += 1
        value = await self.cache.get(self._k(key), default=None)
        if value is not None:
            self.hits[kind] += 1
            return None if value == MISSING else value
        value = await loader()
        await self.cache.set(self._k(key), MISSING if value is None else value,
                             expire=ttl or KIND_TTLS.get(kind, 300.0) if value is not None else 30.0)
        return value

    async def get_many_or_load(self, keys: Sequence[str], loader: Callable[[list[str]], Awaitable[dict[str, Any]]],
                               *, ttl: float | None = None, kind: str = "default") -> dict[str, Any]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        self.lookups[kind] += len(wanted)
        values = await self.cache.get_many(*(self._k(k) for k in wanted), default=None)
        found = {k: v for k, v in zip(wanted, values, strict=True) if v is not None}
        self.hits[kind] += len(found)
        misses = [k for k in wanted if k not in found]
        if misses:
            loaded = await loader(misses)
            await self.cache.set_many({self._k(k): loaded.get(k, MISSING) for k in misses},
                                      expire=ttl or KIND_TTLS.get(kind, 300.0))
            found.update(loaded)
        return {k: v for k, v in found.items() if v != MISSING}

    async def delete(self, *keys: str) -> None:
        for key in keys:
            await self.cache.delete(self._k(key))

    async def generation(self, tag: str) -> int:
        value = await self.cache.get(self._k(f"gen:{tag}"), default=None)
        return int(value or 0)

    async def bump_generation(self, tag: str) -> None:
        await self.cache.incr(self._k(f"gen:{tag}"))

    def stats(self) -> dict[str, Any]:
        kinds = {k: {"requests": n, "memory_hits": self.hits[k], "redis_hits": 0, "loads": n - self.hits[k]}
                 for k, n in self.lookups.items()}
        return {"healthy": True, "mode": "cashews", "redis": None, "kinds": kinds}


# -- setup and workload -----------------------------------------------------------------------


class World:
    def __init__(self) -> None:
        self.users: list[dict[str, str]] = []  # {"id", "h": auth header}
        self.systems: list[str] = []
        self.rooms: list[dict[str, Any]] = []  # {"id", "members": [user idx], "tokens": [ids]}


def png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "green").save(buf, "PNG")
    return buf.getvalue()


async def build_world(http: httpx.AsyncClient, rng: random.Random, users: int, systems: int, rooms: int) -> World:
    world = World()
    for i in range(users):
        name = f"b{uuid.uuid4().hex[:10]}"
        r = await http.post("/api/auth/register", json={"username": name, "password": "pw-bench-1"})
        http.cookies.clear()
        body = r.json()
        world.users.append({"id": body["user"]["id"], "h": f"Bearer {body['token']}", "i": str(i)})
    for i in range(systems):
        owner = world.users[i % users]
        r = await http.post("/api/systems", headers={"Authorization": owner["h"]}, json={
            "name": f"Bench {i}", "description": "bench", "category": CATEGORIES[i % len(CATEGORIES)],
            "complexity": COMPLEXITIES[i % len(COMPLEXITIES)], "is_public": True, "template": {"n": i}})
        world.systems.append(r.json()["id"])
    catalog = (await http.get("/api/systems", params={"limit": 100})).json()["systems"]
    world.systems += [s["id"] for s in catalog if s["id"] not in world.systems]
    image = png()
    for i in range(rooms):
        members = rng.sample(range(users), 4)
        gm = world.users[members[0]]
        room = (await http.post("/api/rooms", headers={"Authorization": gm["h"]}, json={"name": f"R{i}"})).json()
        for m in members[1:]:
            await http.post("/api/rooms/join", headers={"Authorization": world.users[m]["h"]},
                            json={"invite_code": room["invite_code"]})
        asset = (await http.post(f"/api/rooms/{room['id']}/assets", headers={"Authorization": gm["h"]},
                                 files={"file": ("a.png", image, "image/png")})).json()
        tokens = []
        for t in range(3):
            tok = await http.post(f"/api/rooms/{room['id']}/tokens", headers={"Authorization": gm["h"]},
                                  json={"asset_id": asset["id"], "x": t, "y": t})
            tokens.append(tok.json()["id"])
        world.rooms.append({"id": room["id"], "members": members, "tokens": tokens})
    return world


Op = tuple[str, tuple[Any, ...]]


def workload(world: World, n: int, seed: int) -> list[Op]:
    rng = random.Random(seed)
    pages = [(c, x, p) for c in [None, *CATEGORIES] for x in [None, *COMPLEXITIES] for p in (1, 2, 3)]
    pick_page = zipf_sampler(len(pages), 1.1, rng)
    pick_system = zipf_sampler(len(world.systems), 1.1, rng)
    pick_room = zipf_sampler(len(world.rooms), 1.1, rng)
    ops: list[Op] = []
    for _ in range(n):
        x = rng.random()
        if x < 0.45:
            ops.append(("catalog", pages[pick_page()]))
        elif x < 0.55:
            ops.append(("system", (world.systems[pick_system()],)))
        elif x < 0.85:
            room = world.rooms[pick_room()]
            ops.append(("room", (room["id"], rng.choice(room["members"]))))
        elif x < 0.95:
            room = world.rooms[pick_room()]
            ops.append(("assets", (room["id"], rng.choice(room["members"]))))
        elif x < 0.99:
            ops.append(("me", (rng.randrange(len(world.users)),)))
        elif x < 0.998:
            room = world.rooms[pick_room()]
            ops.append(("move", (room["id"], room["members"][0], rng.choice(room["tokens"]), rng.random() * 100)))
        else:
            ops.append(("rate", (world.systems[pick_system()], rng.randrange(len(world.users)), rng.randint(1, 5))))
    return ops


async def run_ops(http: httpx.AsyncClient, world: World, ops: list[Op], concurrency: int,
                  send_etags: bool) -> dict[str, Any]:
    etags: dict[tuple[str, int], str] = {}
    counts: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    it = iter(ops)

    def auth(user: int) -> dict[str, str]:
        return {"Authorization": world.users[user]["h"]}

    async def one(kind: str, args: tuple[Any, ...]) -> None:
        counts[kind] += 1
        if kind == "catalog":
            category, complexity, page = args
            params = {"page": page, **({"category": category} if category else {}),
                      **({"complexity": complexity} if complexity else {})}
            r = await http.get("/api/systems", params=params)
        elif kind == "system":
            r = await http.get(f"/api/systems/{args[0]}")
        elif kind == "room":
            room_id, user = args
            headers = auth(user)
            if send_etags and (room_id, user) in etags:
                headers["If-None-Match"] = etags[(room_id, user)]
            r = await http.get(f"/api/rooms/{room_id}", headers=headers)
            if r.status_code == 200 and "etag" in r.headers:
                etags[(room_id, user)] = r.headers["etag"]
            if r.status_code == 304:
                counts["room_304"] += 1
        elif kind == "assets":
            r = await http.get(f"/api/rooms/{args[0]}/assets", headers=auth(args[1]))
        elif kind == "me":
            r = await http.get("/api/users/me", headers=auth(args[0]))
        elif kind == "move":
            room_id, gm, token_id, x = args
            r = await http.patch(f"/api/rooms/{room_id}/tokens/{token_id}", headers=auth(gm), json={"x": x})
        else:
            system_id, user, rating = args
            r = await http.post(f"/api/systems/{system_id}/rating", headers=auth(user), json={"rating": rating})
        code = ""
        if r.status_code >= 400:
            try:
                code = ":" + str(r.json()["error"]["code"])
            except (ValueError, KeyError, TypeError):
                code = ""
        statuses[f"{kind}:{r.status_code}{code}"] += 1

    async def worker() -> None:
        for kind, args in it:
            await one(kind, args)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    bad = {k: v for k, v in statuses.items() if k.split(":")[1] not in ("200", "201", "304")}
    return {"elapsed": elapsed, "counts": counts, "bad": bad}


async def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-cache-{mode}-"))
    db_name = None
    database_url = None
    if args.backend == "postgres":
        db_name = f"tableforge_bench_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'CREATE DATABASE "{db_name}"')
        await conn.close()
        database_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db_name}"
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    redis_url = None if args.no_redis or mode != "tableforge" else args.redis_url
    settings = load_settings(data_dir=tmp, database_url=database_url, redis_url=redis_url,
                             redis_namespace=namespace, log_level="WARNING", log_json=True,
                             max_upload_bytes=1024 * 1024)
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=60) as http:
            rt = app.state.runtime
            original = rt.cache
            if mode == "none":
                rt.cache = NullCache()
            elif mode == "cashews":
                rt.cache = CashewsCache(args.redis_url, namespace)
                await rt.cache.start()
            statements = Counter[str]()

            def count(*_a: Any) -> None:
                statements["n"] += 1

            engines = {id(rt.db.engine): rt.db.engine, id(rt.db.writer): rt.db.writer}
            for engine in engines.values():
                event.listen(engine.sync_engine, "before_cursor_execute", count)
            rng = random.Random(args.seed)
            world = await build_world(http, rng, args.users, args.systems, args.rooms)
            ops = workload(world, args.requests, args.seed)
            # Warm-up pass over the first 10 % (not measured), then the measured run.
            await run_ops(http, world, ops[: len(ops) // 10], args.concurrency, send_etags=mode != "none")
            before = rt.cache.stats()
            statements.clear()
            result = await run_ops(http, world, ops, args.concurrency, send_etags=mode != "none")
            after = rt.cache.stats()
            result["statements"] = statements["n"]
            result["kinds"] = diff_kinds(before.get("kinds", {}), after.get("kinds", {}))
            for engine in engines.values():
                event.remove(engine.sync_engine, "before_cursor_execute", count)
            if rt.cache is not original:
                await rt.cache.close()
                rt.cache = original
    finally:
        if db_name is not None:
            conn = await asyncpg.connect(PG_ADMIN)
            await conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            await conn.close()
        if redis_url is not None:
            client = redis.asyncio.Redis.from_url(redis_url)
            keys = [k async for k in client.scan_iter(match=f"tableforge:{namespace}:*", count=1000)]
            for start in range(0, len(keys), 500):
                await client.unlink(*keys[start : start + 500])
            await client.aclose()
    return result


def diff_kinds(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, int]]:
    out = {}
    for kind, now in after.items():
        was = before.get(kind, {})
        requests = now["requests"] - was.get("requests", 0)
        hits = (now["memory_hits"] + now["redis_hits"]) - (was.get("memory_hits", 0) + was.get("redis_hits", 0))
        out[kind] = {"requests": requests, "hits": hits, "memory_hits": now["memory_hits"] - was.get("memory_hits", 0)}
    return out


def report(mode: str, r: dict[str, Any]) -> str:
    counts = r["counts"]
    requests = sum(v for k, v in counts.items() if k != "room_304")
    lookups = sum(k["requests"] for k in r["kinds"].values())
    hits = sum(k["hits"] for k in r["kinds"].values())
    rooms, r304 = counts["room"], counts["room_304"]
    per_request = r["statements"] / requests
    kinds = ", ".join(f"{k} {v['hits'] / v['requests']:.1%}" for k, v in sorted(r["kinds"].items()) if v["requests"])
    combined = (hits + r304) / (lookups + rooms) if lookups + rooms else 0.0
    return (f"| {mode} | {requests} | {requests / r['elapsed']:.0f} | "
            f"{(hits / lookups) if lookups else 0:.1%} | {(r304 / rooms) if rooms else 0:.1%} | {combined:.1%} | "
            f"{r['statements']} | {per_request:.3f} | {per_request * 1000:.0f} | {kinds or '-'} | "
            f"{r['bad'] or 'none'} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--no-redis", action="store_true", help="tableforge mode with tier 1 only")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--systems", type=int, default=100)
    parser.add_argument("--rooms", type=int, default=60)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--modes", nargs="+", default=["tableforge", "cashews", "none"],
                        choices=["tableforge", "cashews", "none"])
    parser.add_argument("--quick", action="store_true", help="a smoke run (3000 requests, smaller world)")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.users, args.systems, args.rooms = 3000, 12, 30, 15
    print(f"backend {args.backend}, {args.requests} requests, concurrency {args.concurrency}, "
          f"{args.users} users, {args.systems} systems (+ seeded), {args.rooms} rooms")
    print("| mode | requests | req/s | app-cache hit rate | room 304 share | combined hit rate | SQL statements "
          "| statements/request | DB statements/s at 1000 req/s | hit rate per kind | non-2xx/304 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for mode in args.modes:
        print(report(mode, await run_mode(mode, args)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
