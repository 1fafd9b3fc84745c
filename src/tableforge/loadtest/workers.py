"""`tableforge loadtest --processes N`: the players spread over N worker processes, so the load
generator is not the bottleneck; one report, the same shape as a one-process run.

Rooms are dealt out whole (room r to worker r mod N): a room's players share one process, so
delivery latency is still measured on one clock and each worker checks its own rooms for lost and
duplicate versions; the counts add up. The coordinator (this process) does what must happen once:
it checks and pins the servers, scrapes /metrics when the steady phase starts and ends, samples the
CPU of the instances and of every process of the load generator, and merges what the workers send
back (HDR histograms in their compressed form, timelines, counters).

The workers are started with `spawn` (a clean interpreter: no event loop or sockets inherited) and
talk over two one-way pipes each:

    worker -> coordinator: ready(setup s) | setup_error(msg) | progress(counts) | drained(play s)
                           | result(measurements) | failed(msg)
    coordinator -> worker: go(wall-clock start) | finish | stop

Every worker starts play at the same wall-clock moment and switches to the steady phase at the
same moment as the coordinator's baseline scrape."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import signal
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from tableforge.loadtest import runner
from tableforge.loadtest.conductor import Conductor
from tableforge.loadtest.model import LoadConfig, SetupError
from tableforge.loadtest.recorder import new_session

GO_DELAY_S = 0.5  # between "go" and the start of play: every worker has read it by then
PROGRESS_EVERY_S = 0.5


class WorkerError(RuntimeError):
    """A worker process failed or died."""


def deal_rooms(rooms: int, processes: int) -> list[list[int]]:
    """Room r goes to worker r mod N: equal room counts, so equal player counts within one."""
    return [list(range(i, rooms, processes)) for i in range(processes)]


# ---------------------------------------------------------------- the worker process

def worker_main(inbox: Connection, outbox: Connection, cfg: LoadConfig, rooms: list[int], tag: str) -> None:
    """A worker's entry point (a spawned process). Ctrl-C reaches every process of the terminal's
    group: the workers ignore it and let the coordinator stop them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        runner.run(_worker(inbox, outbox, cfg, rooms, tag))
    except BaseException as exc:  # the coordinator reports it; a traceback here would interleave
        with contextlib.suppress(Exception):
            outbox.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        outbox.close()


async def _worker(inbox: Connection, outbox: Connection, cfg: LoadConfig, rooms: list[int], tag: str) -> None:
    from tableforge.loadtest.scenario import LoadTest  # the players' modules, in the worker only

    lt = LoadTest(cfg, rooms_subset=set(rooms), tag=tag)
    lt.on_phase = lambda phase: setattr(lt, "phase", phase)

    async def receive() -> tuple[Any, ...]:
        msg: tuple[Any, ...] = await asyncio.to_thread(inbox.recv)
        return msg

    async with new_session(len(cfg.urls)) as http:
        try:
            await lt.prepare(http)
        except SetupError as exc:
            outbox.send(("setup_error", str(exc)))
            return
        outbox.send(("ready", lt.setup_seconds))
        msg = await receive()
        if msg[0] != "go":
            return
        t0 = time.perf_counter() + (msg[1] - time.time())
        stop = asyncio.Event()
        side = [asyncio.create_task(_report_progress(lt.progress, outbox, stop)),
                asyncio.create_task(_steady_and_lag(lt, t0 + cfg.ramp_up, stop))]
        await lt.play(http, t0)
        lt.measuring = lt.steady = False
        stop.set()
        await asyncio.gather(*side)
        outbox.send(("drained", lt.play_seconds))
        if (await receive())[0] != "finish":
            return
        checked = await lt.finish(http)
        outbox.send(("result", {"wire": lt.to_wire(), "integrity": checked}))


