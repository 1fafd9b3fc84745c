"""Database reports for operators: slow queries, table statistics, and optimize (ANALYZE, VACUUM,
index advice). Plain data (dicts and lists), so the admin API returns them as JSON and the CLI
draws them as tables.

Each report says what it could not give and why (SQLite keeps no per-statement or per-scan
statistics; pg_stat_statements needs `shared_preload_libraries`), instead of returning nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from tableforge.db.engine import Database
from tableforge.db.schema import metadata

APP_TABLES = tuple(t.name for t in metadata.sorted_tables)
QUERY_TEXT_CHARS = 300
DEAD_TUPLE_RATIO = 0.10          # VACUUM (ANALYZE) above this share of dead rows
SEQ_SCAN_MIN_ROWS = 1000         # a sequential scan over fewer rows is as good as an index
ENABLE_PGSS = ("add pg_stat_statements to shared_preload_libraries (ALTER SYSTEM SET shared_preload_libraries = "
               "'pg_stat_statements', or .ci/pg-setup), restart PostgreSQL, then run CREATE EXTENSION "
               "pg_stat_statements in this database as a superuser (migration 0002 does when it may)")


def _rows(result: sa.CursorResult[Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in result.mappings().all()]


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


# --- slow queries ---------------------------------------------------------------------------------

async def pg_stat_statements_state(conn: AsyncConnection) -> str | None:
    """None when the view can be read; else why not."""
    preload = (await conn.execute(sa.text("SELECT current_setting('shared_preload_libraries')"))).scalar() or ""
    if "pg_stat_statements" not in [p.strip() for p in str(preload).split(",")]:
        return "the pg_stat_statements library is not in shared_preload_libraries"
    installed = (await conn.execute(sa.text(
        "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"))).first()
    if installed is None:
        return "the pg_stat_statements extension is not created in this database"
    return None


async def slow_queries(db: Database, limit: int = 20) -> dict[str, Any]:
    """The statements with the most total execution time (PostgreSQL 13+ column names)."""
    if not db.is_postgres:
        return {"available": False, "backend": "sqlite",
                "reason": "SQLite keeps no per-statement statistics",
                "enable": "use PostgreSQL with pg_stat_statements; on SQLite the slow-statement log "
                          "(TABLEFORGE_DB_SLOW_QUERY_MS) is what there is",
                "queries": []}
    async with db.read() as conn:
        why = await pg_stat_statements_state(conn)
        if why is not None:
            return {"available": False, "backend": "postgresql", "reason": why, "enable": ENABLE_PGSS,
                    "queries": []}
        rows = _rows(await conn.execute(sa.text(
            """SELECT queryid::text AS queryid, calls, total_exec_time, mean_exec_time, max_exec_time, rows,
                      shared_blks_hit, shared_blks_read, left(query, :chars) AS query
               FROM pg_stat_statements
               WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               ORDER BY total_exec_time DESC LIMIT :limit"""), {"chars": QUERY_TEXT_CHARS, "limit": limit}))
    for r in rows:
        for key in ("total_exec_time", "mean_exec_time", "max_exec_time"):
            r[key + "_ms"] = round(float(r.pop(key)), 3)
        hits, reads = int(r.pop("shared_blks_hit")), int(r.pop("shared_blks_read"))
        r["cache_hit_ratio"] = round(hits / (hits + reads), 4) if hits + reads else None
        r["query"] = " ".join(str(r["query"]).split())
    return {"available": True, "backend": "postgresql", "source": "pg_stat_statements", "queries": rows}


# --- table statistics -----------------------------------------------------------------------------

_PG_TABLES = """
SELECT relname AS table, n_live_tup AS live_rows, n_dead_tup AS dead_rows, seq_scan, seq_tup_read,
       idx_scan, idx_tup_fetch, n_tup_ins AS inserts, n_tup_upd AS updates, n_tup_hot_upd AS hot_updates,
       n_tup_del AS deletes, last_vacuum, last_autovacuum, last_analyze, last_autoanalyze,
       pg_total_relation_size(relid) AS total_bytes
