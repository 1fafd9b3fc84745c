"""`tableforge maintenance list|run`: the maintenance jobs from the command line.

`run` works in this process against the configured database (and Redis), with or without a server
running: the runs table keeps it from overlapping a run of the same job anywhere else. Heavy
imports happen inside the commands (see cli/__init__.py)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tableforge.cli.common import fail, load_settings, say
from tableforge.domain.maintenance import JOB_NAMES

if TYPE_CHECKING:
    from tableforge.services.runtime import Runtime

maintenance_app = typer.Typer(help="Maintenance jobs: list them and their runs, run one now.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _with_runtime(work: Callable[[Runtime], Awaitable[Any]], *, start_cache: bool = False) -> Any:
    from tableforge.db import migrate
    from tableforge.observability.logging import configure_logging
    from tableforge.wiring.backends import build_runtime

    settings = load_settings()
    configure_logging(settings.instance_id, settings.log_level, settings.log_json)  # on stderr

    async def go() -> Any:
        rt = build_runtime(settings)
        try:
            await migrate.upgrade(rt.db)
            if start_cache:
                await rt.cache.start()
            return await work(rt)
        finally:
            if start_cache:
                await rt.cache.close()
            for close in rt.closers:
                await close()
            await rt.db.dispose()

    return asyncio.run(go())


@maintenance_app.command("list")
def list_jobs(runs: Annotated[int, typer.Option(min=1, max=100, help="Recent runs shown per job.")] = 3,
              as_json: JsonOpt = False) -> None:
    """The jobs: schedule, next due time, running and recent runs; and who holds the lease."""
    from tableforge.services.maintenance import status

    report = _with_runtime(lambda rt: status.status(rt, runs))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    out = Console()
    lease = report["lease"]
    holder = lease["holder"] or ("the running server" if lease["backend"] == "process" else "nobody")
    out.print(f"lease ({lease['backend']}): {holder}" + (f", {lease['error']}" if lease.get("error") else ""))
    table = Table(title="maintenance jobs")
    for col in ("job", "schedule", "next due", "running", "last run", "last success"):
        table.add_column(col, overflow="fold")
    for job in report["jobs"]:
        running = job["running"]
        table.add_row(job["name"], job["schedule"], job["next_due"] or "-",
                      f"since {running['started_at']} on {running['instance_id']}" if running else "-",
                      _run_text(job["last_run"]), _run_text(job["last_success"]))
    out.print(table)
    recent = Table(title="recent runs")
    for col in ("id", "job", "trigger", "instance", "started", "seconds", "outcome", "summary / error"):
        recent.add_column(col, overflow="fold")
    for job in report["jobs"]:
        for r in job["recent"]:
            recent.add_row(str(r["id"]), r["job"], r["trigger"], r["instance_id"], r["started_at"],
                           "" if r["duration_seconds"] is None else f"{r['duration_seconds']:.3f}", r["outcome"],
                           r["error"] or json.dumps(r["summary"]) if r["summary"] or r["error"] else "")
    out.print(recent)


def _run_text(run: dict[str, Any] | None) -> str:
    if run is None:
        return "never"
    took = f" in {run['duration_seconds']:.2f}s" if run["duration_seconds"] is not None else ""
    return f"{run['outcome']} at {run['started_at']}{took}"


@maintenance_app.command("run")
def run_job(job: Annotated[str, typer.Argument(help=f"One of: {', '.join(JOB_NAMES)}.")],
            as_json: JsonOpt = False) -> None:
    """Run a job now, in this process, and wait for it (exit 1 if it fails or is already running)."""
    if job not in JOB_NAMES:
        raise fail(f"no job named {job!r}; the jobs are: {', '.join(JOB_NAMES)}")
    settings = load_settings()
    if job == "warm_catalog" and not settings.scale_out:
        raise fail("warm_catalog fills a cache, and the embedded server's cache lives in its own process: "
                   "run it there with POST /api/admin/maintenance/warm_catalog/run")
    from tableforge.services.maintenance import runner, status

    me = f"cli:{socket.gethostname()}-{os.getpid()}"
    run = _with_runtime(lambda rt: runner.run_now(rt, job, trigger="cli", instance_id=me),
                        start_cache=job == "warm_catalog")
    if run is None:
        raise fail(f"{job} is already running (see `tableforge maintenance list`)", code=1)
    shaped = status.shape(run) or {}
    if as_json:
        typer.echo(json.dumps(shaped, indent=2))
    else:
        color = "green" if shaped["outcome"] == "ok" else "red"
        say(f"{job} in {shaped['duration_seconds']:.3f} s" + (f": {shaped['error']}" if shaped["error"] else ""),
            color, prefix=shaped["outcome"])
        typer.echo(json.dumps(shaped["summary"], indent=2))
    if shaped["outcome"] != "ok":
        raise typer.Exit(1)
