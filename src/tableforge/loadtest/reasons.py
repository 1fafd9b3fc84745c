"""Why a target could not be read: the sentence a report shows instead of a bare `n/a`.

A target reads nothing when what it is computed from is empty: the client saw no request or
delivery in the steady phase, a server's /metrics could not be scraped at its start or end, the
instance restarted in between (its counters start over, so the deltas mean nothing), the metric
is not exposed, or it did not move (no such work was timed), or the instance's process is not
one psutil can see (another machine, another user)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tableforge.loadtest.probes import ServerProbe

if TYPE_CHECKING:
    from tableforge.loadtest.recorder import Recorder

DB_METRICS = ("tableforge_db_transaction_seconds", "tableforge_db_query_seconds")
LOOKUP_METRIC = "tableforge_cache_lookup_seconds"
CACHE_COUNTERS = ("tableforge_cache_hits_total", "tableforge_cache_misses_total")


def _moved(probe: ServerProbe, metric: str) -> bool:
    if metric.endswith("_total"):
        return probe.counter(metric) != 0
    return probe.hist(metric)["count"] > 0


def server_reason(probes: list[ServerProbe], metrics: tuple[str, ...], what: str, steady_s: float) -> str:
    """Why no instance's /metrics gave a delta of `metrics` over the steady phase."""
    parts: list[str] = []
    quiet: list[str] = []
    for probe in probes:
        broken = probe.unreadable()
        if broken:
            parts.append(broken)
        elif not any(probe.has(m) for m in metrics):
            # a labelled series appears with its first count: absent = never counted (or an older server)
            parts.append(f"{probe.url} counted no {what} since it started ({' and '.join(metrics)} absent "
                         "from its /metrics)")
        elif not any(_moved(probe, m) for m in metrics):
            quiet.append(probe.url)
    if quiet:
        parts.append(f"{' and '.join(metrics)} did not move on {', '.join(quiet)} during the "
                     f"{steady_s:.0f} s steady phase: no {what} was counted there")
    return "; ".join(parts) or f"no {what} was counted"


def unread_instances(probes: list[ServerProbe]) -> str | None:
    """For a target that was read: the instances it leaves out, and why (None when none)."""
    notes = [n for n in (p.unreadable() for p in probes) if n]
    return "; ".join(notes) if notes else None


def _errors(lt: Recorder, prefixes: tuple[str, ...]) -> str:
    picked = sorted(((n, k) for k, n in lt.errors.items() if k.startswith(prefixes)), reverse=True)
    if not picked:
        return ""
    total = sum(n for n, _ in picked)
    return f"; {total} failed ({', '.join(f'{k} x{n}' for n, k in picked[:3])})"


def target_reason(key: str, lt: Recorder, cache_reads: int) -> str:
    """Why the target `key` read nothing in this run."""
    probes, steady_s = lt.probes, lt.steady_seconds
    if key == "api_p95_ms":
        return (f"no HTTP request of the players completed during the {steady_s:.0f} s steady phase"
                + _errors(lt, ("http",)))
    if key == "database_p95_ms":
        return server_reason(probes, DB_METRICS, "database transaction or query", steady_s)
    if key == "cache_p95_ms":
        head = "no cache-served read (GET /api/systems*) completed during the steady phase" if not cache_reads else ""
        tail = server_reason(probes, (LOOKUP_METRIC,), "cache lookup", steady_s)
        return f"{head}; {tail}" if head else tail
    if key == "cache_hit_rate_pct":
        return server_reason(probes, CACHE_COUNTERS, "cache lookup", steady_s)
    if key == "delivery_p95_ms":
        if lt.cfg.users <= lt.cfg.rooms:
            return "every room has a single player (--users = --rooms): nobody else receives its events"
        sent = sum(lt.actions.get(a, 0) for a in ("drag", "chat", "dice"))
        return (f"no event sent during the {steady_s:.0f} s steady phase reached another player "
                f"({sent} drags, chats and rolls in the whole play)" + _errors(lt, ("ws_", "ack_timeout")))
    if key in ("memory_mb_per_1000_users", "cpu_pct"):
        notes = [n for n in (p.process_note() for p in probes) if n]
        return "; ".join(notes) or "no instance was sampled"
    return "not measured"
