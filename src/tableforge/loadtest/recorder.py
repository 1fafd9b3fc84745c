"""What a load test measures, and the measured HTTP client: the histograms the targets read
(steady phase), the ramp-up's apart, the per-second timelines, error and action counts, the server
probes and the client's own meter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from tableforge.loadtest.affinity import Pinning
from tableforge.loadtest.hist import Hist, Timeline, hist_for
from tableforge.loadtest.meter import ClientMeter
from tableforge.loadtest.model import LoadConfig, Player
from tableforge.loadtest.probes import ServerProbe

HTTP_CONCURRENCY = 32  # pooled keep-alive connections per server URL
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


class Recorder:
    """The measurements of one run (the base of `LoadTest`): what `report.build_result` reads."""

    def __init__(self, cfg: LoadConfig) -> None:
        self.cfg = cfg
        self.probes = [ServerProbe(u, cfg.admin_token) for u in cfg.urls]
        self.client = ClientMeter(players=max(1, cfg.processes))
        self.pinning = Pinning(cfg.pin_client, cfg.pin_server)
        self.players_joined = 0  # players whose first join was acked (set when play ends)
        self.players_per_process = [cfg.users]
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
        self.late_acks = 0  # acks that came after the client's wait (see Simulation._late_ack)
        self.end_wait_s = 0.0  # waited at the end for acks and events in flight (LoadTest.finish)
        self.reconnects = 0
        self.resyncs_by_snapshot = 0
        self.rejoins = 0  # join again on the open socket after a room.resync
        self.batches = 0  # batch messages received (several frames in one)
        self.setup_seconds = 0.0
        self.play_started = 0.0
        self.play_seconds = 0.0
        self.steady_started = 0.0
        self.steady_seconds = 0.0

    # ------------------------------------------------------------ one report from several processes
    HIST_GROUPS = ("http_hist", "setup_hist", "ramp_hist", "ack_hist", "delivery_hist")
    TIMELINES = ("tl_http", "tl_ack", "tl_delivery")
    COUNTS = ("unanswered", "late_acks", "reconnects", "resyncs_by_snapshot", "rejoins", "batches", "players_joined")

    def to_wire(self) -> dict[str, Any]:
        """What a worker process measured, as plain picklable data (histograms in HdrHistogram's
        compressed form); the coordinator `absorb`s every worker's into one report."""
        return {
            "hists": {g: {k: h.encode() for k, h in getattr(self, g).items()} for g in self.HIST_GROUPS},
            "delivery_ts": self.delivery_ts.encode(),
            "timelines": {t: (getattr(self, t).seconds, getattr(self, t).counts) for t in self.TIMELINES},
            "errors": self.errors, "actions": self.actions, "counts": {c: getattr(self, c) for c in self.COUNTS},
            "loop_lag_ms": self.client.loop_lag_ms, "end_wait_s": self.end_wait_s,
        }

    def absorb(self, wire: dict[str, Any]) -> None:
        for group, hists in wire["hists"].items():
            mine = getattr(self, group)
            for key, data in hists.items():
                hist_for(mine, key).add(Hist.decode(data))
        self.delivery_ts.add(Hist.decode(wire["delivery_ts"]))
        for name, (seconds, counts) in wire["timelines"].items():
            getattr(self, name).merge(seconds, counts)
        for target, source in ((self.errors, wire["errors"]), (self.actions, wire["actions"])):
            for key, n in source.items():
                target[key] = target.get(key, 0) + n
        for name, n in wire["counts"].items():
            setattr(self, name, getattr(self, name) + n)
        self.client.loop_lag_ms.extend(wire["loop_lag_ms"])
        self.end_wait_s = max(self.end_wait_s, wire["end_wait_s"])  # the workers wait at the same time

    def start_timelines(self, t0: float) -> None:
        """Timelines count seconds from the start of play (`t0`, this process's clock)."""
        for name in self.TIMELINES:
            getattr(self, name).t0 = t0

    # ------------------------------------------------------------ bookkeeping
    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    def count(self, action: str) -> None:
        self.actions[action] = self.actions.get(action, 0) + 1

    def _record_http(self, route: str, ms: float, setup: bool) -> None:
        if setup or not self.measuring:
            hist_for(self.setup_hist, route).record(ms)
            return
        self.tl_http.record(time.perf_counter(), ms)
        hist = hist_for(self.http_hist, route) if self.steady else hist_for(self.ramp_hist, "http")
        hist.record(ms)

    def _record_ack(self, kind: str, ms: float) -> None:
        if not self.measuring:
            return
        self.tl_ack.record(time.perf_counter(), ms)
        hist = hist_for(self.ack_hist, kind) if self.steady else hist_for(self.ramp_hist, "ack")
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

