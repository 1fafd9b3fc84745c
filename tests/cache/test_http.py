"""HTTP edge helpers: ETags, If-None-Match, Cache-Control and Surrogate-Key values."""

from __future__ import annotations

import pytest

from tableforge.cache.http import (
    CACHE_IMMUTABLE,
    CACHE_PRIVATE,
    CACHE_PUBLIC_CATALOG,
    cache_control,
    etag_for,
    not_modified,
    surrogate_keys,
)


def test_etag_is_strong_quoted_and_depends_on_every_byte() -> None:
    tag = etag_for(b"hello")
    assert tag.startswith('"') and tag.endswith('"') and not tag.startswith("W/")
    assert tag == etag_for(b"hello")
    assert tag != etag_for(b"hello!")
    assert len(tag) == 34


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ('"abc"', True),
        ('W/"abc"', True),
        ('"zzz"', False),
        ('"zzz", "abc"', True),
        ('"zzz",W/"abc"  ', True),
        ("*", True),
        (" * ", True),
        ("abc", False),  # unquoted: malformed, never matches
        ('"zzz", abc', False),
        ('"a,b"', False),
    ],
)
def test_not_modified(header: str | None, expected: bool) -> None:
    assert not_modified(header, '"abc"') is expected


def test_not_modified_with_weak_current_tag_and_commas_inside_tags() -> None:
    assert not_modified('"abc"', 'W/"abc"')
    assert not_modified('"x", "a,b"', '"a,b"')


def test_cache_control_constants() -> None:
    assert CACHE_PRIVATE == "private, no-cache"
    assert CACHE_PUBLIC_CATALOG == "public, max-age=0, s-maxage=60, stale-while-revalidate=300"
    assert CACHE_IMMUTABLE == "public, max-age=31536000, immutable"


def test_cache_control_builder() -> None:
    assert cache_control(public=True, max_age=0, s_maxage=60, stale_while_revalidate=300) == (CACHE_PUBLIC_CATALOG)
    assert cache_control(public=True, max_age=31536000, immutable=True) == CACHE_IMMUTABLE
    assert cache_control(private=True, no_cache=True) == CACHE_PRIVATE
    with pytest.raises(ValueError):
        cache_control(public=True, private=True)
    with pytest.raises(ValueError):
        cache_control(max_age=-1)


def test_surrogate_keys() -> None:
    assert surrogate_keys("catalog", "system:5e", "catalog") == "catalog system:5e"
    assert surrogate_keys() == ""
    for bad in ("two words", "", "tab\there"):
        with pytest.raises(ValueError):
            surrogate_keys(bad)
