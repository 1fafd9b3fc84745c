"""A redis-py client whose time limit is one deadline per round trip (below every layer, like tasks.py).

With `socket_timeout` set, redis-py (5 to 8, on Python 3.11) writes each command through `asyncio.wait_for`,
a new task every time, and reads each reply under a timeout block of its own. That costs more CPU than the
commands: measured with uvloop on this project's Redis (`bench/bench_redis_client.py`, medians of 5 rounds),
this client takes 0.86 of that CPU per GET and 0.68 per pipeline of 20 PUBLISH. And Python 3.11's `wait_for`
can drop a cancellation that arrives with its result (see tasks.py): a heartbeat loop that went on after it
was stopped.

`TimedRedis` keeps the same limit with one `asyncio.timeout` around each round trip instead: a command with
its reply, or a whole pipeline. The pool's connections have no `socket_timeout` of their own. A round trip
that takes longer drops its connection and raises redis-py's own `TimeoutError`, as redis-py would.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import TimeoutError as RedisTimeoutError


async def _timed(limit: float | None, conn: Any, call: Any) -> Any:
    try:
        async with asyncio.timeout(limit):
            return await call
    except TimeoutError:  # the builtin: asyncio.timeout's (redis-py raises its own, a RedisError)
        await conn.disconnect(nowait=True)
        raise RedisTimeoutError(f"Redis did not answer within {limit} s") from None


class TimedPipeline(Pipeline):
    io_timeout: float | None = None

    async def _execute_pipeline(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        return await _timed(self.io_timeout, connection,
                            super()._execute_pipeline(connection, commands, raise_on_error))

    async def _execute_transaction(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        return await _timed(self.io_timeout, connection,
                            super()._execute_transaction(connection, commands, raise_on_error))


class TimedRedis(Redis):
    """`Redis`, each round trip within `io_timeout` seconds (None: no limit). Build its pool with
    `socket_timeout=None`: the limit is this client's."""

    def __init__(self, *args: Any, io_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.io_timeout = io_timeout

    async def _send_command_parse_response(self, conn: Any, command_name: Any, *args: Any, **options: Any) -> Any:
        return await _timed(self.io_timeout, conn,
                             super()._send_command_parse_response(conn, command_name, *args, **options))

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> TimedPipeline:
        pipe = TimedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.io_timeout = self.io_timeout
        return pipe
