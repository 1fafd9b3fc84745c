"""`tableforge serve` and `tableforge migrate`."""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Annotated

import typer

from tableforge.cli.common import load_settings, say


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (scale-out mode only).")] = 1,
) -> None:
    """Run the server."""
    import uvicorn

    settings = load_settings()
    if workers > 1 and not settings.scale_out:
        say("--workers > 1 needs scale-out mode: set TABLEFORGE_REDIS_URL and a PostgreSQL "
            "TABLEFORGE_DATABASE_URL. Embedded mode keeps its rooms in one process.", "red")
        raise typer.Exit(2)
    if workers > 1 and not settings.is_postgres:
        say("--workers > 1 needs PostgreSQL (TABLEFORGE_DATABASE_URL=postgresql://…).", "red")
        raise typer.Exit(2)
    if workers > 1:
        # Each worker is an instance of its own (own sockets, own registry entry): give explicit ids a
        # per-process suffix, and let the workers share one Prometheus multiprocess directory.
        os.environ["TABLEFORGE_INSTANCE_ID_PER_PROCESS"] = "true"
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tableforge-metrics-")
    say(f"TableForge on http://{host}:{port}  ({'scale-out' if settings.scale_out else 'embedded'} mode, "
        f"{'PostgreSQL' if settings.is_postgres else 'SQLite at ' + str(settings.data_dir)})")
    uvicorn.run(
        "tableforge.api.app:create_app", factory=True, host=host, port=port, workers=workers,
        ws=ws_protocol(settings.ws_implementation), ws_max_size=settings.ws_max_frame_bytes,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        ws_ping_interval=settings.ws_ping_interval, ws_ping_timeout=settings.ws_ping_timeout,
        log_level=settings.log_level.lower(), access_log=False,
        # X-Forwarded-Proto/-For are believed from TABLEFORGE_TRUSTED_PROXIES only (uvicorn's default
        # trusts 127.0.0.1, which would let any local process claim https).
        proxy_headers=bool(settings.trusted_proxy_list),
        forwarded_allow_ips=",".join(settings.trusted_proxy_list) or None,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds, lifespan="on",  # type: ignore[arg-type]
    )


def ws_protocol(implementation: str) -> str:
    """uvicorn's `ws`: websockets-sansio is ours, lighter per socket (wiring/ws_protocol.py)."""
    if implementation == "websockets-sansio":
        return "tableforge.wiring.ws_protocol:LeanWebSocketsProtocol"
    return implementation


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
    say("database is up to date", "green")
