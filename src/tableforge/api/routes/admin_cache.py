"""Admin: the cache's counters and pattern invalidation (PROTOCOL.md: /api/admin/cache/*)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tableforge.api import schemas as S
from tableforge.api.deps import AdminDep, RuntimeDep
from tableforge.api.responses import JSON

router = APIRouter(prefix="/api/admin/cache")

# Visible ASCII without backslash: the same glob means the same thing to fnmatch (tier 1) and
# Redis SCAN MATCH (tier 2), whose escaping and negation syntax differ.
_PATTERN = re.compile(r"^[\x21-\x5b\x5d-\x7e]+$")


class InvalidateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pattern: str = Field(min_length=1, max_length=256)

    @field_validator("pattern")
    @classmethod
    def _check(cls, v: str) -> str:
        if not _PATTERN.match(v):
            raise ValueError("use visible ASCII without spaces or backslashes, e.g. 'system:*' or 'catalog:*'")
        depth = 0
        for ch in v:
            if ch == "[":
                if depth:
                    raise ValueError("character classes ([...]) cannot nest")
                depth = 1
            elif ch == "]":
                if not depth:
                    raise ValueError("']' without '['")
                depth = 0
        if depth:
            raise ValueError("'[' without ']'")
        if "[]" in v:
            raise ValueError("empty character class")
        return v


def _tiers(kinds: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Hits and misses per tier for each kind. A lookup that misses tier 1 either joins another
    caller's load (coalesced), hits Redis, or loads: Redis misses are the loads."""
    out: dict[str, dict[str, Any]] = {}
    for kind, k in kinds.items():
        memory_misses = k["requests"] - k["memory_hits"]
        redis_lookups = memory_misses - k["coalesced"]
        out[kind] = {
            "memory": {"hits": k["memory_hits"], "misses": memory_misses,
                       "hit_rate": k["memory_hits"] / k["requests"] if k["requests"] else 0.0},
            "redis": {"hits": k["redis_hits"], "misses": redis_lookups - k["redis_hits"],
                      "hit_rate": k["redis_hits"] / redis_lookups if redis_lookups > 0 else 0.0},
            "hit_rate": k["hit_rate"],
        }
    return out


@router.get("/stats", responses=S.responses(S.CacheStatsOut))
async def stats(_admin: AdminDep, rt: RuntimeDep) -> JSON:
    """This instance's counters (every instance keeps its own; Prometheus sums the fleet), and
    the shared Redis tier's memory and key count (INFO + SCAN)."""
    local = rt.cache.stats()
    return JSON({
        "instance_id": local["instance_id"],
        "mode": local["mode"],
        "healthy": local["healthy"],
        "requests": local["requests"],
        "hit_rate": local["hit_rate"],
        "tiers": _tiers(local["kinds"]),
        "cache": local,
        "redis": await rt.cache.redis_info(),
    })


@router.post("/invalidate", responses=S.responses(S.InvalidatedOut))
async def invalidate(body: InvalidateIn, _admin: AdminDep, rt: RuntimeDep) -> JSON:
    """Delete every key matching a glob on every tier and instance (SCAN + UNLINK, never KEYS).
    Keys are the cache's own names: `system:*`, `catalog:*`, `session:*`, `asset:*`..."""
    removed = await rt.cache.invalidate_pattern(body.pattern)
    return JSON({"pattern": body.pattern, "removed": removed, "instance_id": rt.settings.instance_id})
