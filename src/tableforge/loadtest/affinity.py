"""CPU pinning for load tests (`--pin-client`, `--pin-server`): keep the load generator and the
instance on different cores, so neither's CPU share is the other's noise, and say whether a run
was pinned.

Linux pins threads, not processes: `sched_setaffinity(pid)` moves only the thread whose id is `pid`.
A running server already has threads (the default executor, aiosqlite, argon2), so pinning one
walks every thread of every process in the tree (`/proc/<pid>/task`, like `taskset -a`); threads
started later inherit their creator's set."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psutil


class PinError(ValueError):
    """A CPU list that cannot be used here (bad syntax, or CPUs this process may not run on)."""


def usable_cpus() -> set[int]:
    """The CPUs this process may run on (its own affinity; all CPUs where there is no affinity)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def format_cpus(cpus: Iterable[int]) -> str:
    """{0, 1, 2, 5} -> "0-2,5" (the `taskset -c` notation)."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def parse_cpus(spec: str) -> set[int]:
    """ "0", "1,3", "0-2,5" -> a set of CPUs, checked against the CPUs this machine lets us use."""
    cpus: set[int] = set()
    text = spec.strip()
    if not text:
        raise PinError("an empty CPU list")
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            first = int(lo)
            last = int(hi) if dash else first
        except ValueError:
            raise PinError(f"{spec!r} is not a CPU list like 0, 0-1 or 0,2-3") from None
        if first < 0 or last < first:
            raise PinError(f"{spec!r} is not a CPU list like 0, 0-1 or 0,2-3")
        cpus.update(range(first, last + 1))
    allowed = usable_cpus()
    if not cpus <= allowed:
        missing = format_cpus(cpus - allowed)
        raise PinError(f"CPU(s) {missing} not available: this process may use CPUs {format_cpus(allowed)}")
    return cpus


def tree(pid: int) -> list[psutil.Process]:
    """The process and its children (a `serve --workers` master forks its workers)."""
    proc = psutil.Process(pid)
    with contextlib.suppress(psutil.Error):
        return [proc, *proc.children(recursive=True)]
    return [proc]


def _threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return [pid]


def pin_tree(pid: int, cpus: set[int]) -> dict[int, set[int]]:
    """Every thread of `pid` and its children onto `cpus`; returns each thread's previous set."""
    previous: dict[int, set[int]] = {}
    for proc in tree(pid):
        for tid in _threads(proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):  # a thread that just ended
                previous[tid] = set(os.sched_getaffinity(tid))
                os.sched_setaffinity(tid, cpus)
    return previous


def restore(previous: dict[int, set[int]]) -> None:
    for tid, cpus in previous.items():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, cpus)


def affinity_of(pids: Iterable[int]) -> set[int] | None:
    """The union of the CPU sets of these processes' threads (None if none could be read)."""
    out: set[int] = set()
    for pid in pids:
        for tid in _threads(pid):
            with contextlib.suppress(OSError):
                out |= set(os.sched_getaffinity(tid))
    return out or None


@dataclass
class Pinning:
    """What a run asked for and what its processes actually ran on (read back, so a `taskset` from
    outside counts too)."""

    client_cpus: set[int] | None = None
    server_cpus: set[int] | None = None
    _restore: dict[int, set[int]] = field(default_factory=dict)
    seen_client: set[int] | None = None
    seen_servers: dict[str, set[int] | None] = field(default_factory=dict)

    def apply_client(self) -> None:
        """This process (before it starts any worker: they inherit its set)."""
        if self.client_cpus is not None:
            pin_tree(os.getpid(), self.client_cpus)

    def apply_server(self, url: str, pid: int | None) -> None:
        """A local instance, until `restore_servers` (a load test leaves the server as it found it)."""
        if self.server_cpus is None:
            return
        if pid is None:
            raise PinError(f"--pin-server: {url} is not a process this machine can see (not local, "
                           "or run by another user), so it cannot be pinned")
        try:
            self._restore.update(pin_tree(pid, self.server_cpus))
        except psutil.Error as exc:
            raise PinError(f"--pin-server: cannot pin {url} (pid {pid}): {exc}") from None

    def restore_servers(self) -> None:
        restore(self._restore)
        self._restore.clear()

    def observe(self, client_pids: Iterable[int], servers: Iterable[tuple[str, int | None]]) -> None:
        """Read the sets back while the run is on (before `restore_servers`)."""
        self.seen_client = affinity_of(client_pids)
        for url, pid in servers:
            seen = None
            if pid is not None:
                with contextlib.suppress(psutil.Error):
                    seen = affinity_of(p.pid for p in tree(pid))
            self.seen_servers[url] = seen

    def report(self) -> dict[str, Any]:
        machine = psutil.cpu_count() or 1
        servers = [s for s in self.seen_servers.values() if s is not None]
        server_union = set().union(*servers) if servers else None
        # pinned = the client and every local instance were kept on CPUs of their own
        apart = (self.seen_client is not None and server_union is not None
                 and len(servers) == len(self.seen_servers) and self.seen_client.isdisjoint(server_union))
        return {
            "pinned": bool(apart),
            "client_cpus_requested": None if self.client_cpus is None else format_cpus(self.client_cpus),
            "server_cpus_requested": None if self.server_cpus is None else format_cpus(self.server_cpus),
            "client_affinity": None if self.seen_client is None else format_cpus(self.seen_client),
            "server_affinity": {u: None if s is None else format_cpus(s) for u, s in self.seen_servers.items()},
            "machine_cores": machine,
        }
