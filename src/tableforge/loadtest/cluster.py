"""`tableforge cluster`: K scale-out instances on consecutive loopback ports, one migration first,
a live table of their state, and a clean stop (SIGTERM each, wait, then kill) on Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from tableforge.loadtest.affinity import affinity_of, format_cpus
from tableforge.loadtest.hist import parse_prometheus
from tableforge.loadtest.meter import TreeMeter

HOST = "127.0.0.1"
# How often the status table polls each instance's /ready and /metrics: a /metrics page costs the
# instance a few ms of CPU, which every second showed up in the CPU of the load tests it hosts.
REFRESH_SECONDS = 5.0
STOP_CHECK_SECONDS = 0.2  # a signal is noticed this fast even between two refreshes


class ClusterError(Exception):
    """The cluster could not start (configuration, busy port, a child that died)."""


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


@dataclass
class Instance:
    index: int
    port: int
    instance_id: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    meter: TreeMeter | None = None
    cpus: str = "-"
    health: str = "starting"
    connections: str = "-"
    cpu: float = 0.0
    rss_mb: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class ClusterRunner:
    def __init__(self, instances: int, base_port: int, log_dir: Path, prefix: str | None = None,
                 console: Console | None = None, cpus: set[int] | None = None) -> None:
        self.cpus = cpus  # --pin-server: every instance (and every thread it starts) runs on these
        self.console = console or Console(stderr=True)
        self.prefix = prefix or f"{socket.gethostname()}-{os.getpid()}"
        self.log_dir = log_dir
        self.instances = [Instance(i, base_port + i, f"{self.prefix}-{i}", log_dir / f"instance-{base_port + i}.log")
                          for i in range(instances)]
        self.stopping = False
        self.sleep: Callable[[float], None] = time.sleep
        self.clock: Callable[[], float] = time.monotonic

    # -- lifecycle
    def check(self) -> None:
        busy = [str(i.port) for i in self.instances if not port_free(i.port)]
        if busy:
            raise ClusterError(f"port(s) {', '.join(busy)} on {HOST} are in use; choose another --base-port")

    def migrate(self) -> None:
        self.console.print("migrating the database …")
        r = subprocess.run([sys.executable, "-m", "tableforge", "migrate"], capture_output=True, text=True,
                           timeout=300, check=False)
        if r.returncode != 0:
            raise ClusterError(f"`tableforge migrate` failed ({r.returncode}):\n{(r.stderr or r.stdout)[-2000:]}")

    def start(self, timeout: float = 60.0) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for inst in self.instances:
            # Every simulated player comes from 127.0.0.1: the per-address socket cap (meant for one
            # household or one attacker) would refuse a load test, unless the operator set it.
            env = {"TABLEFORGE_WS_MAX_PER_ADDRESS": "1000000", **os.environ, "TABLEFORGE_INSTANCE_ID": inst.instance_id}
            log = inst.log_path.open("ab")
            inst.proc = subprocess.Popen(
                [sys.executable, "-m", "tableforge", "serve", "--host", HOST, "--port", str(inst.port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=self._pin())
            log.close()
            inst.meter = TreeMeter(inst.proc.pid)
        deadline = time.monotonic() + timeout
        waiting = list(self.instances)
        while waiting:
            if self.stopping:
                return
            for inst in list(waiting):
                assert inst.proc is not None
                if inst.proc.poll() is not None:
                    raise ClusterError(f"instance {inst.index} on port {inst.port} exited with "
                                       f"{inst.proc.returncode}:\n{inst.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{inst.url}/health", timeout=1).status_code == 200:
                        inst.health = "ok"
                        waiting.remove(inst)
            if waiting and time.monotonic() > deadline:
                raise ClusterError(f"instance(s) on port(s) {', '.join(str(i.port) for i in waiting)} did not "
                                   f"become healthy in {timeout:g} s; logs in {self.log_dir}")
            time.sleep(0.2)

    def _pin(self) -> Callable[[], None] | None:
        """Set in the child before it execs, so the server and every thread it starts inherit the set
        (this process has no other thread yet: the live table starts after)."""
        cpus = self.cpus
        if cpus is None:
            return None
        return lambda: os.sched_setaffinity(0, cpus)

    def stop(self, timeout: float = 20.0) -> list[int | None]:
        running = [i for i in self.instances if i.proc is not None and i.proc.poll() is None]
        for inst in running:
            assert inst.proc is not None
            with contextlib.suppress(ProcessLookupError):
                inst.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for inst in running:
            assert inst.proc is not None
            try:
                inst.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.console.print(f"[yellow]instance on port {inst.port} ignored SIGTERM; killing it[/yellow]")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(inst.proc.pid, signal.SIGKILL)
                inst.proc.wait(5)
        return [i.proc.returncode if i.proc else None for i in self.instances]

    # -- state
    def refresh(self, http: httpx.Client) -> None:
        for inst in self.instances:
            if inst.proc is not None and inst.proc.poll() is not None:
                inst.health = f"exited {inst.proc.returncode}"
                inst.connections = "-"
                continue
            try:
                r = http.get(f"{inst.url}/ready", timeout=1)
                inst.health = "ok" if r.status_code == 200 else f"not ready ({r.status_code})"
                m = http.get(f"{inst.url}/metrics", timeout=2)
                values = parse_prometheus(m.text)["value"].get("tableforge_ws_connections", {})
                inst.connections = str(int(sum(values.values()))) if values else "?"
            except httpx.HTTPError:
                inst.health = "down"
            if inst.meter is not None and inst.meter.sample():
                inst.cpu, inst.rss_mb = inst.meter.cpu[-1], inst.meter.rss_mb[-1]
                inst.meter.cpu.clear()  # the table shows the last refresh interval only
                inst.meter.rss_mb.clear()
                inst.meter.per_pid.clear()
                inst.cpus = format_cpus(affinity_of([inst.meter.root]) or ())

    def table(self) -> Table:
        t = Table(title=f"TableForge cluster: {len(self.instances)} instance(s) — Ctrl-C or SIGTERM stops them all")
        for col in ("port", "instance id", "pid", "health", "connections", "RSS MB", "CPU %", "CPUs"):
            t.add_column(col, justify="right" if col in ("port", "pid", "connections", "RSS MB", "CPU %") else "left")
        for inst in self.instances:
            color = "green" if inst.health == "ok" else "red"
            t.add_row(str(inst.port), inst.instance_id, str(inst.proc.pid if inst.proc else "-"),
                      f"[{color}]{inst.health}[/{color}]", inst.connections, f"{inst.rss_mb:.0f}", f"{inst.cpu:.0f}",
                      inst.cpus)
        return t

    def pause(self, seconds: float) -> None:
        """Wait `seconds` between refreshes, in short steps, so a signal stops the cluster at once."""
        end = self.clock() + seconds
        while not self.stopping and (left := end - self.clock()) > 0:
            self.sleep(min(STOP_CHECK_SECONDS, left))

    def run(self, refresh_s: float = REFRESH_SECONDS, until: float | None = None) -> int:
        """Start, show, and stop on a signal; returns the exit code."""
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            self.stopping = True

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.check()
            self.migrate()
            if self.stopping:
                return 130
            self.start()
            if not self.stopping:
                self.console.print(f"cluster up: {', '.join(i.url for i in self.instances)} "
                                   f"(logs in {self.log_dir})")
            with httpx.Client() as http, Live(self.table(), console=self.console, refresh_per_second=2,
                                              transient=False) as live:
                while not self.stopping and (until is None or time.monotonic() < until):
                    self.refresh(http)
                    live.update(self.table())
                    if all(i.proc is not None and i.proc.poll() is not None for i in self.instances):
                        self.console.print("[red]every instance has exited[/red]")
                        return 1
                    self.pause(refresh_s)
        finally:
            self.console.print("\nstopping the cluster …")
            codes = self.stop()
            # uvicorn re-raises the SIGTERM it handled, so a clean stop shows as -15
            shown = ["clean" if c in (0, -signal.SIGTERM) else f"exit {c}" for c in codes]
            self.console.print(f"stopped: {', '.join(shown)}")
            for s, handler in old.items():
                signal.signal(s, handler)
        return 0
