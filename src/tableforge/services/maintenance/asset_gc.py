"""The assets job: delete uploaded files that no asset row names any more.

Files live at `<data dir>/assets/<sha[:2]>/<sha>.<ext>`, content-addressed, and several rows (in
several rooms) may share one. A file is garbage only when no row has its hash. What makes that
hard is an upload racing the collector: an upload writes (or, for bytes already stored, touches)
its file *before* it inserts its row. So:

1. only files older than the grace period (`TABLEFORGE_MAINTENANCE_ASSET_GRACE`) are candidates,
   and an upload that finds its file already there refreshes its time (services/assets.py);
2. a candidate no row names is first renamed aside (atomic), then looked at again: if its time is
   fresh (an upload touched it just before the rename) or a row names it now, it is put back;
   only then is it deleted. An upload that comes after the rename finds no file and writes it anew.

Only names this server makes are touched (`<sha>.<ext>`, its temporary `….tmp` files, and the
collector's own `….gc-…` names left by a crash); anything else in the directory is left alone.
Files are read one shard directory at a time, in a worker thread, so the event loop never waits on
the disk and memory holds one shard's names at a time. Scale-out instances share the data directory
(they must, to serve each other's uploads), so the lease holder's run covers every instance's files.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tableforge.db import housekeeping
from tableforge.services import replies
from tableforge.services.runtime import Runtime

_EXT = "|".join(sorted(set(replies.EXTENSIONS.values())))
_FILE = re.compile(rf"^([0-9a-f]{{64}})\.({_EXT})$")
_TEMP = re.compile(rf"^[0-9a-f]{{64}}\.({_EXT})\.\d+\.[0-9a-f]+\.tmp$")
_ASIDE = re.compile(rf"^([0-9a-f]{{64}})\.({_EXT})\.gc-[0-9a-f]+$")
_SHARD = re.compile(r"^[0-9a-f]{2}$")
ROWS_PER_CHECK = 1000
MISSING_EXAMPLES = 5


@dataclass
class _Shard:
    """One shard directory's files, as seen by one scan."""

    files: list[tuple[Path, str, float, int]] = field(default_factory=list)  # path, sha, mtime, size
    temp: list[Path] = field(default_factory=list)  # stale temporary files (older than the grace)
    aside: list[tuple[Path, str, str]] = field(default_factory=list)  # left by a crash: path, sha, ext
    seen: int = 0
    size: int = 0


def _scan(shard: Path, cutoff: float) -> _Shard:
    out = _Shard()
    try:
        entries = list(os.scandir(shard))
    except FileNotFoundError:
        return out
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if m := _FILE.match(entry.name):
            out.seen += 1
            out.size += st.st_size
            out.files.append((Path(entry.path), m.group(1), st.st_mtime, st.st_size))
        elif _TEMP.match(entry.name):
            if st.st_mtime < cutoff:
                out.temp.append(Path(entry.path))
        elif m := _ASIDE.match(entry.name):
            out.aside.append((Path(entry.path), m.group(1), m.group(2)))
    return out


def _unlink(paths: list[Path]) -> int:
    """Delete these files; the bytes freed (files already gone are skipped)."""
    freed = 0
    for path in paths:
        try:
            size = path.stat().st_size
            path.unlink()
            freed += size
        except FileNotFoundError:
            continue
    return freed


