"""Caching: tier 1 in process, tier 2 shared (Redis), tier 3 HTTP helpers (see DESIGN.md, Caching).

The app builds one `Cache` with `build_cache(settings)`, calls `start()`/`close()` with the
app's lifespan, and reads through `get_or_load`/`get_many_or_load`; writes call `delete`,
`invalidate_pattern` or `bump_generation` after they commit.
"""

from .codec import CacheDecodeError, Codec
from .entry import Entry
from .settings import KIND_TTLS, CacheSettings
from .tiered import Cache, build_cache

__all__ = ["KIND_TTLS", "Cache", "CacheDecodeError", "CacheSettings", "Codec", "Entry", "build_cache"]
