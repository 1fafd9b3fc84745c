"""The result of a run: the measured numbers, the plan's targets with pass/fail, and the outputs
(a rich table, JSON, and an HTML report with charts as embedded PNG images)."""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from tableforge.loadtest.hist import Hist, Series, add_series, beyond_last_bucket, series_quantile, series_summary
from tableforge.loadtest.probes import ServerProbe, merged
from tableforge.loadtest.reasons import LOOKUP_METRIC, target_reason, unread_instances

if TYPE_CHECKING:
    from tableforge.loadtest.recorder import Recorder

CACHE_ROUTES = ("GET /api/systems", "GET /api/systems/{id}")

# name, key, threshold, "<" or ">", unit
TARGETS: tuple[tuple[str, str, float, str, str], ...] = (
    ("API p95", "api_p95_ms", 50.0, "<", "ms"),
    ("database p95", "database_p95_ms", 25.0, "<", "ms"),
    ("cache p95", "cache_p95_ms", 5.0, "<", "ms"),
    ("delivery p95", "delivery_p95_ms", 10.0, "<", "ms"),
    ("cache hit rate", "cache_hit_rate_pct", 90.0, ">", "%"),
    ("memory per 1,000 users", "memory_mb_per_1000_users", 512.0, "<", "MB"),
    ("CPU per instance", "cpu_pct", 70.0, "<", "%"),
)


def merge(hists: list[Hist]) -> Hist:
    out = Hist()
    for h in hists:
        if h.count:
            out.h.add(h.h)
    return out


def _cache_metrics(probes: list[ServerProbe]) -> dict[str, Any]:
    mem_hits = sum(p.counter("tableforge_cache_hits_total", {"tier": "memory"}) for p in probes)
    mem_miss = sum(p.counter("tableforge_cache_misses_total", {"tier": "memory"}) for p in probes)
    redis_hits = sum(p.counter("tableforge_cache_hits_total", {"tier": "redis"}) for p in probes)
    redis_miss = sum(p.counter("tableforge_cache_misses_total", {"tier": "redis"}) for p in probes)
    lookups = mem_hits + mem_miss
    loads = redis_miss if (redis_hits + redis_miss) > 0 else mem_miss
    rate = 100 * (1 - loads / lookups) if lookups > 0 else None
    # the server's lookup-latency histogram (loader excluded); servers without it fall back to HTTP timings
    series = merged(probes, LOOKUP_METRIC)
    lookup = {"metric": LOOKUP_METRIC, **series_summary(series)} if series["count"] > 0 else None
    load = series_summary(merged(probes, "tableforge_cache_load_seconds"))
    return {"lookups": lookups, "memory_hits": mem_hits, "redis_hits": redis_hits, "loads": loads,
            "hit_rate_pct": None if rate is None else round(rate, 2), "lookup_latency": lookup, "load_ms": load}


def _cached_reads(probes: list[ServerProbe]) -> Series:
    """Server-side latency of the catalog reads, which the cache serves (for servers without a lookup histogram)."""
    out: Series = {"buckets": {}, "sum": 0.0, "count": 0.0}
    for p in probes:
        routes = {k.partition("route=")[2].partition(",")[0]
                  for k in p.after.get("hist", {}).get("tableforge_http_request_seconds", {})}
        for route in routes:
            if route.startswith("/api/systems"):
                out = add_series(out, p.hist("tableforge_http_request_seconds", {"method": "GET", "route": route}))
    return out


