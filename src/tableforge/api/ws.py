"""`GET /ws`: one loop per socket. Decode once, check the rate limit, dispatch to a service,
answer with an ack or an error frame. The socket stays open on bad input (PROTOCOL.md)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import Any

import msgspec
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from tableforge.api import ws_gate, ws_handshake, ws_limits
from tableforge.domain.audience import View
from tableforge.domain.errors import AppError, Forbidden, NotFound, Unauthorized, ValidationFailed
from tableforge.observability import metrics
from tableforge.observability.logging import get_logger
from tableforge.realtime import protocol as p
from tableforge.realtime.connection import ON_TEXT, WRITE_NOW, Connection
from tableforge.realtime.ratelimit import TokenBucket
from tableforge.services import board_frames, chat, initiative, play, replies, scenes, tokens
from tableforge.services.runtime import Runtime

router = APIRouter()
log = get_logger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013
_ACK_EMPTY = '{"type":"ack","id":%s}'


def _ack(msg_id: Any, **result: Any) -> str:
    return p.encode({"type": "ack", "id": msg_id, **result})


def _error(conn: Connection, code: str, message: str, msg_id: Any = None, details: Any = None) -> None:
    metrics.WS_ERRORS_BY_CODE[code].inc()
    frame: dict[str, Any] = {"type": "error", "id": msg_id, "code": code, "message": message}
    if details is not None:
        frame["details"] = details
    conn.send(p.encode(frame))


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    rt: Runtime = websocket.app.state.runtime
    if await ws_gate.refused(rt, websocket):  # this instance drains (also reads the ?room= hint)
        return
    await websocket.accept()
    authenticated_at = time.monotonic()  # before the session is read: see Revocations.revoked_since
    try:
        user, session_id = await ws_handshake.authenticate(rt, websocket)
    except AppError as exc:
        await ws_handshake.refuse(websocket, exc)
        return
    lease = await ws_limits.admit(rt, websocket, user["id"])  # per-user and per-address caps (4429)
    if lease is None:
        return

    async def close_socket(code: int, reason: str) -> None:
        if websocket.application_state != WebSocketState.DISCONNECTED:
            await websocket.close(code, reason)

    conn = Connection(secrets.token_hex(6), user["id"], user["username"], websocket.send_text, close_socket,
                      rt.settings.ws_send_queue)
    conn.owner = asyncio.current_task()
    conn.write_now = websocket.scope.get("extensions", {}).get(WRITE_NOW)
    conn.profile = replies.public_user(user)
    conn.session_id = session_id
    rt.hub.add_connection(conn)
    if rt.revocations.revoked_since(conn, authenticated_at):  # revoked while we authenticated
        lease.release()
        await rt.hub.remove_connection(conn)
        await ws_handshake.refuse(websocket, Unauthorized("the session was revoked", code="invalid_token"))
        return
    await rt.presence.user_connected(conn.user_id)
    conn.start()
    limit = Admission(TokenBucket(rt.settings.ws_rate_per_second, rt.settings.ws_rate_burst))
    max_frame = rt.settings.ws_max_frame_bytes
    take_text = websocket.scope.get("extensions", {}).get(ON_TEXT)
    if take_text is not None:
        take_text(lambda text: _handle_now(rt, conn, limit, max_frame, text))
    try:
        while not conn.closed:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                conn.peer_code = message.get("code", 1005)
                break
            frame = message.get("text")
            if frame is None:
                frame = message.get("bytes") or b""
            if len(frame) > max_frame:
                metrics.WS_CLOSED_BY_REASON["too_big"].inc()
                conn.close(CLOSE_TOO_BIG, "frame too large")
                break
            if not limit.admit(conn):
                if conn.closed:
                    break
                continue
            conn.busy = True  # a drain's polite close waits for this message's answer
            await _handle(rt, conn, frame)
            conn.handled()
    except WebSocketDisconnect as exc:
        conn.peer_code = exc.code
    except asyncio.CancelledError:
        if not conn.closed:
            raise  # the server is stopping; otherwise the socket was closed by us (e.g. too slow)
    except Exception:
        log.exception("ws_loop_failed", user_id=conn.user_id)
    finally:
        if take_text is not None:
            take_text(None)
        lease.release()
        with contextlib.suppress(Exception):
            await play.disconnect(rt, conn)
        await conn.stop()


class Admission:
    """A socket's rate limit as the reader and the synchronous lane both apply it."""

    __slots__ = ("bucket", "last_error")

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket
        self.last_error = -1.0

    def admit(self, conn: Connection) -> bool:
        """Whether to handle the next message. When not: an explanation (one a second, not one per
        frame), and a flooding client's socket closed."""
        if self.bucket.take():
            return True
        now = time.monotonic()
        if now - self.last_error >= 1.0:
            self.last_error = now
            _error(conn, "rate_limited", "too many messages: slow down")
        if self.bucket.flooding():
            metrics.WS_CLOSED_BY_REASON["flooding"].inc()
            if now != self.last_error:
                _error(conn, "rate_limited", "too many messages: closing the connection")
            conn.close(CLOSE_POLICY, "rate limit exceeded", flush=True)
        return False


