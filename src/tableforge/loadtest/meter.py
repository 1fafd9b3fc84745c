"""CPU and memory of process trees (psutil): the instances under test, and the load generator
itself, so a report can say when the client, not the server, was the bottleneck."""

from __future__ import annotations

import os
from typing import Any

import psutil

from tableforge.loadtest.affinity import usable_cpus
from tableforge.loadtest.hist import median

SATURATED_SHARE_PCT = 80.0  # of the cores the generator can use: above it, it may be the bottleneck
LAG_LIMIT_MS = 50.0  # median event-loop lag of a playing process
MACHINE_BUSY_PCT = 90.0  # the whole machine: everything waited for a CPU


class TreeMeter:
    """CPU % (100 = one core) and RSS of a process and its children, one sample per call.

    psutil's `cpu_percent(None)` is the share since the previous call on the *same* Process object
    (a fresh object answers 0.0), and `children()` hands out fresh objects: so they are kept by pid."""

    def __init__(self, root: int) -> None:
        self.root = root
        self._procs: dict[int, psutil.Process] = {}
        self.cpu: list[float] = []
        self.rss_mb: list[float] = []
        self.per_pid: dict[int, list[float]] = {}
        self.lost: str | None = None  # why sampling stopped, when it did
        try:
            self._keep(psutil.Process(root))
        except psutil.Error as exc:
            self.lost = f"pid {root} cannot be read ({type(exc).__name__})"

    def _keep(self, proc: psutil.Process) -> psutil.Process:
        kept = self._procs.get(proc.pid)
        if kept is None:
            kept = self._procs[proc.pid] = proc
            kept.cpu_percent(None)  # primes: the next call measures from now
        return kept

    def sample(self) -> bool:
        if self.lost is not None:
            return False
        root = self._procs[self.root]
        try:
            if not root.is_running():
                raise psutil.NoSuchProcess(self.root)
            members = [root, *(self._keep(c) for c in root.children(recursive=True))]
        except psutil.NoSuchProcess:
            self.lost = f"pid {self.root} exited during the run (after {len(self.cpu)} samples)"
            return False
        except psutil.Error as exc:
            self.lost = f"pid {self.root} cannot be read ({type(exc).__name__})"
            return False
        cpu = rss = 0.0
        alive = set()
        for proc in members:
            try:
                share = proc.cpu_percent(None)
                rss += proc.memory_info().rss
            except psutil.Error:
                continue
            alive.add(proc.pid)
            cpu += share
            self.per_pid.setdefault(proc.pid, []).append(share)
        for pid in list(self._procs):
            if pid not in alive and pid != self.root:
                del self._procs[pid]
        self.cpu.append(cpu)
        self.rss_mb.append(rss / 2 ** 20)
        return True


class ClientMeter:
    """The load generator's own cost: CPU of all its processes (this one and, with `--processes`,
    its workers: the children of this one), the playing processes' event-loop lag, the machine's CPU."""

    def __init__(self, players: int = 1) -> None:
        self.players = players  # processes that run simulated players (1: this one)
        self.tree = TreeMeter(os.getpid())
        self.worker_pids: list[int] = []
        self.loop_lag_ms: list[float] = []
        self.cores = psutil.cpu_count() or 1
        self.machine_cpu: list[float] = []
        psutil.cpu_percent(None)

    @property
    def cpu(self) -> list[float]:
        return self.tree.cpu

    def sample(self, lag_ms: float | None) -> None:
        self.tree.sample()
        self.machine_cpu.append(psutil.cpu_percent(None))
        if lag_ms is not None:
            self.loop_lag_ms.append(lag_ms)

    def processes(self) -> list[dict[str, Any]]:
        out = []
        for pid, samples in sorted(self.tree.per_pid.items()):
            if pid == self.tree.root:
                role = "coordinator" if self.worker_pids else "players"
            else:
                role = "players" if pid in self.worker_pids else "helper"
            out.append({"pid": pid, "role": role, "cpu_pct_median": round(median(samples), 1),
                        "cpu_pct_max": round(max(samples, default=0.0), 1)})
        return out

    def summary(self) -> dict[str, Any]:
        cpu_median = median(self.cpu)
        usable = len(usable_cpus())
        cores_used = min(self.players, usable)  # each playing process runs one event loop: one core at most
        share = 100 * cpu_median / (100 * cores_used)
        procs = self.processes()
        busiest = max((p["cpu_pct_median"] for p in procs if p["role"] == "players"), default=0.0)
        lag = median(self.loop_lag_ms)
        machine = median(self.machine_cpu)
        warnings: list[str] = []
        if share > SATURATED_SHARE_PCT:
            warnings.append(f"the load generator used {share:.0f} % of the {cores_used} core(s) its "
                            f"{self.players} playing process(es) can use ({cpu_median:.0f} % of a core in all): "
                            "it may be the bottleneck, so latencies are upper bounds; add --processes or pin it "
                            "to cores of its own (--pin-client)")
        elif busiest > SATURATED_SHARE_PCT:
            warnings.append(f"a load-generator process used {busiest:.0f} % of a core (one event loop runs on "
                            "one core): it may be the bottleneck; add --processes")
        if lag > LAG_LIMIT_MS:
            warnings.append(f"the load generator's event loop lagged {lag:.0f} ms (median): latencies include "
                            "its own delay")
        saturated = bool(warnings)
        if machine > MACHINE_BUSY_PCT:
            warnings.append(f"the machine was {machine:.0f} % busy over its {self.cores} cores: every process "
                            "waited for a CPU, the server's figures included")
        return {"cpu_pct_median": round(cpu_median, 1), "cpu_pct_max": round(max(self.cpu, default=0.0), 1),
                "players_processes": self.players, "usable_cores": usable,
                "cpu_share_of_usable_pct": round(share, 1), "busiest_process_cpu_pct_median": busiest,
                "processes": procs, "samples": len(self.cpu),
                "loop_lag_ms_median": round(lag, 1), "loop_lag_ms_max": round(max(self.loop_lag_ms, default=0.0), 1),
                "machine_cpu_pct_median": round(machine, 1), "cores": self.cores,
                "saturated": saturated, "warnings": warnings}
