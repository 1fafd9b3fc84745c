"""Chat and dice: both land in the room's log and go out as room events.

On PostgreSQL the version, the message row and the event are one autocommit statement
(`db/hotpath.py`); a closed or missing room falls back to the transaction, which says which.
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from tableforge.db import hotpath
from tableforge.db.schema import room_messages
from tableforge.domain import dice
from tableforge.domain import events as ev
from tableforge.realtime.connection import Connection
from tableforge.services import events, shapes
from tableforge.services.runtime import Runtime


async def _log(rt: Runtime, user_id: str, username: str, room_id: str, kind: str, text: str,
               roll: dict[str, Any] | None, etype: str, key: str,
               sender: Connection | None) -> tuple[dict[str, Any], int]:
    if rt.db.is_postgres:
        done = await _log_one_statement(rt, user_id, username, room_id, kind, text, roll, etype, key, sender)
        if done is not None:
            return done
    async with rt.db.write() as conn:
        version = await events.next_versions(conn, room_id)
        row = {"id": shapes.new_id(), "room_id": room_id, "user_id": user_id, "kind": kind, "text": text,
               "roll": roll, "version": version, "created_at": shapes.now()}
        await conn.execute(sa.insert(room_messages).values(**row))
        message = shapes.message(row | {"username": username})
        payload = {key: message} if roll is None else {key: roll | {"message_id": message["id"],
                                                                    "user_id": user_id, "username": username}}
        event = await events.store(conn, room_id, version, etype, user_id, payload, rt.settings.ws_history_size)
    await rt.hub.publish(room_id, version, event.ts, sender, event.body)
    return (message if roll is None else payload[key]), version


async def _log_one_statement(rt: Runtime, user_id: str, username: str, room_id: str, kind: str, text: str,
                             roll: dict[str, Any] | None, etype: str, key: str,
                             sender: Connection | None) -> tuple[dict[str, Any], int] | None:
    message_id, created_at = shapes.new_id(), shapes.now()
    row = {"id": message_id, "room_id": room_id, "user_id": user_id, "kind": kind, "text": text,
           "roll": roll, "version": events.VERSION_MARK, "created_at": created_at}
    message = shapes.message(row | {"username": username})
    payload = {key: message} if roll is None else {key: roll | {"message_id": message_id,
                                                                "user_id": user_id, "username": username}}
    ts = shapes.now_ms()
    pieces = events.body_pieces(etype, room_id, ts, user_id, payload)
    version = await hotpath.log_message(rt.db, room_id, message_id, user_id, kind, text,
                                        None if roll is None else orjson.dumps(roll).decode(), created_at,
                                        pieces, rt.settings.ws_history_size)
    if version is None:
        return None
    body = str(version).join(pieces).encode()
    await rt.hub.publish(room_id, version, ts, sender, body)
    if roll is None:
        return message | {"version": version}, version
    return payload[key], version


async def send(rt: Runtime, user_id: str, username: str, room_id: str, text: str,
               sender: Connection | None = None) -> tuple[dict[str, Any], int]:
    return await _log(rt, user_id, username, room_id, "chat", text, None, ev.CHAT_MESSAGE, "message", sender)


async def roll(rt: Runtime, user_id: str, username: str, room_id: str, notation: str,
               sender: Connection | None = None) -> tuple[dict[str, Any], int]:
    result = dice.roll(notation).to_dict()
    text = f"{result['notation']} = {result['total']}"
    return await _log(rt, user_id, username, room_id, "roll", text, result, ev.DICE_ROLLED, "roll", sender)
