"""Group commit for `token.move` on PostgreSQL: the concurrent moves of one instance in one statement.

Most of what PostgreSQL spends on a one-statement move is per statement and per commit (protocol,
executor start-up, snapshot, the commit record and its WAL flush), not per row. So while one batch
is being written, the moves that arrive queue here, and the next batch writes all of them (up to
`MAX_BATCH`) in one statement, one commit: nothing waits for a timer, a lone move is written at
once, and batches only form when moves arrive faster than the database commits them. Each move
still gets its ack only after the statement that stored it has committed (durable before the ack,
synchronous_commit untouched).

The statement (`_BATCH_SQL`) is the one-move statement of db/pg_event_log.py over arrays:
- `ok`: the moves whose token passes its guards in the statement's snapshot, numbered per room in
  arrival order (`k`), with the room's count (`n`); the others get no row back and take the
  fallback one by one (which applies them if they became valid, or gives the precise error).
- `lk` locks the batch's rooms in id order before anything is changed: two batches (of this or
  another instance) always take room locks in the same order, so they cannot deadlock, and the
  transactional path takes one room at a time. Token rows are only ever locked under their room's
  lock. (`SELECT … ORDER BY … FOR UPDATE` locks in the sorted order: the lock sits above the sort.)
- `room` bumps each room's version by its `n` (under the lock, so on the latest row), the tokens are
  updated with their guards re-checked under the locks, and event k of a room gets version
  `base + k`. A token that failed its guards after the snapshot leaves its event's body NULL: the
  NOT NULL constraint aborts the whole statement, nothing is stored, no version is skipped, and every
  move of the batch is retried alone.
- Undo (db/undo_log.py): `ok` also reads each token's position and version in the snapshot, and
  its event stores them as the undo entry (for `undo_by`, the mover; NULL: not undoable), encoded
  as db/undo_entry.Entry encodes it. `tok` only moves a token whose version is still that one, so a
  change that got to the token after the snapshot aborts the statement as above: never a stale entry.
One move per token per batch (a token's second move waits for the next batch): an UPDATE changes a
row once, and the second move's `if_version` is the first one's result.

Bounded: at most `MAX_PENDING` moves wait (beyond that a move skips the queue and is written alone,
as before), and `MAX_INFLIGHT` batches are written at a time. Metrics: the batch sizes and the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tableforge.observability import metrics

_SEEN = "t.scene_id = {ps} AND NOT t.hidden AND NOT t.fogged AND NOT t.asset_hidden"

BATCH_SQL = f"""
WITH m AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::float8[], $4::float8[], $5::text[], $6::text[], $7::text[],
                         $8::uuid[], $9::int8[], $10::uuid[])
        WITH ORDINALITY AS m(room_id, token_id, x, y, head, mid, tail, owner, ifv, undo_by, ord)
), ok AS (
    SELECT m.*, t.x AS ox, t.y AS oy, t.version AS ov, row_number() OVER (PARTITION BY m.room_id ORDER BY m.ord) AS k,
           count(*) OVER (PARTITION BY m.room_id) AS n
    FROM m JOIN board_tokens t ON t.id = m.token_id AND t.room_id = m.room_id
           JOIN game_rooms g ON g.id = m.room_id
    WHERE (m.owner IS NULL OR (t.owner_id = m.owner AND {_SEEN.format(ps="g.players_scene_id")}))
      AND (m.ifv IS NULL OR t.version = m.ifv)
), lk AS (
    SELECT g.id FROM game_rooms g WHERE g.id IN (SELECT room_id FROM ok) ORDER BY g.id FOR UPDATE
), room AS (
    UPDATE game_rooms g SET version = g.version + c.n
    FROM (SELECT DISTINCT ok.room_id, ok.n FROM ok) c JOIN lk ON lk.id = c.room_id
    WHERE g.id = c.room_id AND g.is_active AND g.fog_free
    RETURNING g.id, g.version - c.n AS base, g.players_scene_id AS ps
), tok AS (
    UPDATE board_tokens t SET x = ok.x, y = ok.y, version = t.version + 1
    FROM ok JOIN room ON room.id = ok.room_id
    WHERE t.id = ok.token_id AND t.room_id = ok.room_id
      AND (ok.owner IS NULL OR (t.owner_id = ok.owner AND {_SEEN.format(ps="room.ps")}))
      AND (ok.ifv IS NULL OR t.version = ok.ifv) AND t.version = ok.ov
    RETURNING ok.ord, room.base + ok.k AS rv, t.version AS tv, t.scene_id AS sid, ({_SEEN.format(ps="room.ps")}) AS seen
), ev AS (
    INSERT INTO room_events (room_id, version, body, audience, undo_by, undo)
    SELECT ok.room_id, room.base + ok.k, ok.head || (room.base + ok.k) || ok.mid || tok.tv || ok.tail,
           'g@' || tok.sid::text || CASE WHEN tok.seen THEN ';p' ELSE '' END,
           ok.undo_by, json_build_object('type', 'token.moved', 'token_id', ok.token_id::text, 'v', tok.tv,
                                         'b', tok.tv - 1, 'prior', json_build_object('x', ok.ox, 'y', ok.oy))::text
    FROM ok JOIN room ON room.id = ok.room_id LEFT JOIN tok ON tok.ord = ok.ord
)
SELECT ord, rv, tv, sid, seen FROM tok"""


@dataclass(slots=True)
class Move:
    """One queued move: the statement's arguments for it, and the future its caller awaits."""

    room_id: str
    token_id: str
    x: float
    y: float
    pieces: list[str]  # the body template's head, mid, tail
    owner: str | None
    if_version: int | None
    undo_by: str | None  # who may undo it (db/undo_log.py); None: not undoable
    done: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


