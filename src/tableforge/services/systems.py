"""The game-system catalog: search, templates, ratings."""

from __future__ import annotations

import functools
import zlib
from typing import Any

import sqlalchemy as sa
import structlog

from tableforge.db.engine import timed
from tableforge.db.schema import game_rooms, game_systems, system_ratings
from tableforge.domain.errors import Forbidden, NotFound
from tableforge.services import replies
from tableforge.services.runtime import Runtime

CATALOG_ORDER = (
    game_systems.c.is_official.desc(),
    game_systems.c.download_count.desc(),
    game_systems.c.rating_avg.desc(),
    game_systems.c.created_at.desc(),
    game_systems.c.id,
)

_usage = (
    sa.select(sa.func.count())
    .where(game_rooms.c.game_system_id == game_systems.c.id, game_rooms.c.is_active.is_(True))
    .scalar_subquery()
    .label("usage_count")
)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


CATALOG_TAG = "catalog"  # every catalog page: bumped when what changed is not known
SEARCH_TAG = "catalog-search"  # pages with a text search: any change may add or remove a match
_BUCKETS = 64  # categories are free text: hashed to a bounded set of tags

log = structlog.get_logger("tableforge.systems")


def system_key(system_id: str) -> str:
    return f"system:{system_id}"


def edge_key(system_id: str) -> str:
    """The surrogate key (Surrogate-Key/xkey) of the system's public response at the HTTP edge."""
    return f"system-{system_id}"


def _bucket(category: str) -> str:
    return str(zlib.crc32(category.encode()) % _BUCKETS)


def page_tag(category: str | None, complexity: str | None, text: str | None) -> str:
    """The generation tag (and surrogate key) of a catalog page: a page filtered by category and
    complexity holds only systems of that category and complexity, so a change to a system
    invalidates the four filter combinations it appears under, not the whole catalog."""
    if text:
        return SEARCH_TAG
    return f"catalog-{_bucket(category) if category else 'all'}-{complexity or 'all'}"


def _affected(category: str, complexity: str) -> set[str]:
    return {page_tag(c, x, None) for c in (None, category) for x in (None, complexity)}


async def changed(rt: Runtime, system_id: str, *, before: tuple[str, str] | None = None) -> None:
    """After a committed change to a system: drop it, and the catalog pages it was or is on, on
    every instance, then at the HTTP edge (a bounded wait for the purge; never fails the write).

    `before` is the (category, complexity) the system had before the change, when the change may
    have moved it; the current ones are read here. If they cannot be read, every page goes.
    """
    await rt.cache.delete(system_key(system_id))
    tags = {SEARCH_TAG}
    try:
        async with rt.db.read() as conn:
            row = (await conn.execute(sa.select(game_systems.c.category, game_systems.c.complexity)
                                      .where(game_systems.c.id == system_id))).first()
    except Exception:
        log.warning("systems.changed_read_failed", system_id=system_id, exc_info=True)
        tags = {CATALOG_TAG}
    else:
        for values in (before, tuple(row) if row else None):
            if values is not None:
                tags |= _affected(str(values[0]), str(values[1]))
    for tag in sorted(tags):
        await rt.cache.bump_generation(tag)
    await rt.cache.purge_edge(*sorted(tags), edge_key(system_id))


async def search(rt: Runtime, *, category: str | None, complexity: str | None, text: str | None,
                 page: int, limit: int) -> dict[str, Any]:
    """Catalog pages are cached for 3 minutes under two generations: the whole catalog's and the
    page's own filter combination (`page_tag`). Every change to a system (or to its usage) bumps
    the combinations it is on, so a read after a write is never stale."""
    everything = await rt.cache.generation(CATALOG_TAG)
    mine = await rt.cache.generation(page_tag(category, complexity, text))
    key = f"catalog:{everything}.{mine}:{category or ''}:{complexity or ''}:{page}:{limit}:{text or ''}"
    return await rt.cache.get_or_load(
        key, lambda: _search(rt, category=category, complexity=complexity, text=text, page=page, limit=limit),
        kind="query")


