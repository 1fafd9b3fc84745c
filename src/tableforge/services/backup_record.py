"""When the last backup ran: a small JSON file in the data directory, written by `tableforge backup`,
read by `GET /api/admin/backup` and by `/metrics` (`tableforge_backup_last_success_timestamp_seconds`).

Why a file beside the assets rather than a database row: the backup command runs outside the
servers (a systemd timer, a one-off container), on SQLite and PostgreSQL alike, and every instance
of a deployment already shares the data directory (the assets live there), so every instance reads
the same record without a schema change. It is replaced atomically (write, fsync, rename), so a
reader sees the old record or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

FILE_NAME = "backup-status.json"
_MAX_BYTES = 64 * 1024  # a record is well under 1 KiB: anything bigger is not ours


def record_path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def read(data_dir: Path) -> dict[str, Any]:
    """`{"last_success": {...} | None, "last_failure": {...} | None}`; both None when no backup ran
    (or the file is unreadable: an operator sees "never" rather than an error page)."""
    empty: dict[str, Any] = {"last_success": None, "last_failure": None}
    try:
        path = record_path(data_dir)
        if path.stat().st_size > _MAX_BYTES:
            return empty
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return empty
    if not isinstance(data, dict):
        return empty
    return {key: data[key] if isinstance(data.get(key), dict) else None for key in empty}


def write(data_dir: Path, *, success: dict[str, Any] | None = None, failure: dict[str, Any] | None = None) -> None:
    """Record a finished run (one of `success`, `failure`), keeping the other kind's last entry."""
    current = read(data_dir)
    if success is not None:
        current["last_success"] = success
    if failure is not None:
        current["last_failure"] = failure
    data_dir.mkdir(parents=True, exist_ok=True)
    path = record_path(data_dir)
    tmp = path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(json.dumps(current, indent=2, sort_keys=True).encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # the rename itself durable (not possible on every filesystem)
        fd = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def timestamp(entry: dict[str, Any] | None) -> float:
    """The entry's `finished_ts` (epoch seconds), 0 for none: Prometheus's convention for "never"."""
    if not entry:
        return 0.0
    value = entry.get("finished_ts")
    return float(value) if isinstance(value, int | float) else 0.0


class BackupCollector(Collector):
    """The record as two gauges, read at scrape time. One stat() and, when the file changed, one small
    read: cheap next to the rest of a scrape, and always what the file says."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._seen: tuple[int, int] | None = None
        self._record: dict[str, Any] = {"last_success": None, "last_failure": None}

    def _current(self) -> dict[str, Any]:
        try:
            st = record_path(self.data_dir).stat()
            key: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key != self._seen:
            self._record = read(self.data_dir) if key is not None else {"last_success": None, "last_failure": None}
            self._seen = key
        return self._record

    def collect(self) -> Iterator[GaugeMetricFamily]:
        record = self._current()
        yield GaugeMetricFamily("tableforge_backup_last_success_timestamp_seconds",
                                "When the last successful `tableforge backup` finished (epoch seconds; 0 = never)",
                                value=timestamp(record["last_success"]))
        yield GaugeMetricFamily("tableforge_backup_last_failure_timestamp_seconds",
                                "When the last failed `tableforge backup` finished (epoch seconds; 0 = never)",
                                value=timestamp(record["last_failure"]))


_collector: BackupCollector | None = None


def install_collector(data_dir: Path, registry: CollectorRegistry = REGISTRY) -> BackupCollector:
    """Register the collector once per process (an app built again only points it at its data dir)."""
    global _collector
    if _collector is None:
        _collector = BackupCollector(data_dir)
        registry.register(_collector)
    else:
        _collector.data_dir = data_dir
        _collector._seen = None
    return _collector


def now_entry(started: float, **fields: Any) -> dict[str, Any]:
    """A record entry for a run that started at `started` (epoch seconds) and finished now."""
    finished = time.time()
    return {"started_at": _iso(started), "finished_at": _iso(finished), "finished_ts": round(finished, 3),
            "duration_s": round(finished - started, 3), **fields}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