# Writes one batch: returns {index in the batch: (room version, token version, scene, seen)}; raises
# on failure. The statement-aborted race is the writer's to handle (it retries the moves alone).
Writer = Callable[[list[Move]], Awaitable[dict[int, tuple[int, int, str, bool]]]]


def batch_args(moves: list[Move]) -> tuple[list[Any], ...]:
    """The statement's ten arrays; moves sorted by room (arrival order kept within a room)."""
    return ([m.room_id for m in moves], [m.token_id for m in moves], [float(m.x) for m in moves],
            [float(m.y) for m in moves], [m.pieces[0] for m in moves], [m.pieces[1] for m in moves],
            [m.pieces[2] for m in moves], [m.owner for m in moves], [m.if_version for m in moves],
            [m.undo_by for m in moves])


class MoveQueue:
    """Moves waiting for the next batch, and the loop that writes them (see the module docstring)."""

    MAX_BATCH = 64
    MAX_PENDING = 4096
    MAX_INFLIGHT = 1

    def __init__(self, write: Writer) -> None:
        self._write = write
        self._pending: list[Move] = []
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()  # the running drains (a task needs a reference)

    def full(self) -> bool:
        return len(self._pending) >= self.MAX_PENDING

    async def submit(self, move: Move) -> tuple[int, int, str, bool] | None:
        """The move's (room version, token version, scene, seen) once committed; None when its
        guards refused it in the batch (the caller's fallback decides)."""
        self._pending.append(move)
        metrics.DB_MOVE_QUEUE.set(len(self._pending))
        if self._inflight < self.MAX_INFLIGHT:
            self._inflight += 1
            task = asyncio.get_running_loop().create_task(self._drain(), name="pg-move-batch")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        result: tuple[int, int, str, bool] | None = await move.done
        return result

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._take()
                metrics.DB_MOVE_BATCH.observe(len(batch))
                try:
                    results = await self._write(batch)
                except BaseException as exc:
                    for m in batch:
                        if not m.done.done():
                            m.done.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for i, m in enumerate(batch):
                    if not m.done.done():
                        m.done.set_result(results.get(i))
        finally:
            self._inflight -= 1

    def _take(self) -> list[Move]:
        """Up to MAX_BATCH moves, one per token, the rest left in arrival order; sorted by room."""
        batch: list[Move] = []
        rest: list[Move] = []
        tokens: set[str] = set()
        for m in self._pending:
            if len(batch) < self.MAX_BATCH and m.token_id not in tokens:
                tokens.add(m.token_id)
                batch.append(m)
            else:
                rest.append(m)
        self._pending = rest
        metrics.DB_MOVE_QUEUE.set(len(rest))
        batch.sort(key=lambda m: m.room_id)  # stable: a room's moves keep their arrival order
        return batch