async def _search(rt: Runtime, *, category: str | None, complexity: str | None, text: str | None,
                  page: int, limit: int) -> dict[str, Any]:
    query, params = catalog_query(category=category, complexity=complexity, text=text, page=page, limit=limit)
    async with rt.db.read() as conn, timed("catalog_search"):
        rows = (await conn.execute(query, params)).mappings().all()
    total_count = int(rows[0]["total"]) if rows else 0
    return {"systems": [replies.system(r, with_template=False) for r in rows if r["id"] is not None],
            "total": total_count, "page": page, "limit": limit}


def catalog_query(*, category: str | None, complexity: str | None, text: str | None,
                  page: int, limit: int) -> tuple[sa.Select[Any], dict[str, Any]]:
    """The catalog statement for this combination of filters, and its parameters."""
    params: dict[str, Any] = {"limit": limit, "offset": (page - 1) * limit}
    if category:
        params["category"] = category
    if complexity:
        params["complexity"] = complexity
    if text:
        params["pattern"] = _like(text)
    return _catalog_statement(bool(category), bool(complexity), bool(text)), params


@functools.cache
def _catalog_statement(by_category: bool, by_complexity: bool, by_text: bool) -> sa.Select[Any]:
    """One statement: the total, the page, and the page's usage counts. Built once per filter
    combination (eight at most) with bound parameters: building it costs more CPU than running it.

    The page comes from the catalog index in catalog order and stops at `limit` (no window
    function, which would sort every match); `total` is a plain count of the same filter; usage
    is one GROUP BY over the active rooms of the page's systems only (a partial index), joined
    back, instead of a correlated count per row. The total sits in the outer FROM, so a page past
    the end still returns one row carrying it. Booleans are compared with `= true`, not `IS TRUE`:
    PostgreSQL can use an index (and the partial index's `WHERE is_active`) only for the former."""
    where: list[sa.ColumnElement[bool]] = [game_systems.c.is_public == sa.true()]
    if by_category:
        where.append(game_systems.c.category == sa.bindparam("category"))
    if by_complexity:
        where.append(game_systems.c.complexity == sa.bindparam("complexity"))
    if by_text:
        pattern = sa.bindparam("pattern", type_=sa.String)
        where.append(sa.or_(game_systems.c.name.ilike(pattern, escape="\\"),
                            game_systems.c.description.ilike(pattern, escape="\\")))
    page_rows = (
        sa.select(*[c for c in game_systems.c if c.name != "template"])
        .where(*where).order_by(*CATALOG_ORDER)
        .limit(sa.bindparam("limit", type_=sa.Integer)).offset(sa.bindparam("offset", type_=sa.Integer))
        .cte("page")
    )
    usage = (
        sa.select(game_rooms.c.game_system_id, sa.func.count().label("n"))
        .where(game_rooms.c.is_active == sa.true(), game_rooms.c.game_system_id.in_(sa.select(page_rows.c.id)))
        .group_by(game_rooms.c.game_system_id)
        .subquery("usage")
    )
    total = sa.select(sa.func.count().label("total")).select_from(game_systems).where(*where).subquery("total")
    return (
        sa.select(total.c.total, *[c for c in page_rows.c],
                  sa.func.coalesce(usage.c.n, 0).label("usage_count"))
        .select_from(total.outerjoin(page_rows, sa.true()).outerjoin(usage, usage.c.game_system_id == page_rows.c.id))
        .order_by(page_rows.c.is_official.desc(), page_rows.c.download_count.desc(), page_rows.c.rating_avg.desc(),
                  page_rows.c.created_at.desc(), page_rows.c.id)
    )


async def _load(rt: Runtime, system_id: str) -> dict[str, Any] | None:
    """The system with its template, through the cache (2 h; dropped on every change)."""

    async def load() -> dict[str, Any] | None:
        async with rt.db.read() as conn:
            row = (
                await conn.execute(sa.select(game_systems, _usage).where(game_systems.c.id == system_id))
            ).mappings().first()
        return replies.system(row, with_template=True) if row else None

    return await rt.cache.get_or_load(system_key(system_id), load, kind="system")


async def get(rt: Runtime, system_id: str, user: dict[str, Any] | None) -> dict[str, Any]:
    system = await _load(rt, system_id)
    if system is None or not (system["is_public"] or (user and system["owner_id"] == user["id"])):
        raise NotFound("no such game system", code="system_not_found")
    return system


