"""Running the load generator's event loop: uvloop where it is installed (a server dependency on Linux).

The load generator shares the machine with what it measures; on the default selector loop it spent most of
its CPU in the loop itself (docs/benchmarks.md, "session 8"), CPU the instance under test did not get.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed wherever the server runs
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
