"""Handing one event to a local room's sockets: each gets the frame its audience receives.

The hub (hub.py) decides *when* an event is delivered (version order, gap fill, resync); this decides
*what* each socket gets. An event for everyone (the usual `token.moved` of a room without hidden
information) is one frame for all, as before. Otherwise a `Picker` (domain/audience.py) chooses per
socket among the event's bodies and `room.skip`, memoised per audience, so each body is decoded once
and each socket costs a dict lookup: one encoded frame per audience, never one per socket.

A socket that is joining (PENDING) has its events held as envelopes, and its frame is picked when its
ack is queued, with the view it joined with.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from tableforge.domain.audience import Picker, View, selector_for
from tableforge.observability import metrics
from tableforge.realtime.connection import CLOSE_SLOW_CONSUMER, Connection
from tableforge.realtime.envelope import Envelope
from tableforge.realtime.local_room import PENDING, LocalRoom, RoomObserver

Held = Envelope | str  # what a joining socket waits for: an event, or a frame of the hub's own (room.resync)


def picker(room_id: str, env: Envelope) -> Picker | None:
    """None for an event everyone receives as it is (the fast path)."""
    if env.audience is None and not env.variants:
        return None
    return Picker(room_id, env.version, env.body.decode(), env.routing)


def frame_of(room_id: str, held: Held, view: View) -> str:
    if isinstance(held, str):
        return held
    pick = picker(room_id, held)
    return held.body.decode() if pick is None else pick.frame(view)


def deliver(room: LocalRoom, env: Envelope, instance_id: str, pending_limit: int,
            observers: Iterable[RoomObserver], skip: set[Connection] | None = None) -> None:
    """Deliver stored event `env` (the room's `expected` version) to every member but its sender's
    socket and `skip`; hold it for joining sockets."""
    version = env.version
    room.expected = version + 1
    sender = env.sender
    prefix = instance_id + "/"
    own_conn = sender[len(prefix):] if sender.startswith(prefix) else None
    text = env.body.decode()
    audience = env.audience
    # The usual event reaches every member as it is (everyone, or an audience all local members are
    # in): one frame for all, no choosing per socket.
    pick = None if audience is None or (not env.variants and room.all_match(audience)) else Picker(
        room.room_id, version, text, env.routing)
    for observer in observers:
        observer.delivered(room.room_id, version, text, audience, env.variants)
    sent = 0
    if pick is None and skip is None:  # the hot path: one frame for everyone, as before audiences
        for conn, cursor in room.members.items():
            if cursor == PENDING:
                _hold(room, conn, version, env, pending_limit)
            elif version > cursor and conn.conn_id != own_conn:
                conn.send(text)
                sent += 1
    else:
        views = room.views
        for conn, cursor in room.members.items():
            if cursor == PENDING:
                _hold(room, conn, version, env, pending_limit)
            elif version > cursor and conn.conn_id != own_conn and (skip is None or conn not in skip):
                conn.send(text if pick is None else pick.frame(views[conn]))
                sent += 1
    if sent:
        metrics.WS_OUT_BY_KIND["event"].inc(sent)
    metrics.DELIVERY_SECONDS.observe(max(0.0, time.time() - env.ts_ms / 1000))


def _hold(room: LocalRoom, conn: Connection, version: int, env: Envelope, limit: int) -> None:
    held = room.pending[conn]
    if len(held) >= limit:
        conn.close(CLOSE_SLOW_CONSUMER, "too many events while joining")
    else:
        held.append((version, env))


def fan_out_ephemeral(room: LocalRoom, env: Envelope, instance_id: str) -> None:
    """A preview or pointer: to the members its audience selects (no room.skip: it has no version)."""
    prefix = instance_id + "/"
    own_conn = env.sender[len(prefix):] if env.sender.startswith(prefix) else None
    text = env.body.decode()
    selector = None if env.audience is None or room.all_match(env.audience) else selector_for(env.audience)
    sent = 0
    views = room.views
    for conn, cursor in room.members.items():
        if cursor == PENDING or conn.conn_id == own_conn:
            continue
        if selector is not None and not selector.matches(views[conn]):
            continue
        if conn.send(text, ephemeral=True):
            sent += 1
    if sent:
        metrics.WS_OUT_BY_KIND["ephemeral"].inc(sent)
