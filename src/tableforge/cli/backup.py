"""`tableforge backup` and `tableforge restore` (services/backup.py does the work)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tableforge.cli.common import fail, load_settings, say


def backup(
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory the backups go in (made if missing).",
                                         file_okay=False)],
    keep: Annotated[int | None, typer.Option(min=1, help="Keep only this many newest backups there.")] = None,
) -> None:
    """Back up the database (SQLite online backup, or pg_dump) and the uploaded assets; record the run."""
    from tableforge.services.backup import BackupError
    from tableforge.services.backup import backup as run

    settings = load_settings()
    try:
        entry = run(settings, output.resolve(), keep)
    except BackupError as exc:
        raise fail(f"backup failed: {exc}", code=1) from None
    say(f"backup written to {entry['path']} ({entry['backend']}, {entry['database_bytes']} bytes of database, "
        f"{entry['assets']} assets, {entry['assets_copied']} copied, {entry['duration_s']} s)", "green")
    typer.echo(json.dumps(entry, sort_keys=True))


def restore(
    source: Annotated[Path, typer.Argument(help="A backup directory (tableforge-backup-…).", exists=True,
                                           file_okay=False)],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: every instance is stopped, and the database "
                                      "is to be replaced by the backup's.")] = False,
) -> None:
    """Replace the database with a backup's and add its assets. Stop every instance first."""
    from tableforge.services.backup import BackupError
    from tableforge.services.backup import restore as run

    if not yes:
        raise fail("restore replaces the whole database: stop every instance, then run it again with --yes")
    try:
        done = run(load_settings(), source.resolve())
    except BackupError as exc:
        raise fail(f"restore failed: {exc}", code=1) from None
    say(f"restored {done['backend']} database from {done['restored_from']} (schema {done['schema_revision']}), "
        f"{done['assets_added']} assets added; run `tableforge migrate` before starting a newer version", "green")