def build_result(lt: Recorder, integrity: dict[str, int]) -> dict[str, Any]:
    """The result document from a run's measurements and its integrity check (`model.integrity`)."""
    cfg = lt.cfg
    probes = lt.probes
    http_all = merge(list(lt.http_hist.values()))
    delivery_all = merge(list(lt.delivery_hist.values()))
    cache_client = merge([lt.http_hist[r] for r in CACHE_ROUTES if r in lt.http_hist])
    db = merged(probes, "tableforge_db_transaction_seconds")
    for p in probes:
        db_q = p.hist("tableforge_db_query_seconds")
        for le, c in db_q["buckets"].items():
            db["buckets"][le] = db["buckets"].get(le, 0.0) + c
        db["count"] += db_q["count"]
        db["sum"] += db_q["sum"]
    cache = _cache_metrics(probes)
    pool = {"timeouts": sum(p.counter("tableforge_db_pool_timeouts_total") for p in probes),
            "waiting_at_end": sum(p.gauge_max("tableforge_db_pool_waiting") or 0.0 for p in probes),
            "exposed": any(p.has("tableforge_db_pool_waiting") for p in probes)}
    instances = [p.resources() for p in probes]
    sampled = [i for i in instances if i["samples"]]
    total_rss_peak = sum(i["rss_mb_max"] for i in sampled) if sampled else None
    elapsed = max(lt.play_seconds, 1e-9)

    cached_http = _cached_reads(probes)
    if cache["lookup_latency"] and cache["lookup_latency"]["p95"] is not None:
        cache_p95, cache_src = cache["lookup_latency"]["p95"], cache["lookup_latency"]["metric"] + " (server)"
    elif cached_http["count"] > 0:
        cache_p95 = series_quantile(cached_http, 0.95)
        cache_src = "server HTTP p95 of cache-served reads (GET /api/systems*), an upper bound"
    elif cache_client.count:
        cache_p95 = cache_client.quantile(95)
        cache_src = "client HTTP p95 of cache-served reads (/api/systems*), an upper bound"
    else:
        cache_p95, cache_src = None, "no cache-served reads"
    measured: dict[str, tuple[float | None, str]] = {
        "api_p95_ms": (http_all.quantile(95) if http_all.count else None,
                       f"client, {http_all.count} HTTP requests during play"),
        "database_p95_ms": (series_quantile(db, 0.95),
                            "server /metrics: db_transaction + db_query seconds, bucket deltas"
                            + (" (above the last bucket: a lower bound)" if beyond_last_bucket(db, 0.95) else "")),
        "cache_p95_ms": (cache_p95, cache_src),
        "delivery_p95_ms": (delivery_all.quantile(95) if delivery_all.count else None,
                            "client: send → each other member's receipt, all event kinds"),
        "cache_hit_rate_pct": (cache["hit_rate_pct"], "server /metrics: 1 - loads / lookups"),
        "memory_mb_per_1000_users": (
            None if total_rss_peak is None else round(total_rss_peak * 1000 / max(cfg.users, 1000), 1),
            "peak RSS summed over the instances x 1000 / max(users, 1000) (psutil)"),
        "cpu_pct": (max((i["cpu_pct_median"] for i in sampled), default=None),
                    "busiest instance's median CPU % during play (100 = one core, psutil)"),
    }
    targets = []
    left_out = unread_instances(probes)  # instances whose /metrics deltas mean nothing
    server_read = {"database_p95_ms", "cache_hit_rate_pct"} | ({"cache_p95_ms"} if cache["lookup_latency"] else set())
    for name, key, threshold, op, unit in TARGETS:
        value, source = measured[key]
        ok = None if value is None else (value < threshold if op == "<" else value > threshold)
        reason = target_reason(key, lt, cache_client.count) if value is None else None
        if value is not None and left_out and key in server_read:
            source += f" (instances left out: {left_out})"
        targets.append({"name": name, "key": key, "target": f"{op} {threshold:g} {unit}", "threshold": threshold,
                        "op": op, "unit": unit, "measured": None if value is None else round(value, 2),
                        "pass": ok, "source": source, "reason": reason})
    errors_total = sum(lt.errors.values())
    return {
        "tool": "tableforge loadtest",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {"urls": cfg.urls, "users": cfg.users, "rooms": cfg.rooms, "duration": cfg.duration,
                   "ramp_up": cfg.ramp_up, "seed": cfg.seed, "think_time": cfg.think_time,
                   "processes": max(1, cfg.processes)},
        "players": {"users": cfg.users, "joined": lt.players_joined, "processes": max(1, cfg.processes),
                    "per_process": lt.players_per_process},
        "pinning": lt.pinning.report(),
        "setup_seconds": round(lt.setup_seconds, 2), "play_seconds": round(lt.play_seconds, 2),
        "steady_seconds": round(lt.steady_seconds, 2), "end_wait_seconds": round(lt.end_wait_s, 2),
        "actions": dict(sorted(lt.actions.items())), "actions_per_s": round(sum(lt.actions.values()) / elapsed, 1),
        "http": {route: h.summary() for route, h in sorted(lt.http_hist.items())}, "http_all": http_all.summary(),
        "setup_http": {route: h.summary() for route, h in sorted(lt.setup_hist.items())},
        "ack": {kind: h.summary() for kind, h in sorted(lt.ack_hist.items())},
        "delivery": {kind: h.summary() for kind, h in sorted(lt.delivery_hist.items())},
        "delivery_all": delivery_all.summary(), "delivery_from_server_ts": lt.delivery_ts.summary(),
        "ramp_up": {kind: h.summary() for kind, h in sorted(lt.ramp_hist.items())},
        "deliveries_per_s": round(delivery_all.count / max(lt.steady_seconds, 1e-9), 1),
        "integrity": integrity, "reconnects": lt.reconnects, "resyncs_by_snapshot": lt.resyncs_by_snapshot,
        "rejoins_after_resync": lt.rejoins, "batches_received": lt.batches,
        "unanswered": lt.unanswered, "late_acks": lt.late_acks, "errors": dict(sorted(lt.errors.items())),
        "errors_total": errors_total,
        "server": {"database_ms": series_summary(db),
                   "delivery_fanout_ms": series_summary(merged(probes, "tableforge_delivery_seconds")),
                   "http_ms": series_summary(merged(probes, "tableforge_http_request_seconds")),
                   "cache": cache, "pool": pool, "instances": instances,
                   "admin_stats": [p.stats for p in probes if p.stats][:1]},
        "client": lt.client.summary(),
        "timeline": {"http": lt.tl_http.series(), "ack": lt.tl_ack.series(), "delivery": lt.tl_delivery.series()},
        "distribution": {"http": http_all.distribution(), "ack": merge(list(lt.ack_hist.values())).distribution(),
                         "delivery": delivery_all.distribution()},
        "targets": targets,
        "all_targets_pass": all(t["pass"] for t in targets),
    }


