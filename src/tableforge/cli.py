"""`tableforge`: serve, migrate, users, db reports, loadtest, cluster."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from tableforge.cli_db import db_app
from tableforge.cli_load import cluster, loadtest
from tableforge.config import Settings

app = typer.Typer(help="TableForge: a real-time multiplayer virtual tabletop server.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(db_app, name="db")
app.command("loadtest")(loadtest)
app.command("cluster")(cluster)
console = Console(stderr=True)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        console.print("[red]Invalid configuration:[/red]")
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            console.print(f"  TABLEFORGE_{field.upper()}: {err['msg']}")
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (scale-out mode only).")] = 1,
) -> None:
    """Run the server."""
    import uvicorn

    settings = load_settings()
    if workers > 1 and not settings.scale_out:
        console.print("[red]--workers > 1 needs scale-out mode[/red]: set TABLEFORGE_REDIS_URL and a PostgreSQL "
                      "TABLEFORGE_DATABASE_URL. Embedded mode keeps its rooms in one process.")
        raise typer.Exit(2)
    if workers > 1 and not settings.is_postgres:
        console.print("[red]--workers > 1 needs PostgreSQL[/red] (TABLEFORGE_DATABASE_URL=postgresql://…).")
        raise typer.Exit(2)
    if workers > 1:
        # Each worker is an instance of its own (own sockets, own registry entry): give explicit ids a
        # per-process suffix, and let the workers share one Prometheus multiprocess directory.
        os.environ["TABLEFORGE_INSTANCE_ID_PER_PROCESS"] = "true"
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tableforge-metrics-")
    console.print(f"TableForge on http://{host}:{port}  ({'scale-out' if settings.scale_out else 'embedded'} mode, "
                  f"{'PostgreSQL' if settings.is_postgres else 'SQLite at ' + str(settings.data_dir)})")
    uvicorn.run(
        "tableforge.api.app:create_app", factory=True, host=host, port=port, workers=workers,
        ws=settings.ws_implementation, ws_max_size=settings.ws_max_frame_bytes,
        ws_ping_interval=settings.ws_ping_interval, ws_ping_timeout=settings.ws_ping_timeout,
        log_level=settings.log_level.lower(), access_log=False,
        # X-Forwarded-Proto/-For are believed from TABLEFORGE_TRUSTED_PROXIES only (uvicorn's default
        # trusts 127.0.0.1, which would let any local process claim https).
        proxy_headers=bool(settings.trusted_proxy_list),
        forwarded_allow_ips=",".join(settings.trusted_proxy_list) or None,
        timeout_graceful_shutdown=10, lifespan="on",
    )


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the latest version."""
    from tableforge.db import migrate as migrations
    from tableforge.db.engine import Database

    async def run() -> None:
        db = Database(load_settings())
        try:
            await migrations.upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(run())
    console.print("[green]database is up to date[/green]")


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="Username")],
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
    password: Annotated[str | None, typer.Option(help="Password (prompted when omitted).")] = None,
) -> None:
    """Create a user (the way operators make admins)."""
    from tableforge.api.models import RegisterIn
    from tableforge.db import migrate as migrations
    from tableforge.domain.errors import AppError
    from tableforge.services import users
    from tableforge.wiring.backends import build_runtime

    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        RegisterIn(username=name, password=password)
    except ValidationError as exc:
        console.print(f"[red]{exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}[/red]")
        raise typer.Exit(2) from None

    async def run() -> None:
        rt = build_runtime(load_settings())
        try:
            await migrations.upgrade(rt.db)
            user = await users.create_user(rt, name, password, is_admin=admin)
            console.print(f"[green]created[/green] {user['username']} ({user['id']}){' as admin' if admin else ''}")
        except AppError as exc:
            console.print(f"[red]{exc.message}[/red]")
            raise typer.Exit(1) from None
        finally:
            await rt.db.dispose()

    asyncio.run(run())


def main() -> None:  # pragma: no cover
    app(sys.argv[1:])
