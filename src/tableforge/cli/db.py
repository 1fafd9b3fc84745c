"""`tableforge db stats|slow-queries|optimize`: the database reports as rich tables.

rich and the database layer are imported by the commands, not by this module: the `tableforge`
entry point loads it for every command, `serve` included."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tableforge.cli.common import load_settings

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from tableforge.db.engine import Database

db_app = typer.Typer(help="Database reports and maintenance.", no_args_is_help=True)


@cache
def _out() -> Console:
    from rich.console import Console

    return Console()


def _run(job: Callable[[Database], Awaitable[Any]]) -> Any:
    from tableforge.db.engine import Database

    settings = load_settings()

    async def go() -> Any:
        db = Database(settings)
        try:
            return await job(db)
        finally:
            await db.dispose()

    return asyncio.run(go())


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold", justify="right" if rows and isinstance(rows[0].get(col), int | float)
                         else "left")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    return table


def _unavailable(report: dict[str, Any]) -> None:
    out = _out()
    out.print(f"[yellow]not available[/yellow]: {report.get('reason')}")
    if report.get("enable"):
        out.print(f"enable: {report['enable']}")


@db_app.command("stats")
def stats() -> None:
    """Table statistics: rows, dead rows, scans, last vacuum/analyze (PostgreSQL) or rows and size (SQLite)."""
    from tableforge.db import reports

    out = _out()
    report = _run(reports.table_stats)
    cols = (["table", "live_rows", "dead_rows", "dead_ratio", "seq_scan", "idx_scan", "total_bytes",
             "last_vacuum", "last_autovacuum", "last_analyze"] if report["backend"] == "postgresql"
            else ["table", "live_rows", "total_bytes"])
    out.print(_table(f"tables ({report['backend']})", report["tables"], cols))
    if report.get("not_available"):
        out.print(f"[yellow]not available[/yellow]: {report['not_available']}")


@db_app.command("slow-queries")
def slow_queries(limit: Annotated[int, typer.Option(min=1, max=100)] = 20) -> None:
    """The statements with the most total execution time (pg_stat_statements)."""
    from tableforge.db import reports

    out = _out()
    report = _run(lambda db: reports.slow_queries(db, limit=limit))
    if not report["available"]:
        _unavailable(report)
        return
    out.print(_table("slow queries (pg_stat_statements, by total time)", report["queries"],
                     ["calls", "total_exec_time_ms", "mean_exec_time_ms", "max_exec_time_ms", "rows",
                      "cache_hit_ratio", "query"]))


@db_app.command("optimize")
def optimize() -> None:
    """ANALYZE the app's tables, VACUUM (ANALYZE) those with over 10% dead rows, and print index advice."""
    from tableforge.db import reports

    out = _out()
    report = _run(reports.optimize)
    out.print(_table("maintenance", report["actions"], ["table", "action", "dead_ratio", "status", "error"]))
    advice = report["advice"]
    if not advice.get("available"):
        _unavailable(advice)
        return
    out.print(_table("tables read mostly by sequential scans", advice["seq_scan_heavy"],
                     ["table", "seq_scan", "idx_scan", "avg_rows_per_seq_scan", "live_rows"]))
    out.print(_table("unused indexes", advice["unused_indexes"], ["table", "index", "bytes", "backs_foreign_key"]))
    out.print(_table("foreign keys without an index", advice["unindexed_foreign_keys"],
                     ["table", "constraint", "columns", "advice"]))
    cands = advice["candidates"]
    if cands.get("available"):
        out.print(_table("candidate indexes (HypoPG, by estimated cost saved x calls)", cands["ranked"],
                         ["index", "cost_saved_x_calls", "seq_scan_heavy"]))
    else:
        out.print("candidate ranking:")
        _unavailable(cands)