# ---------------------------------------------------------------- outputs

def _fmt(v: float | None, unit: str = "") -> str:
    return "n/a" if v is None else f"{v:,.1f}{unit}"


def print_report(res: dict[str, Any], console: Console) -> None:
    c = res["config"]
    lat = Table(title=f"loadtest: {c['users']} users / {c['rooms']} rooms / {len(c['urls'])} instance(s) / "
                      f"{c['duration']:g} s steady phase (after {c['ramp_up']:g} s of ramp-up, shown apart)")
    for col in ("latency (ms)", "n", "p50", "p95", "p99", "max"):
        lat.add_column(col, justify="left" if col.startswith("latency") else "right")

    def row(name: str, s: dict[str, Any]) -> None:
        lat.add_row(name, str(s["n"]), *(_fmt(s[k]) for k in ("p50", "p95", "p99", "max")))

    for route, s in res["http"].items():
        row(f"HTTP {route}", s)
    for kind, s in res["ack"].items():
        row(f"ack {kind}", s)
    for kind, s in res["delivery"].items():
        row(f"delivery {kind}", s)
    row("delivery, all kinds", res["delivery_all"])
    for kind, s in res.get("ramp_up", {}).items():
        row(f"ramp-up: {kind}, all", s)
    console.print(lat)

    info = Table(show_header=False, title="integrity, server, client")
    info.add_column()
    info.add_column(justify="right")
    integ = res["integrity"]
    srv = res["server"]
    client = res["client"]
    info.add_row("lost / duplicate events (versions checked)",
                 f"{integ['lost']} / {integ['duplicates']} ({integ['versions_checked']})")
    if integ.get("duplicates_of_own_acks"):
        info.add_row("duplicates of a version the player's own ack carried", str(integ["duplicates_of_own_acks"]))
    if integ.get("offline_at_end"):
        info.add_row("players offline at the end (versions after their last one not checked)",
                     f"{integ['offline_at_end']} ({integ['versions_not_checked']})")
    info.add_row("actions (per s)", f"{sum(res['actions'].values())} ({res['actions_per_s']})")
    info.add_row("deliveries per s", str(res["deliveries_per_s"]))
    info.add_row("reconnects (resynced by snapshot)", f"{res['reconnects']} ({res['resyncs_by_snapshot']})")
    info.add_row("rejoins after room.resync; batch messages received",
                 f"{res.get('rejoins_after_resync', 0)}; {res.get('batches_received', 0)}")
    info.add_row("acks not within the wait / of them late", f"{res['unanswered']} / {res['late_acks']}")
    info.add_row("waited at the end for what was in flight, s", f"{res['end_wait_seconds']:.1f}")
    info.add_row("errors", ", ".join(f"{k} x{v}" for k, v in res["errors"].items()) or "0")
    info.add_row("server db p50/p95/p99 ms", " / ".join(_fmt(srv["database_ms"][k]) for k in ("p50", "p95", "p99")))
    info.add_row("server fan-out p95 ms", _fmt(srv["delivery_fanout_ms"]["p95"]))
    info.add_row("cache lookups / hit rate", f"{srv['cache']['lookups']:.0f} / "
                 f"{_fmt(srv['cache']['hit_rate_pct'], ' %')}")
    info.add_row("db pool timeouts / waiting", f"{srv['pool']['timeouts']:.0f} / {srv['pool']['waiting_at_end']:.0f}"
                 if srv["pool"]["exposed"] else "not exposed")
    for inst in srv["instances"]:
        info.add_row(f"instance {inst['url']} (pid {inst['pid'] or '?'}) CPU % / RSS MB",
                     f"{inst['cpu_pct_median']:.0f} (max {inst['cpu_pct_max']:.0f}) / {inst['rss_mb_max']:.0f}"
                     if inst["samples"] else f"n/a: {inst['not_measured']}")
    players = res["players"]
    info.add_row("players joined / users (per process)",
                 f"{players['joined']} / {players['users']} ({' + '.join(map(str, players['per_process']))})")
    cores = min(client["players_processes"], client["usable_cores"])
    info.add_row(f"client CPU % median / max, {client['players_processes']} playing process(es) "
                 "(100 = one core)", f"{client['cpu_pct_median']:.0f} / {client['cpu_pct_max']:.0f} "
                 f"({client['cpu_share_of_usable_pct']:.0f} % of {cores} usable core(s))")
    pin = res["pinning"]
    info.add_row("pinned apart (client CPUs / instance CPUs)",
                 f"{'yes' if pin['pinned'] else 'no'} ({pin['client_affinity'] or '?'} / "
                 f"{', '.join(v or '?' for v in pin['server_affinity'].values()) or '?'})")
    info.add_row("client event-loop lag ms median / max", f"{client['loop_lag_ms_median']} / "
                 f"{client['loop_lag_ms_max']}")
    info.add_row("machine CPU % median", f"{client['machine_cpu_pct_median']:.0f} of {client['cores']} cores")
    console.print(info)
    for warning in client["warnings"] + scrape_warnings(res):
        console.print(f"[yellow]warning: {warning}[/yellow]")

    tgt = Table(title="targets")
    for col in ("target", "goal", "measured", "result", "source"):
        tgt.add_column(col, justify="right" if col in ("goal", "measured") else "left")
    for t in res["targets"]:
        verdict = {True: "[green]pass[/green]", False: "[red]fail[/red]"}.get(t["pass"], "[yellow]n/a[/yellow]")
        source = t["source"] if t["reason"] is None else f"[yellow]not read: {t['reason']}[/yellow]"
        tgt.add_row(t["name"], t["target"], _fmt(t["measured"], " " + t["unit"]), verdict, source)
    console.print(tgt)


