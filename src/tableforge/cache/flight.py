"""In-process coordination of loads: single flight, and noticing invalidations mid-load.

Both maps hold an entry only while a load runs, so their size is bounded by the number of
concurrent loads, not by the key space.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Iterator
from contextlib import contextmanager
from fnmatch import fnmatchcase
from functools import partial
from typing import Any

from tableforge import tasks


class SingleFlight:
    """At most one load task per key; later callers await the same task.

    The load runs in its own task and callers await it through `asyncio.shield`, so a caller
    that is cancelled (a client disconnecting) does not cancel the load others are waiting for.
    An invalidated key is *forgotten* rather than cancelled: callers already waiting get the
    result they asked for, and a caller arriving after the invalidation starts a fresh load
    instead of joining one that may have read the old data.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, key: str) -> bool:
        return key in self._tasks

    def get(self, key: str) -> asyncio.Task[Any] | None:
        return self._tasks.get(key)

    def start(self, key: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks[key] = task
        task.add_done_callback(partial(self._done, key))
        return task

    def _done(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have been cancelled

    def forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._tasks.pop(key, None)

    def forget_matching(self, pattern: str) -> None:
        self.forget([key for key in self._tasks if fnmatchcase(key, pattern)])

    def forget_all(self) -> None:
        self._tasks.clear()

    async def cancel_all(self) -> None:
        loads = list(self._tasks.values())
        self._tasks.clear()
        await tasks.stop(loads)


class Watch:
    """The keys one load is filling, and which of them were invalidated before it finished."""

    __slots__ = ("_stale", "all_stale", "keys")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self._stale: set[str] | None = None
        self.all_stale = False

    def mark(self, key: str) -> None:
        if self._stale is None:
            self._stale = set()
        self._stale.add(key)

    def is_stale(self, key: str) -> bool:
        return self.all_stale or (self._stale is not None and key in self._stale)


class StaleGuard:
    """Tells a finishing load whether its keys were invalidated while it ran.

    A load that read the database before a write must not store its result after that write's
    invalidation, or the old value would outlive the invalidation. Its caller still gets the
    value (the read overlapped the write), but no tier keeps it.
    """

    def __init__(self) -> None:
        self._by_key: dict[str, set[Watch]] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    @contextmanager
    def watch(self, keys: Iterable[str]) -> Iterator[Watch]:
        watch = Watch(tuple(keys))
        for key in watch.keys:
            self._by_key.setdefault(key, set()).add(watch)
        try:
            yield watch
        finally:
            for key in watch.keys:
                watchers = self._by_key.get(key)
                if watchers is not None:
                    watchers.discard(watch)
                    if not watchers:
                        del self._by_key[key]

    def invalidate(self, keys: Iterable[str]) -> None:
        for key in keys:
            for watch in self._by_key.get(key, ()):
                watch.mark(key)

    def invalidate_matching(self, pattern: str) -> None:
        self.invalidate([key for key in self._by_key if fnmatchcase(key, pattern)])

    def invalidate_all(self) -> None:
        for watchers in self._by_key.values():
            for watch in watchers:
                watch.all_stale = True
