"""The socket side of a room: join (snapshot or missed events), leave, presence.

A socket that drops lingers: its presence lasts `presence_grace_seconds` more (services/departures.py), so
a player who is back within it was never announced as gone."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import sqlalchemy as sa

from tableforge.db.changes import SetPresence
from tableforge.db.schema import room_players
from tableforge.domain.audience import Picker, View
from tableforge.domain.errors import Conflict, NotFound, RateLimited
from tableforge.domain.roles import GM, require_gm
from tableforge.observability import metrics
from tableforge.observability.logging import get_logger
from tableforge.realtime.connection import Connection
from tableforge.services import rooms
from tableforge.services.departures import COMES_BACK, LINGERED, Departure
from tableforge.services.runtime import Runtime

log = get_logger(__name__)


def _conn_key(rt: Runtime, conn: Connection) -> str:
    return rt.hub.sender_tag(conn)


async def _presence_event(rt: Runtime, user_id: str, room_id: str, online: bool, sender: Connection | None,
                          profile: dict[str, Any] | None = None, role: str | None = None) -> None:
    """player.joined (with the joiner's role) / player.left, stored like any room event, with
    is_online kept in step.

    With the user's profile at hand (a socket's own join or leave) the event log can do it in one
    statement; without (a player whose instance died) it reads the profile."""
    stored = await rt.events.append(room_id, SetPresence(user_id, online, profile, role))
    await rooms.players_changed(rt, room_id)
    await rt.hub.publish(room_id, stored.version, stored.ts, sender, stored.body, stored.routing)


async def announce_offline(rt: Runtime, gone: list[tuple[str, str]]) -> None:
    """Players whose sockets vanished with their instance (killed, or our own clean stop)."""
    for room_id, user_id in gone:
        metrics.PRESENCE_CHANGES.labels("expired").inc()
        try:
            await _presence_event(rt, user_id, room_id, online=False, sender=None)
        except (Conflict, NotFound):
            pass  # the room was closed or deleted meanwhile
        except Exception:
            log.exception("presence.announce_failed", room_id=room_id)


async def join(rt: Runtime, conn: Connection, room_id: str, since: int | None, msg_id: Any,
               scene_id: str | None = None) -> None:
    """Attach the socket, announce the player, then queue the ack: missed events when `since` is
    still covered by the history, else a snapshot. Events after it follow in order. A GM views
    `scene_id` (default: the players' scene); the others always view the players' scene."""
    if room_id in conn.rooms:
        await leave(rt, conn, room_id, announce=False)
    if len(conn.rooms) >= rt.settings.ws_max_rooms_per_socket:
        raise RateLimited("this socket has joined too many rooms", code="too_many_rooms")
    role, players_scene = await rooms.open_membership_of(rt, room_id, conn.user_id)
    if role == GM and scene_id is not None and scene_id != players_scene:
        async with rt.db.read() as db:
            await rooms.require_scene(db, room_id, scene_id)
    view = View(role, (scene_id or players_scene) if role == GM else None, conn.user_id)
    await rt.hub.attach(conn, room_id, view)
    try:
        if await rt.presence.add(room_id, conn.user_id, _conn_key(rt, conn)):
            metrics.PRESENCE_CHANGES.labels("joined").inc()
            await _presence_event(rt, conn.user_id, room_id, online=True, sender=conn, profile=conn.profile, role=role)
        ack = await _join_ack(rt, room_id, since, view, msg_id)
    except BaseException:
        await leave(rt, conn, room_id, announce=True)
        raise
    rt.hub.activate(conn, room_id, ack[1], ack[0])


async def view_scene(rt: Runtime, conn: Connection, room_id: str, scene_id: str, msg_id: Any) -> None:
    """`scene.view`: a GM's socket switches to another scene; its ack is that scene's snapshot, and
    the scene's events follow it (those of others become room.skip)."""
    role = conn.rooms.get(room_id)
    require_gm(role)
    async with rt.db.read() as db:
        await rooms.require_scene(db, room_id, scene_id)
    view = View(GM, scene_id, conn.user_id)
    if not rt.hub.review(conn, room_id, view):
        raise NotFound("join the room first", code="not_joined")
    try:
        ack = await _join_ack(rt, room_id, None, view, msg_id)
    except BaseException:
        await leave(rt, conn, room_id, announce=True)  # never left waiting: the client joins again
        raise
    rt.hub.activate(conn, room_id, ack[1], ack[0])


async def _join_ack(rt: Runtime, room_id: str, since: int | None, view: View, msg_id: Any) -> tuple[str, int]:
    head: dict[str, Any] = {"type": "ack", "id": msg_id, "room_id": room_id, "role": view.role}
    if view.scene_id is not None:
        head["scene_id"] = view.scene_id
    if since is not None:
        current, missed = await rt.events.since(room_id, since)
        if since <= current and len(missed) == current - since:
            head["version"] = current
            # Each event as this socket would have received it live: its body, its audience's
            # variant, or room.skip.
            bodies = ",".join(row.body if row.audience is None and not row.variants
                              else Picker(room_id, row.version, row.body, row.routing).frame(view) for row in missed)
            return orjson.dumps(head).decode()[:-1] + f',"events":[{bodies}]}}', current
    async with rt.db.read() as db:
        snapshot = await rooms.read_snapshot(db, room_id, is_gm=view.is_gm, scene_id=view.scene_id,
                                             user_id=view.user_id)
    version = int(snapshot["room"]["version"])
    head["scene_id"] = snapshot["scene_id"]
    return orjson.dumps(head | {"version": version, "snapshot": snapshot}).decode(), version


async def leave(rt: Runtime, conn: Connection, room_id: str, *, announce: bool = True) -> None:
    await rt.hub.detach(conn, room_id)
    key = _conn_key(rt, conn)
    if not announce:
        await rt.presence.remove(room_id, conn.user_id, key)
        return
    # A goodbye: the user's dropped sockets stop holding them in the room too.
    for held in rt.departures.take_room(room_id, conn.user_id):
        await rt.presence.remove(room_id, conn.user_id, held)
    await _depart(rt, room_id, conn.user_id, key, conn.profile, conn)


async def _depart(rt: Runtime, room_id: str, user_id: str, conn_key: str, profile: dict[str, Any],
                  sender: Connection | None) -> bool:
    """Forget the socket's presence in the room; `player.left` if it was the user's last socket there."""
    if not await rt.presence.remove(room_id, user_id, conn_key):
        return False
    metrics.PRESENCE_CHANGES.labels("left").inc()
    with contextlib.suppress(Conflict, NotFound):  # the room was closed or deleted meanwhile: nobody to tell
        await _presence_event(rt, user_id, room_id, online=False, sender=sender, profile=profile)
    return True


async def disconnect(rt: Runtime, conn: Connection) -> None:
    if rt.hub.connections.get(conn.conn_id) is not conn:
        # Once per socket, though both the socket loop and shutdown may call this.
        for room_id in list(conn.rooms):
            await leave(rt, conn, room_id)
        return
    rooms = list(conn.rooms)
    code = conn.close_code if conn.close_code is not None else conn.peer_code
    grace = rt.settings.presence_grace_seconds
    if grace > 0 and code in COMES_BACK and rt.departures.hold(
            Departure(conn.user_id, _conn_key(rt, conn), rooms, conn.profile), grace,
            lambda departure: rt.spawn(_departed(rt, departure))):
        for room_id in rooms:
            await rt.hub.detach(conn, room_id)  # nothing more reaches it; its presence stays
        await rt.hub.remove_connection(conn)
        return
    for room_id in rooms:
        await leave(rt, conn, room_id)
    await rt.hub.remove_connection(conn)
    await rt.presence.user_disconnected(conn.user_id)


async def _departed(rt: Runtime, departure: Departure) -> None:
    """A dropped socket's grace ran out: its presence goes, announced where it was the user's last."""
    left = False
    for room_id in departure.rooms:
        try:
            left |= await _depart(rt, room_id, departure.user_id, departure.conn_key, departure.profile, None)
        except Exception:
            log.exception("presence.departure_failed", room_id=room_id)
    await rt.presence.user_disconnected(departure.user_id)
    if departure.rooms:
        LINGERED.labels("left" if left else "returned").inc()


async def depart_all(rt: Runtime) -> None:
    """The instance stops: every dropped socket's presence goes now."""
    for departure in rt.departures.take_all():
        await _departed(rt, departure)


async def reset_presence(rt: Runtime) -> None:
    """Embedded start-up: no socket survived the last process, so nobody is online."""
    async with rt.db.write() as db:
        await db.execute(sa.update(room_players).where(room_players.c.is_online.is_(True)).values(is_online=False))