def _handle_now(rt: Runtime, conn: Connection, limit: Admission, max_frame: int, text: str) -> bool:
    """A drag's preview or a pointer, handled as it arrives (the server's ON_TEXT hook) when the
    room's token index has what it needs: no task switch, no coroutine chain. False leaves the message
    to the reader, untouched (its rate-limit token given back): anything else, a message while
    another is being handled (order), a cold index. The same checks, errors, metrics and frames as
    `_dispatch`."""
    if conn.busy or conn.closing or len(text) > max_frame or ('"preview"' not in text and '"pointer"' not in text):
        return False
    try:
        msg = p.decode(text)
    except p.ProtocolError:
        return False
    if isinstance(msg, p.TokenMove):
        if not msg.preview:
            return False
    elif not isinstance(msg, p.Pointer):
        return False
    if msg.room_id not in conn.rooms:
        return False
    started = time.perf_counter()
    mtype = p.message_type(msg)
    if not limit.admit(conn):
        return True  # explained, or the socket closed, as the reader does
    try:
        if isinstance(msg, p.TokenMove):
            done = tokens.preview_move_now(rt, conn.user_id, conn.rooms[msg.room_id], msg.room_id, msg.token_id,
                                           msg.x, msg.y, conn)
        else:
            done = tokens.pointer_now(rt, _view(rt, conn, msg.room_id), msg.room_id, msg.x, msg.y, conn)
        if not done:
            limit.bucket.refund()
            return False
        if msg.id is not None:
            conn.send(_ack(msg.id))
    except (NotFound, Forbidden) as exc:
        if isinstance(msg, p.Pointer) or msg.id is not None or _explain_refusal(conn):
            _error(conn, exc.code, exc.message, msg.id, exc.details)
    except AppError as exc:
        _error(conn, exc.code, exc.message, msg.id, exc.details)
    except Exception:  # called from the server's protocol: nothing may escape into it
        log.exception("ws_handler_failed", type=mtype)
        _error(conn, "internal_error", "something went wrong on our side", msg.id)
    metrics.WS_IN_BY_TYPE[mtype].inc()
    metrics.WS_HANDLE_BY_TYPE[mtype].observe(time.perf_counter() - started)
    return True


def _explain_refusal(conn: Connection) -> bool:
    """A refused preview without an id: a drag sends up to 20 a second, so one explanation a second
    is enough and the others are dropped (a preview with an id is always answered)."""
    now = time.monotonic()
    if now - conn.refused_at >= 1.0:
        conn.refused_at = now
        return True
    metrics.WS_DROPPED_BY_KIND["refused_preview"].inc()
    return False


async def _handle(rt: Runtime, conn: Connection, frame: str | bytes) -> None:
    started = time.perf_counter()
    try:
        msg = p.decode(frame)
    except p.ProtocolError as exc:
        metrics.WS_IN_BY_TYPE["invalid"].inc()
        _error(conn, exc.code, exc.message, exc.msg_id)
        return
    mtype = p.message_type(msg)
    metrics.WS_IN_BY_TYPE[mtype].inc()
    try:
        await _dispatch(rt, conn, msg)
    except AppError as exc:
        _error(conn, exc.code, exc.message, msg.id, exc.details)
    except Exception:
        log.exception("ws_handler_failed", type=mtype)
        _error(conn, "internal_error", "something went wrong on our side", msg.id)
    metrics.WS_HANDLE_BY_TYPE[mtype].observe(time.perf_counter() - started)


