"""Latency recording (HDR histograms in microseconds), a per-second timeline, and Prometheus
histogram parsing with quantiles from bucket deltas."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

MAX_US = 120_000_000  # 2 minutes
QUANTILES = (50, 95, 99)


def hist_for(table: dict[str, Hist], key: str) -> Hist:
    """The table's histogram for `key`, made on first use (`setdefault(key, Hist())` would allocate an
    HDR histogram on every call)."""
    hist = table.get(key)
    if hist is None:
        hist = table[key] = Hist()
    return hist


class Hist:
    """An HDR histogram of milliseconds (stored as microseconds, 3 significant digits)."""

    def __init__(self) -> None:
        self.h = HdrHistogram(1, MAX_US, 3)

    def record(self, ms: float) -> None:
        self.h.record_value(max(1, min(MAX_US, int(ms * 1000))))

    @property
    def count(self) -> int:
        return int(self.h.get_total_count())

    def quantile(self, q: float) -> float:
        return self.h.get_value_at_percentile(q) / 1000 if self.count else 0.0

    def summary(self) -> dict[str, float]:
        if not self.count:
            return {"n": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
        return {"n": self.count, **{f"p{q}": round(self.quantile(q), 3) for q in QUANTILES},
                "max": round(self.h.get_max_value() / 1000, 3), "mean": round(self.h.get_mean_value() / 1000, 3)}

    def encode(self) -> bytes:
        """The histogram as HdrHistogram's compressed wire form (to send from a worker process)."""
        return bytes(self.h.encode())

    @classmethod
    def decode(cls, data: bytes) -> Hist:
        out = cls()
        if data:
            out.h.add(HdrHistogram.decode(data))
        return out

    def add(self, other: Hist) -> None:
        if other.count:
            self.h.add(other.h)

    def distribution(self, points: int = 60) -> list[tuple[float, float]]:
        """(percentile, ms) pairs on a log scale of 1/(1-p), for a percentile-distribution chart."""
        out = []
        for i in range(points):
            p = 100 * (1 - 10 ** (-4 * i / (points - 1)))  # 0 .. 99.99
            out.append((round(p, 4), round(self.quantile(p), 3)))
        return out


@dataclass
class Timeline:
    """Per-second latency samples (a bounded reservoir per second) for the latency-over-time chart."""

    t0: float
    cap: int = 2000
    seconds: dict[int, list[float]] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def record(self, now: float, ms: float) -> None:
        sec = int(now - self.t0)
        n = self.counts.get(sec, 0) + 1
        self.counts[sec] = n
        bucket = self.seconds.setdefault(sec, [])
        if len(bucket) < self.cap:
            bucket.append(ms)
        else:
            j = self.rng.randrange(n)
            if j < self.cap:
                bucket[j] = ms

    def merge(self, seconds: dict[int, list[float]], counts: dict[int, int]) -> None:
        """Add another process's timeline (same `t0`: both count seconds from the start of play).
        Where the two reservoirs hold more than `cap` samples together, each keeps a share of the
        cap in proportion to how many latencies it stood for, drawn at random."""
        for sec, theirs in seconds.items():
            n_theirs = counts.get(sec, len(theirs))
            mine, n_mine = self.seconds.get(sec, []), self.counts.get(sec, 0)
            if len(mine) + len(theirs) > self.cap:
                keep = round(self.cap * n_mine / max(n_mine + n_theirs, 1))
                keep = min(len(mine), max(keep, self.cap - len(theirs)))
                mine = self.rng.sample(mine, keep)
                theirs = self.rng.sample(theirs, min(len(theirs), self.cap - keep))
            self.seconds[sec] = [*mine, *theirs]
            self.counts[sec] = n_mine + n_theirs

    def recent_p95(self) -> float | None:
        """p95 of the last complete second (the current one while nothing else is there): what the
        live view shows twice a second, without sorting the whole run."""
        if not self.seconds:
            return None
        last = max(self.seconds)
        sec = last - 1 if last - 1 in self.seconds else last
        return pick(sorted(self.seconds[sec]), 0.95)

    def series(self) -> list[dict[str, float]]:
        out = []
        for sec in sorted(self.seconds):
            values = sorted(self.seconds[sec])
            out.append({"t": sec, "n": self.counts[sec], "p50": pick(values, 0.5), "p95": pick(values, 0.95),
                        "p99": pick(values, 0.99)})
        return out


def pick(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return round(sorted_values[min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1)], 3)


def median(values: list[float]) -> float:
    s = sorted(values)
    if not s:
        return 0.0
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


# ---------------------------------------------------------------- Prometheus text format