FROM pg_stat_user_tables WHERE schemaname = current_schema() ORDER BY relname
"""


async def table_stats(db: Database) -> dict[str, Any]:
    """Per-table rows, dead rows, scans and maintenance times (PostgreSQL) or rows and size (SQLite)."""
    if db.is_postgres:
        async with db.read() as conn:
            rows = _rows(await conn.execute(sa.text(_PG_TABLES)))
        for r in rows:
            live, dead = int(r["live_rows"] or 0), int(r["dead_rows"] or 0)
            r["dead_ratio"] = round(dead / (live + dead), 4) if live + dead else 0.0
            for key in ("last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze"):
                r[key] = _iso(r[key])
        return {"available": True, "backend": "postgresql", "source": "pg_stat_user_tables", "tables": rows}
    async with db.read() as conn:
        sizes = await _sqlite_sizes(conn)
        rows = []
        for name in APP_TABLES:
            count = (await conn.execute(sa.text(f'SELECT count(*) FROM "{name}"'))).scalar()
            rows.append({"table": name, "live_rows": int(count or 0), "total_bytes": sizes.get(name)})
    return {"available": True, "backend": "sqlite", "tables": rows,
            "not_available": "SQLite keeps no dead-row, scan or vacuum/analyze statistics; sizes come from "
                             "dbstat when SQLite was built with it"}


async def _sqlite_sizes(conn: AsyncConnection) -> dict[str, int]:
    """Bytes per table, its indexes included (dbstat), or {} when SQLite lacks dbstat."""
    try:
        pages = (await conn.execute(sa.text(
            "SELECT m.tbl_name AS t, sum(d.pgsize) AS bytes FROM dbstat d JOIN sqlite_master m ON m.name = d.name "
            "GROUP BY m.tbl_name"))).all()
    except DBAPIError:
        return {}
    return {str(t): int(b or 0) for t, b in pages}


# --- optimize -------------------------------------------------------------------------------------

async def optimize(db: Database) -> dict[str, Any]:
    """ANALYZE the app's tables, VACUUM (ANALYZE) those over the dead-row ratio, then index advice."""
    done = await vacuum_analyze(db)
    if not db.is_postgres:
        return done | {"advice": {
            "available": False,
            "reason": "SQLite keeps no scan or dead-row statistics, so there is nothing to base index advice or "
                      "a selective VACUUM on; ANALYZE and PRAGMA optimize were run"}}
    return done | {"advice": await index_advice(db)}


async def vacuum_analyze(db: Database) -> dict[str, Any]:
    """The maintenance half of `optimize`, without the advice (the scheduled optimize job runs it):
    PostgreSQL: ANALYZE each app table, VACUUM (ANALYZE) those over the dead-row ratio; SQLite:
    ANALYZE and PRAGMA optimize."""
    if not db.is_postgres:
        async with db.write() as conn:
            await conn.execute(sa.text("ANALYZE"))
            await conn.execute(sa.text("PRAGMA optimize"))
        return {"backend": "sqlite", "actions": [{"table": "*", "action": "analyze", "status": "ok"}]}
    before = {r["table"]: r for r in (await table_stats(db))["tables"]}
    actions: list[dict[str, Any]] = []
    # VACUUM cannot run inside a transaction block: an autocommit connection, one statement each.
    async with db.read() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for name in APP_TABLES:
            stat = before.get(name)
            vacuum = stat is not None and stat["dead_ratio"] > DEAD_TUPLE_RATIO
            sql = f'VACUUM (ANALYZE) "{name}"' if vacuum else f'ANALYZE "{name}"'
            action: dict[str, Any] = {"table": name, "action": "vacuum_analyze" if vacuum else "analyze",
                                      "dead_rows": stat["dead_rows"] if stat else None,
                                      "dead_ratio": stat["dead_ratio"] if stat else None}
            try:
                await auto.execute(sa.text(sql))
                action["status"] = "ok"
            except DBAPIError as exc:
                action["status"] = "failed"
                action["error"] = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
            actions.append(action)
    return {"backend": "postgresql", "actions": actions}