async def _report_progress(progress: Callable[[], dict[str, Any]], outbox: Connection, stop: asyncio.Event) -> None:
    while not stop.is_set():
        outbox.send(("progress", progress()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PROGRESS_EVERY_S)


async def _steady_and_lag(lt: Any, steady_at: float, stop: asyncio.Event) -> None:
    """The steady phase starts here when it starts in the coordinator; from then on, this event
    loop's lag once a second (the coordinator samples every process's CPU itself)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, steady_at - time.perf_counter()))
    if stop.is_set():
        return
    lt.steady = True
    expected = time.perf_counter() + 1.0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, expected - time.perf_counter()))
        lt.client.loop_lag_ms.append(max(0.0, time.perf_counter() - expected) * 1000)
        expected = time.perf_counter() + 1.0


# ---------------------------------------------------------------- the coordinator

@dataclasses.dataclass
class _Worker:
    index: int
    rooms: list[int]
    users: int
    proc: BaseProcess
    inbox: Connection  # what the coordinator sends (the worker's inbox)
    outbox: Connection  # what the worker sends
    queue: asyncio.Queue[tuple[Any, ...]]
    progress: dict[str, Any] = dataclasses.field(default_factory=dict)


class MultiLoadTest(Conductor):
    """`--processes N`: the same run as `LoadTest`, its players in N worker processes."""

    def __init__(self, cfg: LoadConfig, on_phase: Callable[[str], None] | None = None) -> None:
        super().__init__(cfg)
        self.on_phase = on_phase or (lambda _p: None)
        self.phase = "starting"
        self.tag = uuid.uuid4().hex[:6]
        self.workers: list[_Worker] = []

    # the live view, summed over the workers
    def progress(self) -> dict[str, Any]:
        parts = [w.progress for w in self.workers if w.progress]
        out: dict[str, Any] = {k: sum(p.get(k, 0) for p in parts)
                               for k in ("online", "actions", "errors", "http", "acks", "deliveries")}
        p95 = [p["delivery_p95_ms"] for p in parts if p.get("delivery_p95_ms") is not None]
        out["delivery_p95_ms"] = max(p95) if p95 else None  # the worst process's last second
        out["users"] = self.cfg.users
        return out

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        loop = asyncio.get_running_loop()
        worker_cfg = dataclasses.replace(self.cfg, pin_client=None, pin_server=None)  # pinned by inheritance
        for i, rooms in enumerate(deal_rooms(self.cfg.rooms, self.cfg.processes)):
            to_worker_r, to_worker_w = ctx.Pipe(duplex=False)
            from_worker_r, from_worker_w = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=worker_main, name=f"tableforge-loadtest-{i}", daemon=True,
                               args=(to_worker_r, from_worker_w, worker_cfg, rooms, self.tag))
            proc.start()
            to_worker_r.close()
            from_worker_w.close()
            users = sum(1 for u in range(self.cfg.users) if u % self.cfg.rooms in set(rooms))
            w = _Worker(i, rooms, users, proc, to_worker_w, from_worker_r, asyncio.Queue())
            self.workers.append(w)
        self.players_per_process = [w.users for w in self.workers]
        for w in self.workers:
            assert w.proc.pid is not None
            self.client.worker_pids.append(w.proc.pid)
            loop.add_reader(w.outbox.fileno(), self._on_readable, w)

    def _on_readable(self, w: _Worker) -> None:
        try:
            msg: tuple[Any, ...] = w.outbox.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(w.outbox.fileno())
            w.proc.join(2)
            w.queue.put_nowait(("failed", f"exited (code {w.proc.exitcode}) without a word"))
            return
        if msg[0] == "progress":
            w.progress = msg[1]
        else:
            w.queue.put_nowait(msg)

    async def _gather(self, kind: str) -> list[Any]:
        """Every worker's next message, which must be `kind`."""
        out = []
        for w in self.workers:
            msg = await w.queue.get()
            if msg[0] == "setup_error":
                raise SetupError(msg[1])
            if msg[0] != kind:
                detail = msg[1] if msg[0] == "failed" else f"sent {msg[0]!r} instead of {kind!r}"
                raise WorkerError(f"load-generator process {w.index} (pid {w.proc.pid}) failed: {detail}")
            out.append(msg[1])
        return out

    def _send(self, *msg: Any) -> None:
        for w in self.workers:
            with contextlib.suppress(OSError):
                w.inbox.send(msg)

    def _stop(self) -> None:
        loop = asyncio.get_running_loop()
        for w in self.workers:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(w.outbox.fileno())
        self._send("stop")
        for w in self.workers:
            w.proc.join(5)
            if w.proc.is_alive():
                w.proc.terminate()
                w.proc.join(5)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(5)
            for conn in (w.inbox, w.outbox):
                conn.close()

    async def run(self) -> dict[str, Any]:
        try:
            await self.open_run()
            self.on_phase(f"setting up in {self.cfg.processes} processes")
            t = time.perf_counter()
            self._start()
            await self._gather("ready")
            self.setup_seconds = time.perf_counter() - t
            self._send("go", time.time() + GO_DELAY_S)
            t0 = time.perf_counter() + GO_DELAY_S
            self.play_started = t0
            self.measuring = True
            stop = asyncio.Event()
            sampler = asyncio.create_task(self.sample(stop, own_lag=False))
            steady = asyncio.create_task(self.begin_steady(t0 + self.cfg.ramp_up))
            await asyncio.sleep(GO_DELAY_S)
            self.on_phase("playing")
            self.play_seconds = max(await self._gather("drained"))
            await steady
            await self.end_steady()
            stop.set()
            await sampler
            self.on_phase("checking versions")
            self._send("finish")
            results = await self._gather("result")
        finally:
            self._stop()
            await self.close_run()
        checked: dict[str, int] = {}
        for r in results:
            self.absorb(r["wire"])
            for k, n in r["integrity"].items():
                checked[k] = checked.get(k, 0) + n
        return self.result_of(checked)