Series = dict[str, Any]  # {"buckets": {le: cumulative}, "sum": s, "count": n}


def parse_prometheus(text: str) -> dict[str, Any]:
    """{"hist": {name: {labels_key: Series}}, "value": {name: {labels_key: float}}}.

    `labels_key` is the sorted `k=v` labels without `le`, comma-joined."""
    hist: dict[str, dict[str, Series]] = {}
    value: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, raw = line.rpartition(" ")
        if not name_labels:
            continue
        try:
            number = float(raw)
        except ValueError:
            continue
        name, _, labels = name_labels.partition("{")
        parts: dict[str, str] = {}
        for item in _split_labels(labels.rstrip("}")):
            k, _, v = item.partition("=")
            parts[k.strip()] = v.strip().strip('"')
        le = parts.pop("le", None)
        key = ",".join(f"{k}={v}" for k, v in sorted(parts.items()))
        if name.endswith("_bucket") and le is not None:
            entry = hist.setdefault(name[:-7], {}).setdefault(key, {"buckets": {}, "sum": 0.0, "count": 0.0})
            entry["buckets"][le] = number
        elif name.endswith("_sum") or name.endswith("_count"):
            base, _, suffix = name.rpartition("_")
            entry = hist.setdefault(base, {}).setdefault(key, {"buckets": {}, "sum": 0.0, "count": 0.0})
            entry[suffix] = number
            value.setdefault(name, {})[key] = number
        else:
            value.setdefault(name, {})[key] = number
    # drop *_sum/_count pseudo-histograms of summaries/counters that had no buckets
    hist = {n: {k: s for k, s in series.items() if s["buckets"]} for n, series in hist.items()}
    return {"hist": {n: s for n, s in hist.items() if s}, "value": value}


def _split_labels(labels: str) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in labels:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return [p for p in out if "=" in p]


def hist_delta(before: dict[str, Series], after: dict[str, Series],
               match: dict[str, str] | None = None) -> Series:
    """One merged series: after - before, summed over every label set that matches `match`."""
    merged: Series = {"buckets": {}, "sum": 0.0, "count": 0.0}
    for key, a in after.items():
        labels = dict(p.split("=", 1) for p in key.split(",") if "=" in p)
        if match and any(labels.get(k) != v for k, v in match.items()):
            continue
        b = before.get(key, {"buckets": {}, "sum": 0.0, "count": 0.0})
        merged["count"] += a["count"] - b["count"]
        merged["sum"] += a["sum"] - b["sum"]
        for le, c in a["buckets"].items():
            merged["buckets"][le] = merged["buckets"].get(le, 0.0) + c - b["buckets"].get(le, 0.0)
    return merged


def add_series(x: Series, y: Series) -> Series:
    out: Series = {"buckets": dict(x["buckets"]), "sum": x["sum"] + y["sum"], "count": x["count"] + y["count"]}
    for le, c in y["buckets"].items():
        out["buckets"][le] = out["buckets"].get(le, 0.0) + c
    return out


def series_quantile(series: Series, q: float) -> float | None:
    """Linear interpolation inside the bucket holding the q-th observation, in ms (None if empty)."""
    count = series["count"]
    if count <= 0:
        return None
    bounds = sorted(((math.inf if le == "+Inf" else float(le)), c) for le, c in series["buckets"].items())
    target, prev_le, prev_c = q * count, 0.0, 0.0
    for le, c in bounds:
        if c >= target:
            if le == math.inf:
                return prev_le * 1000
            frac = (target - prev_c) / (c - prev_c) if c > prev_c else 1.0
            return (prev_le + (le - prev_le) * frac) * 1000
        prev_le, prev_c = le, c
    return prev_le * 1000


def beyond_last_bucket(series: Series, q: float) -> bool:
    """The q-th observation fell in the +Inf bucket: `series_quantile` gives the last finite bound,
    a lower bound of the real value."""
    finite = [c for le, c in series["buckets"].items() if le != "+Inf"]
    return series["count"] > 0 and bool(finite) and max(finite) < q * series["count"]


def series_summary(series: Series) -> dict[str, float | None]:
    n = series["count"]
    return {"n": n, "mean": (series["sum"] / n * 1000) if n > 0 else None,
            **{f"p{q}": series_quantile(series, q / 100) for q in QUANTILES}}


def counter_delta(before: dict[str, float], after: dict[str, float], match: dict[str, str] | None = None) -> float:
    total = 0.0
    for key, a in after.items():
        labels = dict(p.split("=", 1) for p in key.split(",") if "=" in p)
        if match and any(labels.get(k) != v for k, v in match.items()):
            continue
        total += a - before.get(key, 0.0)
    return total