_UNUSED_INDEXES = """
SELECT s.relname AS table, s.indexrelname AS index, s.idx_scan, pg_relation_size(s.indexrelid) AS bytes,
       EXISTS (SELECT 1 FROM pg_constraint c WHERE c.contype = 'f' AND c.conrelid = i.indrelid
               AND (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(c.conkey)] @> c.conkey)
         AS backs_foreign_key
FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE s.schemaname = current_schema() AND s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
ORDER BY pg_relation_size(s.indexrelid) DESC, s.relname, s.indexrelname
"""

# A foreign key is covered when some index starts with exactly its columns (in any order).
_UNINDEXED_FKS = """
SELECT c.conrelid::regclass::text AS table, c.conname AS constraint,
       (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n)
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS columns,
       c.confrelid::regclass::text AS references
FROM pg_constraint c
WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace
  AND NOT EXISTS (
    SELECT 1 FROM pg_index i
    WHERE i.indrelid = c.conrelid
      AND (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(c.conkey)] @> c.conkey
      AND (string_to_array(i.indkey::text, ' ')::int2[])[1:cardinality(c.conkey)] <@ c.conkey)
ORDER BY 1, 2
"""


async def index_advice(db: Database) -> dict[str, Any]:
    """Index advice as data: sequential-scan-heavy tables, unused indexes, unindexed foreign keys,
    and (with HypoPG) candidate indexes ranked by the plan cost they save on the top statements."""
    tables = (await table_stats(db))["tables"]
    seq_heavy = []
    for t in tables:
        seq, idx = int(t["seq_scan"] or 0), int(t["idx_scan"] or 0)
        avg = int(t["seq_tup_read"] or 0) // seq if seq else 0
        if seq > idx and avg >= SEQ_SCAN_MIN_ROWS and int(t["live_rows"] or 0) >= SEQ_SCAN_MIN_ROWS:
            seq_heavy.append({"table": t["table"], "seq_scan": seq, "idx_scan": idx, "avg_rows_per_seq_scan": avg,
                              "live_rows": t["live_rows"],
                              "advice": "mostly read by sequential scans over many rows: index the columns its "
                                        "queries filter on (see candidates)"})
    async with db.read() as conn:
        unused = _rows(await conn.execute(sa.text(_UNUSED_INDEXES)))
        unindexed = _rows(await conn.execute(sa.text(_UNINDEXED_FKS)))
    for u in unused:
        u["advice"] = ("never used for reads, but it serves a foreign key's cascades: keep it"
                       if u["backs_foreign_key"] else
                       "never used since statistics were reset: drop it if that covers a representative period")
    for f in unindexed:
        f["columns"] = list(f["columns"] or [])
        f["advice"] = (f'CREATE INDEX ON "{f["table"]}" ({", ".join(f["columns"])}): deleting or updating a '
                       f'referenced {f["references"]} row otherwise scans the whole table')
    candidates = await rank_candidates(db, {t["table"] for t in seq_heavy})
    return {"available": True, "seq_scan_heavy": seq_heavy, "unused_indexes": unused,
            "unindexed_foreign_keys": unindexed, "candidates": candidates}


# --- Dexter-style candidate ranking ---------------------------------------------------------------

_FILTER_COLUMN = re.compile(r"\(?\b([a-z_][a-z0-9_]*)\)?(?:::[a-z ]+)?\s*(?:=|<|>|<=|>=|~~\*?|!~~)\s")
_PARAM = re.compile(r"\$(\d+)")


