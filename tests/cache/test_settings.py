"""CacheSettings: built from the app's Settings in one place; overrides name its own fields."""

from __future__ import annotations

import dataclasses

import pytest

from tableforge.cache import KIND_TTLS, CacheSettings
from tableforge.config import Settings


def test_from_settings_maps_the_cache_settings() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:6379/9", instance_id="i-1", cache_max_size=77,
                        cache_default_ttl=12.5, cache_eviction="ttl", cache_serialization="json",
                        cache_compression=False)
    built = CacheSettings.from_settings(settings, prefix="tableforge:ns:cache:", lock_wait=0.5)
    assert (built.redis_url, built.instance_id, built.max_size, built.default_ttl, built.eviction) == (
        "redis://127.0.0.1:6379/9", "i-1", 77, 12.5, "ttl")
    assert (built.serialization, built.compression, built.prefix, built.lock_wait) == (
        "json", False, "tableforge:ns:cache:", 0.5)
    assert dict(built.kind_ttls) == dict(KIND_TTLS) and built.ttl_cap() == 7200.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.max_size = 1  # type: ignore[misc]


def test_an_unknown_override_is_refused() -> None:
    with pytest.raises(TypeError):
        CacheSettings.from_settings(Settings(), max_sise=1)