def _set_aside(paths: list[Path]) -> list[tuple[Path, Path, float]]:
    """Rename each file aside; (original, aside, mtime after the rename) of those that were there."""
    moved = []
    token = secrets.token_hex(4)
    for path in paths:
        aside = path.with_name(f"{path.name}.gc-{token}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            continue
        moved.append((path, aside, aside.stat().st_mtime))
    return moved


def _put_back(pairs: list[tuple[Path, Path]]) -> None:
    # os.replace: an upload may have written the same bytes to the path meanwhile; either copy will do.
    for path, aside in pairs:
        os.replace(aside, path)


async def collect(rt: Runtime) -> dict[str, Any]:
    root = rt.settings.assets_dir
    grace = rt.settings.maintenance_asset_grace
    out: dict[str, Any] = {"files": 0, "bytes": 0, "deleted_files": 0, "deleted_bytes": 0, "recent_unreferenced": 0,
                           "put_back": 0, "temp_files_deleted": 0, "grace_seconds": grace}
    shards = sorted(p for p in await asyncio.to_thread(_shards, root))
    for shard in shards:
        cutoff = time.time() - grace
        found = await asyncio.to_thread(_scan, shard, cutoff)
        out["files"] += found.seen
        out["bytes"] += found.size
        if found.temp:
            await asyncio.to_thread(_unlink, found.temp)
            out["temp_files_deleted"] += len(found.temp)
        if found.aside:
            await _recover(rt, found.aside)
        if not found.files:
            continue
        named = await housekeeping.referenced_hashes(rt.db, sorted({sha for _, sha, _, _ in found.files}))
        unnamed = [(path, sha, mtime) for path, sha, mtime, _ in found.files if sha not in named]
        old = [(path, sha) for path, sha, mtime in unnamed if mtime < cutoff]
        out["recent_unreferenced"] += len(unnamed) - len(old)
        if old:
            deleted, freed, put_back = await _delete_unnamed(rt, old, cutoff)
            out["deleted_files"] += deleted
            out["deleted_bytes"] += freed
            out["put_back"] += put_back
        await asyncio.sleep(0)
    out.update(await _missing_files(rt))
    return out


def _shards(root: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False) and _SHARD.match(e.name)]
    except FileNotFoundError:
        return []


async def _delete_unnamed(rt: Runtime, old: list[tuple[Path, str]], cutoff: float) -> tuple[int, int, int]:
    """Set the files aside, look again, put back what an upload claimed meanwhile, delete the rest."""
    sha_of = {path: sha for path, sha in old}
    moved = await asyncio.to_thread(_set_aside, [path for path, _ in old])
    if not moved:
        return 0, 0, 0
    named = await housekeeping.referenced_hashes(rt.db, sorted({sha_of[path] for path, _, _ in moved}))
    keep = [(path, aside) for path, aside, mtime in moved if mtime >= cutoff or sha_of[path] in named]
    drop = [aside for path, aside, mtime in moved if not (mtime >= cutoff or sha_of[path] in named)]
    if keep:
        await asyncio.to_thread(_put_back, keep)
    freed = await asyncio.to_thread(_unlink, drop)
    return len(drop), freed, len(keep)


async def _recover(rt: Runtime, aside: list[tuple[Path, str, str]]) -> None:
    """Files a crashed run had set aside: back in place if a row names them, else deleted."""
    named = await housekeeping.referenced_hashes(rt.db, sorted({sha for _, sha, _ in aside}))
    back = [(path.with_name(f"{sha}.{ext}"), path) for path, sha, ext in aside if sha in named]
    await asyncio.to_thread(_put_back, back)
    await asyncio.to_thread(_unlink, [path for path, sha, _ in aside if sha not in named])


async def _missing_files(rt: Runtime) -> dict[str, Any]:
    """Rows whose file is gone (reported, not deleted: their tokens would vanish from the boards;
    restoring the file from a backup mends them)."""
    root = rt.settings.assets_dir
    missing, examples = 0, list[str]()
    after: str | None = None
    while True:
        rows = await housekeeping.asset_rows(rt.db, after, ROWS_PER_CHECK)
        if not rows:
            break
        after = rows[-1][0]
        paths = [(asset_id, root / sha[:2] / f"{sha}.{replies.EXTENSIONS.get(kind, kind)}")
                 for asset_id, sha, kind in rows]
        gone = await asyncio.to_thread(lambda: [i for i, p in paths if not p.is_file()])  # noqa: B023
        missing += len(gone)
        examples.extend(gone[:MISSING_EXAMPLES - len(examples)])
    return {"rows_missing_file": missing, "rows_missing_file_examples": examples}