def _role(conn: Connection, room_id: str) -> str:
    role = conn.rooms.get(room_id)
    if role is None:
        raise Forbidden("join the room first", code="not_joined")
    return role


def _view(rt: Runtime, conn: Connection, room_id: str) -> View:
    role = _role(conn, room_id)
    return rt.hub.view_of(conn, room_id) or View(role, None, conn.user_id)


_CHARACTER = ("name", "size", "bars", "conditions", "name_visibility", "conditions_visibility")


async def _dispatch(rt: Runtime, conn: Connection, msg: p.ClientMessage) -> None:
    reply = msg.id is not None
    match msg:
        case p.TokenMove(preview=True):
            role = _role(conn, msg.room_id)
            try:
                await tokens.preview_move(rt, conn.user_id, role, msg.room_id, msg.token_id, msg.x, msg.y, conn)
            except (NotFound, Forbidden):
                if reply or _explain_refusal(conn):
                    raise
                return
            if reply:
                conn.send(_ack(msg.id))
        case p.TokenMove():
            role = _role(conn, msg.room_id)
            version, token_version = await tokens.move(rt, conn.user_id, role, msg.room_id, msg.token_id,
                                                       msg.x, msg.y, msg.if_version, conn)
            if reply:
                conn.send(_ack(msg.id, version=version, token_version=token_version))
        case p.Pointer():
            await tokens.pointer(rt, _view(rt, conn, msg.room_id), msg.room_id, msg.x, msg.y, conn)
            if reply:
                conn.send(_ack(msg.id))
        case p.Ruler():
            found = await board_frames.ruler(rt, _view(rt, conn, msg.room_id), msg.room_id, msg.scene_id,
                                             [(x, y) for x, y in msg.points], conn)
            if reply:
                conn.send(_ack(msg.id) if found is None else
                          _ack(msg.id, cells=found.cells, units=found.units, text=found.text))
        case p.BoardPing():
            await board_frames.ping(rt, _view(rt, conn, msg.room_id), msg.room_id, msg.x, msg.y, conn)
            if reply:
                conn.send(_ack(msg.id))
        case p.Join():
            if msg.batch:  # before the join, so that its ack may already travel in a batch
                conn.batch = True
            await play.join(rt, conn, msg.room_id, msg.since, msg.id, msg.scene_id)
        case p.Leave():
            _role(conn, msg.room_id)
            await play.leave(rt, conn, msg.room_id)
            if reply:
                conn.send(_ack(msg.id))
        case p.TokenAdd():
            view = _view(rt, conn, msg.room_id)
            token, version = await tokens.add(rt, conn.user_id, msg.room_id, msg.asset_id, msg.x, msg.y,
                                              msg.rotation, msg.scale, msg.z_index, conn, role=view.role,
                                              scene_id=msg.scene_id or view.scene_id, hidden=msg.hidden,
                                              fields={k: getattr(msg, k) for k in _CHARACTER})
            if reply:
                conn.send(_ack(msg.id, token=token, version=version))
        case p.TokenUpdate():
            role = _role(conn, msg.room_id)
            values = {k: getattr(msg, k) for k in ("x", "y", "rotation", "scale", "z_index", "hidden", *_CHARACTER)
                      if getattr(msg, k) is not None}
            if not values:
                raise AppError("nothing to change: give x, y, rotation, scale, z_index, hidden or a character field",
                               code="nothing_to_change", status=422)
            token, version = await tokens.change(rt, conn.user_id, role, msg.room_id, msg.token_id, values,
                                                 msg.if_version, conn)
            if reply:
                conn.send(_ack(msg.id, token=token, version=version))
        case p.TokenRemove():
            role = _role(conn, msg.room_id)
            version = await tokens.remove(rt, conn.user_id, role, msg.room_id, msg.token_id, msg.if_version, conn)
            if reply:
                conn.send(_ack(msg.id, version=version))
        case p.TokenBar():
            top = "keep" if msg.max is msgspec.UNSET else msg.max
            if msg.value is None and top == "keep":
                raise AppError("nothing to change: give value or max", code="nothing_to_change", status=422)
            token, version = await tokens.set_bar(rt, conn.user_id, _role(conn, msg.room_id), msg.room_id,
                                                  msg.token_id, msg.key, msg.value, top, msg.if_version, conn)
            if reply:
                conn.send(_ack(msg.id, token=token, version=version))
        case p.TokenCondition():
            if not msg.add and not msg.remove:
                raise AppError("nothing to change: give add or remove", code="nothing_to_change", status=422)
            token, version = await tokens.change_conditions(rt, conn.user_id, _role(conn, msg.room_id), msg.room_id,
                                                            msg.token_id, msg.add or [], msg.remove or [],
                                                            msg.if_version, conn)
            if reply:
                conn.send(_ack(msg.id, token=token, version=version))
        case p.Undo():
            undone, version = await tokens.undo(rt, conn.user_id, _role(conn, msg.room_id), msg.room_id)
            if reply:
                conn.send(_ack(msg.id, undone=undone, version=version))
        case p.Initiative():
            tracker, version = await initiative.change(rt, conn.user_id, _role(conn, msg.room_id), msg.room_id, msg.op,
                                                       msg.token_id, msg.entry_id, msg.value, msg.if_version, conn)
            if reply:
                conn.send(_ack(msg.id, initiative=tracker, version=version))
        case p.ChatSend():
            role = _role(conn, msg.room_id)
            message, version = await chat.send(rt, conn.user_id, conn.username, msg.room_id, msg.text, conn,
                                               role=role, to=msg.to)
            if reply:
                conn.send(_ack(msg.id, message=message, version=version))
        case p.DiceRoll():
            role = _role(conn, msg.room_id)
            roll, version = await chat.roll(rt, conn.user_id, conn.username, msg.room_id, msg.notation, conn,
                                            msg.label, role=role, visibility=msg.visibility)
            if reply:
                conn.send(_ack(msg.id, roll=roll, version=version))
        case p.SceneView():
            _role(conn, msg.room_id)
            await play.view_scene(rt, conn, msg.room_id, msg.scene_id, msg.id)
        case p.SceneCreate():
            scene, version = await scenes.create(rt, _role(conn, msg.room_id), conn.user_id, msg.room_id, msg.name,
                                                 msg.grid, msg.map_asset_id, conn)
            if reply:
                conn.send(_ack(msg.id, scene=scene, version=version))
        case p.SceneUpdate():
            map_asset = scenes.UNCHANGED if msg.map_asset_id is msgspec.UNSET else msg.map_asset_id
            scene, version = await scenes.update(rt, _role(conn, msg.room_id), conn.user_id, msg.room_id,
                                                 msg.scene_id, msg.name, msg.grid, map_asset, conn)
            if reply:
                conn.send(_ack(msg.id, scene=scene, version=version))
        case p.SceneRemove():
            version = await scenes.remove(rt, _role(conn, msg.room_id), conn.user_id, msg.room_id, msg.scene_id, conn)
            if reply:
                conn.send(_ack(msg.id, version=version))
        case p.SceneActivate():
            version = await scenes.activate(rt, _role(conn, msg.room_id), conn.user_id, msg.room_id, msg.scene_id,
                                            conn)
            if reply:
                conn.send(_ack(msg.id, version=version))
        case p.FogChange():
            shape = p.shape_json(msg.shape)
            if msg.op in ("reveal", "hide") and shape is None:
                raise ValidationFailed(f"{msg.op} needs a shape", code="invalid_message",
                                       details=[{"field": "shape", "problem": "required for reveal and hide"}])
            version = await scenes.fog(rt, _role(conn, msg.room_id), conn.user_id, msg.room_id, msg.scene_id,
                                       msg.op, shape if msg.op in ("reveal", "hide") else None, conn)
            if reply:
                conn.send(_ack(msg.id, version=version))
        case p.Ping():
            conn.send(p.encode({"type": "pong", "id": msg.id, "ts": time.time() * 1000}))
