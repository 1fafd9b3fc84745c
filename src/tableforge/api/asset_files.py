"""`GET /assets/{sha256}.{ext}` bytes: small files answered from a bounded in-process byte cache.

Starlette's FileResponse stats, opens, reads and closes the file in worker threads: four thread
hops per request, which under the load test cost more CPU (thread wake-ups, condition variables)
than the rest of the request. Assets are content-addressed and immutable, and most are small
(token images), so this keeps the bytes of files up to `asset_cache_file_bytes` in memory, at
most `asset_cache_bytes` in all (least recently used dropped first). A hit is answered with no
thread hop; a miss reads the file in one.

What a client receives does not change: each entry keeps the exact headers FileResponse would
send for the file (built by FileResponse itself on the miss), and every request still stats the
file first (as the route did before), so a deleted file is 404 at once on every instance, and a
file whose mtime or size moved (a re-upload touches it: Last-Modified changes) is read again.
Range requests and large files keep going through FileResponse.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from pathlib import Path

from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

from tableforge.observability import metrics

_HITS = metrics.ASSET_CACHE_REQUESTS.labels("hit")
_MISSES = metrics.ASSET_CACHE_REQUESTS.labels("miss")
_BYPASSES = metrics.ASSET_CACHE_REQUESTS.labels("bypass")


class CachedFile(Response):
    """A 200 with a cached body and header list: sent as is (no per-request header building)."""

    def __init__(self, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = list(raw_headers)  # a copy: layers outside may extend it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else self.body})
        if self.background is not None:
            await self.background()


class _Entry:
    __slots__ = ("body", "headers", "identity")

    def __init__(self, identity: tuple[int, int, int], body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.identity = identity
        self.body = body
        self.headers = headers


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_mtime_ns, st.st_size, st.st_ino


class AssetBytes:
    """The bounded byte cache (see the module docstring). One per process; not thread-safe (the
    event loop is its only user)."""

    def __init__(self, max_bytes: int, max_file_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_file_bytes = min(max_file_bytes, max_bytes)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.size = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= len(entry.body)

    def _put(self, key: str, entry: _Entry) -> None:
        self._drop(key)
        while self._entries and self.size + len(entry.body) > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self.size -= len(old.body)
            metrics.ASSET_CACHE_EVICTIONS.inc()
        self._entries[key] = entry
        self.size += len(entry.body)
        self._report()

    def _report(self) -> None:
        metrics.ASSET_CACHE_BYTES.set(self.size)
        metrics.ASSET_CACHE_FILES.set(len(self._entries))

    async def response(self, path: Path, st: os.stat_result, range_header: str | None, media_type: str,
                       headers: dict[str, str]) -> Response:
        """The 200 (or, for a Range request, FileResponse's 206/416) for the file at `path`, whose
        stat the caller just took."""
        if range_header is not None or st.st_size > self.max_file_bytes:
            _BYPASSES.inc()
            return FileResponse(path, media_type=media_type, headers=headers, stat_result=st)
        key = str(path)
        identity = _identity(st)
        entry = self._entries.get(key)
        if entry is not None and entry.identity == identity:
            self._entries.move_to_end(key)
            _HITS.inc()
            return CachedFile(entry.body, entry.headers)
        _MISSES.inc()
        try:
            body = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            body = None
        template = FileResponse(path, media_type=media_type, headers=headers, stat_result=st)
        if body is None or len(body) != st.st_size:
            self._drop(key)  # gone or changed between the stat and the read: FileResponse answers as before
            self._report()
            return template
        self._put(key, _Entry(identity, body, template.raw_headers))
        return CachedFile(body, template.raw_headers)
