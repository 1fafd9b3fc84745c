"""`tableforge backup` and `tableforge restore`: the database and the uploaded assets, together.

A backup is one directory `tableforge-backup-<UTC time>/` under the chosen output directory:
- `tableforge.db` (SQLite, through SQLite's online backup API: a consistent copy of a live database,
  writers never blocked in WAL mode, checked with `PRAGMA quick_check`), or `database.dump`
  (PostgreSQL, `pg_dump --format=custom`: one consistent snapshot while the instances run);
- `assets/`: the content-addressed files (`<2 hex>/<sha256>.<ext>`). A file never changes under its
  name, so a file the previous backup already holds is hard-linked from it instead of copied: every
  backup directory is complete on its own, and a daily backup costs only the new uploads;
- `manifest.json`: when, which backend, the schema revision, what was copied.
The database goes first: an asset uploaded after it is extra in the copy (harmless), and every asset
the copied database refers to was stored before its row was.
Each run, success or failure, is recorded in the data directory (`services/backup_record.py`).
It is written in the directory `.<name>.partial` and renamed when complete, so a crash never leaves
something that looks like a backup.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from tableforge.config import Settings
from tableforge.services import backup_record

PREFIX = "tableforge-backup-"
SQLITE_FILE = "tableforge.db"
PG_FILE = "database.dump"
_ASSET = re.compile(r"^[0-9a-f]{64}\.[a-z0-9]{1,8}$")
_SHARD = re.compile(r"^[0-9a-f]{2}$")


class BackupError(Exception):
    """A backup or restore that could not be done, with a message for the operator."""


def backup(settings: Settings, output: Path, keep: int | None = None) -> dict[str, Any]:
    """Make one backup under `output`; record it; keep the newest `keep` backups there (all if None)."""
    started = time.time()
    backend = "postgresql" if settings.is_postgres else "sqlite"
    work: Path | None = None
    try:
        output.mkdir(parents=True, exist_ok=True)
        name = PREFIX + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
        target = output / name
        if target.exists():  # two runs in one second
            raise BackupError(f"{target} already exists")
        work = output / f".{name}.partial"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        previous = _latest(output)
        if settings.is_postgres:
            database = _pg_dump(settings, work / PG_FILE)
        else:
            database = _sqlite_backup(_sqlite_path(settings), work / SQLITE_FILE)
        assets = _copy_assets(settings.assets_dir, work / "assets", previous / "assets" if previous else None)
        manifest = {"format": 1, "backend": backend, "created_at": backup_record.now_entry(started)["started_at"],
                    "database": database, "assets": assets}
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        os.replace(work, target)
        work = None
        removed = _prune(output, keep) if keep else []
    except Exception as exc:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        message = str(exc) if isinstance(exc, BackupError | OSError | sqlite3.Error) else f"{type(exc).__name__}: {exc}"
        backup_record.write(settings.data_dir, failure=backup_record.now_entry(
            started, backend=backend, output=str(output), error=message[:2000]))
        raise BackupError(message) from exc
    entry = backup_record.now_entry(started, backend=backend, path=str(target), schema_revision=database["revision"],
                                    database_bytes=database["bytes"], assets=assets["files"],
                                    assets_bytes=assets["bytes"], assets_copied=assets["copied"], removed=removed)
    backup_record.write(settings.data_dir, success=entry)
    return entry


def _latest(output: Path) -> Path | None:
    found = sorted(p for p in output.glob(PREFIX + "*") if p.is_dir() and (p / "manifest.json").is_file())
    return found[-1] if found else None


def _prune(output: Path, keep: int) -> list[str]:
    found = sorted(p for p in output.glob(PREFIX + "*") if p.is_dir() and (p / "manifest.json").is_file())
    removed = found[:-keep] if len(found) > keep else []
    for path in removed:
        shutil.rmtree(path)
    return [p.name for p in removed]


# --- SQLite ------------------------------------------------------------------------------------

def _sqlite_path(settings: Settings) -> Path:
    url = settings.sqlalchemy_url
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path.startswith(":memory:"):
        raise BackupError(f"no SQLite database file in {url!r}")
    return Path(path.split("?", 1)[0])


def _sqlite_backup(source: Path, dest: Path) -> dict[str, Any]:
    if not source.is_file():
        raise BackupError(f"no database at {source} (has the server run with this TABLEFORGE_DATA_DIR?)")
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(dest)
        try:
            # One step (pages=-1): the whole database from one read snapshot. A stepwise copy would
            # start over each time a server wrote in between.
            src.backup(dst)
            # A single self-contained file: no -wal/-shm beside it.
            dst.execute("PRAGMA journal_mode=DELETE")
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"the copy failed SQLite's check: {check}")
            revision = _sqlite_revision(dst)
        finally:
            dst.close()
    finally:
        src.close()
    return {"file": dest.name, "bytes": dest.stat().st_size, "revision": revision}


def _sqlite_revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


# --- PostgreSQL ----------------------------------------------------------------------------------

def libpq(settings: Settings) -> tuple[str, dict[str, str]]:
    """The database URL for pg_dump/psql/pg_restore, and their environment. The password travels in
    PGPASSWORD, never on a command line (where `ps` shows it); asyncpg-style query parameters are
    not libpq's, so only the SSL mode is carried over (as PGSSLMODE)."""
    url = settings.database_url or ""
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    env = dict(os.environ)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        if password:
            env["PGPASSWORD"] = unquote(password)
        netloc = f"{user}@{host}"
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    ssl = settings.db_ssl_mode or query.get("sslmode") or query.get("ssl")
    if ssl:
        env["PGSSLMODE"] = ssl
    return urlunsplit(("postgresql", netloc, parts.path, "", "")), env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed: install PostgreSQL's client programs (Debian: "
                          "postgresql-client), of the server's major version or newer")
    return found


