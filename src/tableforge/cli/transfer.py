"""`tableforge export` and `tableforge import`: rooms as one portable file, between any two servers
(embedded SQLite and PostgreSQL alike); services/transfer does the work."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tableforge.cli.common import fail, load_settings, say


def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="The room file to write (replaced if there).",
                                         dir_okay=False)],
    room: Annotated[list[str] | None, typer.Option("--room", help="A room id; repeat for several.")] = None,
    all_rooms: Annotated[bool, typer.Option("--all", help="Every room, open or closed.")] = False,
) -> None:
    """Write rooms (state, scenes, tokens, chat and rolls, members, assets by hash) to one file."""
    from tableforge.db import migrate as migrations
    from tableforge.db.engine import Database
    from tableforge.domain.errors import AppError
    from tableforge.services.transfer.export import export_rooms

    if bool(room) == all_rooms:
        raise fail("name the rooms with --room ID (repeatable), or pass --all")
    if output.parent and not output.parent.is_dir():
        raise fail(f"--output: the directory {output.parent} does not exist")
    settings = load_settings()

    async def run() -> dict[str, Any]:
        db = Database(settings)
        try:
            await migrations.upgrade(db)
            return await export_rooms(db, settings.assets_dir, None if all_rooms else list(room or ()),
                                      output.resolve())
        finally:
            await db.dispose()

    try:
        done = asyncio.run(run())
    except AppError as exc:
        raise fail(f"export failed: {exc.message} ({exc.code})", code=1) from None
    except OSError as exc:
        raise fail(f"export failed: {exc}", code=1) from None
    say(f"exported {len(done['rooms'])} room(s) and {done['files']} image(s) to {done['path']} "
        f"({done['bytes']} bytes)", "green")
    typer.echo(json.dumps(done, sort_keys=True))


def import_(
    source: Annotated[Path, typer.Argument(help="A room file made by `tableforge export`.", exists=True,
                                           dir_okay=False)],
    owner: Annotated[str | None, typer.Option("--owner", help="This user becomes every imported room's GM "
                                              "(default: the exported GM, by username).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the whole file and report; write nothing.")
                       ] = False,
    max_bytes: Annotated[int, typer.Option("--max-bytes", min=1, help="Refuse a file that inflates to more.")
                         ] = 4 * 1024**3,
    max_entries: Annotated[int, typer.Option("--max-entries", min=1, help="Refuse a file with more entries.")
                           ] = 20_000,
) -> None:
    """Add the rooms of a room file as new rooms (new ids; nothing existing is touched)."""
    from tableforge.db import migrate as migrations
    from tableforge.db.engine import Database
    from tableforge.domain.errors import AppError
    from tableforge.services.transfer.archive import Limits
    from tableforge.services.transfer.importer import import_rooms

    settings = load_settings()
    limits = Limits(max_total_bytes=max_bytes, max_entries=max_entries, max_asset_bytes=settings.max_upload_bytes)

    async def run() -> dict[str, Any]:
        db = Database(settings)
        try:
            await migrations.upgrade(db)
            return await import_rooms(db, settings, source.resolve(), owner, dry_run, limits)
        finally:
            await db.dispose()

    try:
        done = asyncio.run(run())
    except AppError as exc:
        raise fail(f"import refused: {exc.message} ({exc.code}); nothing was changed", code=1) from None
    except OSError as exc:
        raise fail(f"import failed: {exc}", code=1) from None
    verb = "would import" if dry_run else "imported"
    for r in done["rooms"]:
        say(f"{verb} {r['name']!r}{' as ' + r['id'] if 'id' in r else ''}: {r['scenes']} scene(s), "
            f"{r['tokens']} token(s), {r['assets']} asset(s), {r['messages']} message(s)", "green")
        if r.get("skipped_members"):
            say(f"  members without an account here, left out: {', '.join(r['skipped_members'])}", "yellow")
    if done["users_missing"]:
        say(f"usernames in the file with no account here: {', '.join(done['users_missing'])}", "yellow")
    typer.echo(json.dumps(done, sort_keys=True))
