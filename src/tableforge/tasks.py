"""Stopping asyncio tasks for certain (below every layer, like config.py).

On Python 3.11, `asyncio.wait_for` returns its inner result and drops a cancellation that arrives in
the same loop turn as that result (CPython gh-86296, fixed in 3.12 by the rewrite over
`asyncio.timeout`). redis-py wraps every socket write of a client with a `socket_timeout` in
`wait_for`, so a heartbeat or probe loop cancelled while it writes can carry on as if nothing had
happened, and a plain `task.cancel(); await task` then waits forever: a test teardown that never
ended, an instance that would not stop. `stop` cancels again until each task has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

# Long enough for a task's own clean-up on cancellation (a goodbye to Redis, a run recorded as
# interrupted) to finish before it is cancelled again; short enough that a lost cancellation costs
# a stop no more than this.
RECANCEL_AFTER = 1.0


async def stop(tasks: Iterable[asyncio.Future[Any] | None], *, recancel_after: float = RECANCEL_AFTER) -> None:
    """Cancel the tasks and wait until every one has ended, cancelling again any that carried on.
    Their results and exceptions are retrieved and dropped (the caller is stopping them)."""
    wanted = [t for t in tasks if t is not None]
    pending = {t for t in wanted if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=recancel_after)
    await asyncio.gather(*wanted, return_exceptions=True)