def _seq_scans(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """(relation, filter) of every Seq Scan with a filter, in a JSON plan."""
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Filter"):
        found.append((str(plan["Relation Name"]), str(plan["Filter"])))
    for child in plan.get("Plans", []):
        found.extend(_seq_scans(child))
    return found


async def _generic_cost(conn: AsyncConnection, query: str) -> tuple[float, dict[str, Any]] | None:
    """Estimated total cost and plan of a normalized statement (numbered placeholders: $1, $2 and so on). PostgreSQL
    15 has no EXPLAIN (GENERIC_PLAN): PREPARE it and EXPLAIN EXECUTE with NULLs under
    plan_cache_mode = force_generic_plan, which plans without looking at the values."""
    nparams = max((int(n) for n in _PARAM.findall(query)), default=0)
    savepoint = await conn.begin_nested()
    try:
        await conn.exec_driver_sql(f"PREPARE tf_advice AS {query}")
        args = f"({', '.join(['NULL'] * nparams)})" if nparams else ""
        plan = (await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) EXECUTE tf_advice{args}")).scalar()
        await conn.exec_driver_sql("DEALLOCATE tf_advice")
        await savepoint.commit()
    except DBAPIError:
        await savepoint.rollback()
        return None
    doc = plan if isinstance(plan, list) else json.loads(str(plan))
    top = doc[0]["Plan"]
    return float(top["Total Cost"]), top


async def rank_candidates(db: Database, seq_tables: set[str], top: int = 50) -> dict[str, Any]:
    """As Dexter does: take the top statements, find the columns their sequential scans filter on,
    create each candidate as a hypothetical index (HypoPG: nothing is built, only the planner sees
    it) and keep those that lower the statements' estimated cost, ranked by cost saved x calls."""
    async with db.read() as conn:
        if await pg_stat_statements_state(conn) is not None:
            return {"available": False, "reason": "needs pg_stat_statements for the statements to test",
                    "enable": ENABLE_PGSS, "ranked": []}
        have = (await conn.execute(sa.text(
            "SELECT installed_version IS NOT NULL AS installed FROM pg_available_extensions WHERE name = 'hypopg'"
        ))).first()
        if have is None:
            return {"available": False, "reason": "HypoPG is not installed on the server",
                    "enable": "apt-get install postgresql-15-hypopg (Debian), then CREATE EXTENSION hypopg",
                    "ranked": []}
        if not have[0]:
            try:
                await conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS hypopg"))  # autocommit
            except DBAPIError as exc:
                return {"available": False, "reason": f"could not create the hypopg extension: {exc.orig}",
                        "enable": "CREATE EXTENSION hypopg (as a superuser)", "ranked": []}
    statements = (await slow_queries(db, limit=top))["queries"]
    async with db.read_transaction() as conn:
        await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.exec_driver_sql("SELECT hypopg_reset()")
        baseline: list[tuple[dict[str, Any], float]] = []
        wanted: dict[tuple[str, tuple[str, ...]], set[int]] = {}
        for i, stmt in enumerate(statements):
            text = stmt["query"]
            if not re.match(r"(?is)^\s*(select|update|delete|with)\b", text) or "pg_" in text or "hypopg" in text:
                continue
            costed = await _generic_cost(conn, text)
            if costed is None:
                continue
            baseline.append((stmt, costed[0]))
            for relation, condition in _seq_scans(costed[1]):
                cols = tuple(dict.fromkeys(c for c in _FILTER_COLUMN.findall(condition) if not c.isdigit()))
                for key in {(relation, cols[:1]), (relation, cols[:2])}:
                    if key[1]:
                        wanted.setdefault(key, set()).add(i)
        ranked: list[dict[str, Any]] = []
        for (relation, cols), users_of in wanted.items():
            ddl = f'CREATE INDEX ON "{relation}" ({", ".join(cols)})'
            try:
                await conn.execute(sa.text("SELECT * FROM hypopg_create_index(:ddl)"), {"ddl": ddl})
            except DBAPIError:
                continue
            saved_total, helped = 0.0, []
            for i in users_of:
                stmt = statements[i]
                before = next(c for s, c in baseline if s is stmt)
                after = await _generic_cost(conn, stmt["query"])
                if after is not None and after[0] < before * 0.9:  # Dexter's bar: a real, not a rounding, gain
                    saved_total += (before - after[0]) * int(stmt["calls"])
                    helped.append({"queryid": stmt["queryid"], "cost_before": round(before, 2),
                                   "cost_after": round(after[0], 2)})
            await conn.exec_driver_sql("SELECT hypopg_reset()")
            if helped:
                ranked.append({"table": relation, "columns": list(cols), "index": ddl,
                               "seq_scan_heavy": relation in seq_tables,
                               "cost_saved_x_calls": round(saved_total, 2), "queries": helped})
        await conn.rollback()
    ranked.sort(key=lambda c: -float(c["cost_saved_x_calls"]))
    return {"available": True, "method": "hypopg", "ranked": ranked}