def _run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    return done.stdout


def _pg_dump(settings: Settings, dest: Path) -> dict[str, Any]:
    dsn, env = libpq(settings)
    revision = _run([_tool("psql"), "--no-psqlrc", "-At", "-d", dsn, "-c",
                     "SELECT version_num FROM alembic_version"], env).strip() or None
    _run([_tool("pg_dump"), "--format=custom", "--file", str(dest), "--dbname", dsn], env)
    return {"file": dest.name, "bytes": dest.stat().st_size, "revision": revision}


# --- assets --------------------------------------------------------------------------------------

def _asset_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    files: list[Path] = []
    for shard in sorted(root.iterdir()):
        if shard.is_dir() and _SHARD.match(shard.name):
            files.extend(f for f in sorted(shard.iterdir()) if _ASSET.match(f.name) and f.is_file())
    return files


def _copy_assets(source: Path, dest: Path, previous: Path | None) -> dict[str, int]:
    """Copy the asset files (temporary `*.tmp` uploads in progress are not assets), linking those the
    previous backup already has with the same size."""
    dest.mkdir()
    files = copied = size = 0
    for src in _asset_files(source):
        rel = src.relative_to(source)
        out = dest / rel
        out.parent.mkdir(exist_ok=True)
        try:
            length = src.stat().st_size
        except FileNotFoundError:
            continue  # deleted since the listing (an unreferenced asset removed by maintenance)
        old = previous / rel if previous is not None else None
        try:
            if old is not None and old.is_file() and old.stat().st_size == length:
                os.link(old, out)
            else:
                shutil.copy2(src, out)
                copied += 1
        except FileNotFoundError:
            continue
        files += 1
        size += length
    return {"files": files, "bytes": size, "copied": copied}


# --- restore -------------------------------------------------------------------------------------

def restore(settings: Settings, source: Path) -> dict[str, Any]:
    """Put a backup back: the database replaced by the backup's, the assets added to the data directory.
    Every instance must be stopped first (the caller says so); run `tableforge migrate` after it when
    the backup comes from an older version."""
    manifest_path = source / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} is not a TableForge backup (no readable manifest.json): {exc}") from exc
    backend = "postgresql" if settings.is_postgres else "sqlite"
    if manifest.get("backend") != backend:
        raise BackupError(f"the backup is of a {manifest.get('backend')} database and this configuration uses "
                          f"{backend}; a game moves between modes with export/import, not with a backup")
    if settings.is_postgres:
        dsn, env = libpq(settings)
        _run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
              "--dbname", dsn, str(source / PG_FILE)], env)
    else:
        target = _sqlite_path(settings)
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in (Path(f"{target}-wal"), Path(f"{target}-shm")):
            stale.unlink(missing_ok=True)  # they belong to the database being replaced
        tmp = target.with_name(f".{target.name}.restore")
        shutil.copyfile(source / SQLITE_FILE, tmp)
        os.replace(tmp, target)
    added = 0
    for src in _asset_files(source / "assets"):
        out = settings.assets_dir / src.relative_to(source / "assets")
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out)
            added += 1
    return {"backend": backend, "restored_from": str(source), "schema_revision": manifest["database"]["revision"],
            "assets_added": added}