async def create(rt: Runtime, user: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    now = replies.now()
    values = {"id": replies.new_id(), "owner_id": user["id"], "is_official": False, "download_count": 0,
              "rating_avg": 0.0, "rating_count": 0, "created_at": now, "updated_at": now, **data}
    async with rt.db.write() as conn:
        await conn.execute(sa.insert(game_systems).values(**values))
    await changed(rt, values["id"])
    return await get(rt, values["id"], user)


async def _owned(rt: Runtime, system_id: str, user: dict[str, Any]) -> dict[str, Any]:
    system = await get(rt, system_id, user)
    if system["owner_id"] != user["id"]:
        raise Forbidden("only the system's owner may change it", code="not_owner")
    return system


async def _filters_for_update(conn: Any, system_id: str) -> tuple[str, str] | None:
    """(category, complexity) as committed, read in the writing transaction (row locked on
    PostgreSQL), so the pages the system leaves are known even under concurrent edits."""
    row = (await conn.execute(sa.select(game_systems.c.category, game_systems.c.complexity)
                              .where(game_systems.c.id == system_id).with_for_update())).first()
    return (str(row[0]), str(row[1])) if row else None


async def update(rt: Runtime, system_id: str, user: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    await _owned(rt, system_id, user)
    if data:
        async with rt.db.write() as conn:
            before = await _filters_for_update(conn, system_id)
            await conn.execute(sa.update(game_systems).where(game_systems.c.id == system_id)
                               .values(**data, updated_at=replies.now()))
        await changed(rt, system_id, before=before)
    return await get(rt, system_id, user)


async def delete(rt: Runtime, system_id: str, user: dict[str, Any]) -> None:
    await _owned(rt, system_id, user)
    async with rt.db.write() as conn:
        before = await _filters_for_update(conn, system_id)
        await conn.execute(sa.delete(game_systems).where(game_systems.c.id == system_id))
    await changed(rt, system_id, before=before)


async def rate(rt: Runtime, system_id: str, user: dict[str, Any], rating: int) -> dict[str, Any]:
    """One rating per user (a second one replaces the first); the average is recomputed in the same
    transaction from the ratings table, so concurrent raters cannot skew it."""
    await get(rt, system_id, user)
    async with rt.db.write() as conn:
        # Lock the system row first (PostgreSQL) so two raters recompute one after the other.
        await conn.execute(sa.update(game_systems).where(game_systems.c.id == system_id)
                           .values(rating_count=game_systems.c.rating_count))
        updated = await conn.execute(
            sa.update(system_ratings)
            .where(system_ratings.c.system_id == system_id, system_ratings.c.user_id == user["id"])
            .values(rating=rating, created_at=replies.now())
        )
        if updated.rowcount == 0:
            await conn.execute(sa.insert(system_ratings).values(
                system_id=system_id, user_id=user["id"], rating=rating, created_at=replies.now()))
        avg, count = (await conn.execute(
            sa.select(sa.func.avg(system_ratings.c.rating), sa.func.count())
            .where(system_ratings.c.system_id == system_id)
        )).one()
        await conn.execute(sa.update(game_systems).where(game_systems.c.id == system_id)
                           .values(rating_avg=float(avg or 0), rating_count=int(count)))
    await changed(rt, system_id)
    return {"system_id": system_id, "rating": rating, "average": round(float(avg or 0), 3),
            "rating_count": int(count)}


async def ensure_usable(conn: Any, system_id: str, user: dict[str, Any]) -> Any:
    """A room may use a public system or one of the caller's own; using it counts as a download.
    Returns the system's template (the room's first scene takes its grid)."""
    row = (await conn.execute(sa.select(game_systems.c.is_public, game_systems.c.owner_id, game_systems.c.template)
                              .where(game_systems.c.id == system_id))).first()
    if row is None or not (row[0] or str(row[1]) == user["id"]):
        raise NotFound("no such game system", code="system_not_found")
    await conn.execute(sa.update(game_systems).where(game_systems.c.id == system_id)
                       .values(download_count=game_systems.c.download_count + 1))
    return row[2]
