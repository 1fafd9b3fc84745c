"""Tier 3, the HTTP edge: validators and caching headers, as pure functions.

Routes set these headers; browsers and any CDN/Varnish in front do the caching. Member data
must be revalidated every time (`private, no-cache`) because permissions decide who sees it;
the public catalog may be served stale by a shared cache for a short while; uploaded assets
are content-addressed, so they never change under one URL.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, Final

import orjson
from starlette.responses import Response

CACHE_PRIVATE: Final = "private, no-cache"
CACHE_PUBLIC_CATALOG: Final = "public, max-age=0, s-maxage=60, stale-while-revalidate=300"
CACHE_IMMUTABLE: Final = "public, max-age=31536000, immutable"
CACHE_NO_STORE: Final = "no-store"

SURROGATE_KEY_HEADER: Final = "Surrogate-Key"
XKEY_HEADER: Final = "xkey"

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE ; etagc may include commas (RFC 9110 §8.8.3),
# so the list is tokenized by tags, not split on commas.
_ENTITY_TAG = re.compile(r'\s*(W/)?("[^"]*")\s*(?:,|$)')
_SURROGATE_KEY = re.compile(r"^[\x21-\x7e]+$")


def etag_for(body: bytes) -> str:
    """A strong ETag: 128 bits of BLAKE2b over the exact bytes sent, quoted."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _opaque(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """True when a GET/HEAD may answer 304 for `etag` given the request's If-None-Match.

    Uses the weak comparison RFC 9110 prescribes for If-None-Match: `W/"x"` matches `"x"`.
    `*` matches any current representation. A malformed header never matches, so the client
    simply gets the full body.
    """
    if if_none_match is None:
        return False
    header = if_none_match.strip()
    if not header:
        return False
    if header == "*":
        return True
    wanted = _opaque(etag)
    pos = 0
    while pos < len(header):
        match = _ENTITY_TAG.match(header, pos)
        if match is None or match.end() == pos:
            return False
        if match.group(2) == wanted:
            return True
        pos = match.end()
    return False


def cache_control(
    *,
    public: bool = False,
    private: bool = False,
    no_cache: bool = False,
    no_store: bool = False,
    max_age: int | None = None,
    s_maxage: int | None = None,
    stale_while_revalidate: int | None = None,
    stale_if_error: int | None = None,
    immutable: bool = False,
) -> str:
    """Build a Cache-Control value from directives, in a stable order."""
    if public and private:
        raise ValueError("a response cannot be both public and private")
    parts: list[str] = []
    if public:
        parts.append("public")
    if private:
        parts.append("private")
    if no_cache:
        parts.append("no-cache")
    if no_store:
        parts.append("no-store")
    for name, seconds in (
        ("max-age", max_age),
        ("s-maxage", s_maxage),
        ("stale-while-revalidate", stale_while_revalidate),
        ("stale-if-error", stale_if_error),
    ):
        if seconds is not None:
            if seconds < 0:
                raise ValueError(f"{name} must not be negative")
            parts.append(f"{name}={seconds}")
    if immutable:
        parts.append("immutable")
    return ", ".join(parts)


def surrogate_keys(*keys: str) -> str:
    """The Surrogate-Key header value: unique keys, in order, space separated.

    A CDN purges every response tagged with a key, so a catalog write purges `catalog`
    instead of enumerating URLs. Keys are visible ASCII without spaces, which is what
    Fastly/Varnish xkey accept.
    """
    seen: dict[str, None] = {}
    for key in keys:
        if not _SURROGATE_KEY.match(key):
            raise ValueError(f"invalid surrogate key {key!r}")
        seen.setdefault(key, None)
    return " ".join(seen)


def conditional_json(
    content: Any,
    *,
    if_none_match: str | None,
    cache_control: str,
    etag: str | None = None,
    keys: Sequence[str] = (),
    status_code: int = 200,
) -> Response:
    """A JSON response with validators and caching headers, or a bodiless 304 when the request's
    If-None-Match already names it. Without `etag` the ETag is a hash of the exact bytes sent.

    `keys` become both `Surrogate-Key` (Fastly and most CDNs) and `xkey` (Varnish vmod_xkey),
    so one purge of a key drops every response tagged with it.
    """
    body = orjson.dumps(content)
    tag = etag or etag_for(body)
    headers = {"ETag": tag, "Cache-Control": cache_control}
    if keys:
        value = surrogate_keys(*keys)
        headers[SURROGATE_KEY_HEADER] = value
        headers[XKEY_HEADER] = value
    if status_code == 200 and not_modified(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    return Response(body, status_code=status_code, headers=headers, media_type="application/json")


def not_modified_response(etag: str, cache_control: str, keys: Sequence[str] = ()) -> Response:
    """The 304 for a representation identified by `etag` without building its body."""
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if keys:
        value = surrogate_keys(*keys)
        headers[SURROGATE_KEY_HEADER] = value
        headers[XKEY_HEADER] = value
    return Response(status_code=304, headers=headers)