def scrape_warnings(res: dict[str, Any], slow_s: float = 1.0) -> list[str]:
    """A /metrics answer that took long moves the server-side baseline (or end) by that much."""
    out = []
    for inst in res["server"]["instances"]:
        for moment, took in (inst.get("metrics_scrape_s") or {}).items():
            if took is not None and took > slow_s:
                out.append(f"{inst['url']}/metrics took {took:.1f} s to answer at the {moment} of the steady phase: "
                           "the server-side figures cover the steady phase that much shifted")
    return out


def write_json(res: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(res, indent=2, default=str))


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def charts(res: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, base64 PNG) pairs: latency over time and the percentile distributions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for name, series in res["timeline"].items():
        if series:
            ax.plot([s["t"] for s in series], [s["p95"] for s in series], label=f"{name} p95")
            ax.plot([s["t"] for s in series], [s["p50"] for s in series], linestyle=":", label=f"{name} p50")
    ax.set_xlabel("seconds since play started")
    ax.set_ylabel("ms")
    ax.set_yscale("symlog", linthresh=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # a run with nothing timed draws empty axes, without a legend
        ax.legend(fontsize=8, ncol=3)
    out.append(("Latency over time (per second)", _png(fig)))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 3.6))
    for name, points in res["distribution"].items():
        pts = [(p, v) for p, v in points if v > 0]
        if pts:
            ax.plot([1 / (1 - p / 100) if p < 100 else 1e4 for p, _ in pts], [v for _, v in pts], label=name)
    ax.set_xscale("log")
    ax.set_xticks([1, 2, 10, 20, 100, 1000, 10000])
    ax.set_xticklabels(["0", "50", "90", "95", "99", "99.9", "99.99"])
    ax.set_xlabel("percentile")
    ax.set_ylabel("ms")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    out.append(("Latency distribution (HDR histograms)", _png(fig)))
    plt.close(fig)

    routes = {k: v for k, v in res["http"].items() if v["n"]}
    if routes:
        fig, ax = plt.subplots(figsize=(9, 0.5 + 0.4 * len(routes)))
        names = list(routes)
        ax.barh(names, [routes[n]["p95"] for n in names], label="p95")
        ax.barh(names, [routes[n]["p50"] for n in names], label="p50")
        ax.axvline(50, color="red", linestyle="--", linewidth=1, label="API target")
        ax.set_xlabel("ms")
        ax.legend(fontsize=8)
        out.append(("HTTP latency per route", _png(fig)))
        plt.close(fig)
    return out


def write_html(res: dict[str, Any], path: Path) -> None:
    e = html.escape
    rows = "".join(
        f"<tr class='{ {True: 'ok', False: 'bad'}.get(t['pass'], 'na')}'><td>{e(t['name'])}</td>"
        f"<td>{e(t['target'])}</td>"
        f"<td>{_fmt(t['measured'], ' ' + t['unit'])}</td><td>{ {True: 'pass', False: 'fail'}.get(t['pass'], 'n/a')}"
        f"</td><td>{e(t['source']) if t['reason'] is None else '<b>not read:</b> ' + e(t['reason'])}</td></tr>"
        for t in res["targets"])

    def lat_rows(group: dict[str, Any], prefix: str) -> str:
        return "".join(f"<tr><td>{e(prefix + k)}</td><td>{s['n']}</td>" + "".join(
            f"<td>{_fmt(s[q])}</td>" for q in ("p50", "p95", "p99", "max")) + "</tr>" for k, s in group.items())

    imgs = "".join(f"<h2>{e(title)}</h2><img alt='{e(title)}' src='data:image/png;base64,{b64}'>"
                   for title, b64 in charts(res))
    c, integ, client = res["config"], res["integrity"], res["client"]
    inst = "".join(f"<tr><td>{e(i['url'])}</td><td>{i['pid'] or '?'}</td><td>{i['cpu_pct_median']}</td>"
                   f"<td>{i['cpu_pct_max']}</td><td>{i['rss_mb_max']}</td></tr>" if i["samples"] else
                   f"<tr><td>{e(i['url'])}</td><td colspan='4'>not measured: {e(i['not_measured'] or '')}</td></tr>"
                   for i in res["server"]["instances"])
    warnings = "".join(f"<p class='warn'>Warning: {e(w)}</p>" for w in client["warnings"] + scrape_warnings(res))
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>TableForge load test</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:1000px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
tr.ok td:nth-child(4){{color:#080}}
.warn{{color:#a60}}tr.bad td:nth-child(4){{color:#c00;font-weight:bold}}img{{max-width:100%}}</style>
</head><body><h1>TableForge load test</h1>
<p>{e(res['date'])}: {c['users']} users, {c['rooms']} rooms, {c['duration']:g} s (+{c['ramp_up']:g} s ramp-up),
seed {c['seed']}, against {e(', '.join(c['urls']))}.</p>
<h2>Targets</h2><table><tr><th>target</th><th>goal</th><th>measured</th><th>result</th><th>source</th></tr>{rows}</table>
<p>Lost events: {integ['lost']}, duplicates: {integ['duplicates']} ({integ.get('duplicates_of_own_acks', 0)} of a
version the player's own ack carried; of {integ['versions_checked']} versions checked;
{integ.get('offline_at_end', 0)} players offline at the end, {integ.get('versions_not_checked', 0)} versions after
their last one not checked);
errors: {res['errors_total']}; reconnects: {res['reconnects']}.
Players joined: {res['players']['joined']} of {res['players']['users']} in {res['players']['processes']}
process(es). Client CPU median {client['cpu_pct_median']} % (max {client['cpu_pct_max']} %, all its processes;
{client['cpu_share_of_usable_pct']} % of the cores it can use), event-loop lag median
{client['loop_lag_ms_median']} ms. Pinned apart from the instances: {'yes' if res['pinning']['pinned'] else 'no'}
(client CPUs {e(str(res['pinning']['client_affinity']))}).</p>{warnings}
<h2>Latency (ms)</h2><table><tr><th>series</th><th>n</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>
{lat_rows(res['http'], 'HTTP ')}{lat_rows(res['ack'], 'ack ')}{lat_rows(res['delivery'], 'delivery ')}</table>
<h2>Instances</h2><table><tr><th>url</th><th>pid</th><th>CPU % median</th><th>CPU % max</th><th>RSS MB max</th></tr>
{inst}</table>{imgs}</body></html>"""
    path.write_text(doc)
