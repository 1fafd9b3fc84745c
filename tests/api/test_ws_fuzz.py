"""WebSocket fuzzing against a real server, on both backends: malformed frames of every kind (random
bytes, invalid UTF-8, deep nesting, huge numbers, NaN/Infinity, a wrong type in every field of every
message type, missing fields, out-of-range values, NUL characters, bad ids, unknown types, rooms not
joined, commits and previews the sender may not make). First an exhaustive part (every field of every
message type given every wrong-typed and out-of-range value we know, and a NUL), then random frames.

What must hold: each frame gets exactly one reply, an `error` (never an ack, never
`internal_error`); no socket closes; nothing is written to the server log as a traceback or an
error; the stored room (version, tokens, messages, assets) is unchanged. The one frame that may end
a socket, a text frame that is not UTF-8, ends it with a close frame (1007).

Reproducible: the frames come from `random.Random(f"{seed}-{socket}")`; set TABLEFORGE_FUZZ_SEED
to replay a failure (the seed is in every assertion message). Each socket sends fewer frames than
the server's rate-limit burst (conftest: 400), so none is dropped unread and no sleep is needed.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import string
from typing import Any

from tests.support.client import Api, Player, Ws
from tests.support.server import ServerProcess

SEED = int(os.environ.get("TABLEFORGE_FUZZ_SEED", "20261130"))
SOCKETS = 26
FRAMES_PER_SOCKET = 390  # + join + ping < the burst of 400
CONCURRENT = 5
NOWHERE = "00000000-0000-0000-0000-000000000000"
DEEP = "__deep__"  # placeholder for raw nested JSON (json.dumps would recurse)
LITERAL = "__literal__"  # placeholder for a raw JSON token (NaN, Infinity, 1e999)

KINDS = {"room_id": "uuid", "asset_id": "uuid", "token_id": "uuid", "x": "coord", "y": "coord",
         "rotation": "rotation", "scale": "scale", "z_index": "z", "since": "version", "if_version": "version",
         "preview": "bool", "text": "text", "notation": "text", "id": "id", "type": "type"}
REQUIRED = {"join": ["room_id"], "leave": ["room_id"], "token.add": ["room_id", "asset_id", "x", "y"],
            "token.move": ["room_id", "token_id", "x", "y"], "token.update": ["room_id", "token_id"],
            "token.remove": ["room_id", "token_id"], "chat.send": ["room_id", "text"],
            "dice.roll": ["room_id", "notation"], "pointer": ["room_id", "x", "y"], "ping": []}


def templates(room: str, token: str, asset: str) -> dict[str, dict[str, Any]]:
    """A valid message of every type (each would change something or be answered with an ack)."""
    return {
        "join": {"room_id": room, "since": 0},
        "leave": {"room_id": room},
        "token.add": {"room_id": room, "asset_id": asset, "x": 1.5, "y": 2.5, "rotation": 0.0, "scale": 1.0,
                      "z_index": 0},
        "token.move": {"room_id": room, "token_id": token, "x": 1.5, "y": 2.5, "preview": False, "if_version": 1},
        "token.update": {"room_id": room, "token_id": token, "x": 1.5, "y": 2.5, "rotation": 10.0, "scale": 1.0,
                         "z_index": 1, "if_version": 1},
        "token.remove": {"room_id": room, "token_id": token, "if_version": 1},
        "chat.send": {"room_id": room, "text": "hello"},
        "dice.roll": {"room_id": room, "notation": "1d6"},
        "pointer": {"room_id": room, "x": 1.5, "y": 2.5},
        "ping": {},
    }


def _wrong_types(kind: str, rng: random.Random) -> list[Any]:
    """Values of the wrong type for a field (never null: optional fields accept it)."""
    nums = [rng.randint(-5, 5), rng.uniform(-10, 10)]
    strs = ["", "x", "12", "true", "null", "NaN", "ü" * rng.randint(1, 5)]
    coll = [[], [1, 2], {}, {"a": 1}, [None], [[["x"]]]]
    if kind in ("coord", "rotation", "scale"):
        return [*strs, True, False, *coll]
    if kind in ("z", "version"):
        return [1.5, -0.5, *strs, True, False, *coll]
    if kind == "bool":
        return [0, 1, *strs, *coll]
    if kind == "id":
        return [1.5, True, False, *coll]
    return [*nums, True, False, *coll]  # strings: uuid, text, type


def _out_of_range(kind: str, rng: random.Random) -> list[Any]:
    huge = [2**63, 2**64, 10**30, -(10**30), 10**400, -(10**400)]
    if kind == "coord":
        return [1e6 + 1, -1e6 - 1, 1e300, -1e300, *huge]
    if kind == "rotation":
        return [360001.0, -360001.0, *huge]
    if kind == "scale":
        return [0, 0.001, -1, 100.5, *huge]
    if kind == "version":
        return [-1, 2**63, 2**64, 10**30, -(2**63), 10**400]
    if kind == "z":
        return [1_000_001, -1_000_001, *huge]
    if kind == "uuid":
        return ["abc", "1' OR '1'='1", "0" * 37, NOWHERE + "x", "g" * 32, "-" * 36, NOWHERE + "\n",
                NOWHERE.upper() + "\n", "{" + NOWHERE + "}", "urn:uuid:" + NOWHERE]
    if kind == "text":
        return ["", "x" * 2001]
    if kind == "id":
        return [2**53, -(2**53), 2**64, -(2**64), 10**400, "i" * 65]
    if kind == "type":
        return ["token.teleport", "", "PING", "ping ", "join\t", "x" * 200, "__proto__"]
    return [2]


def _nested(rng: random.Random) -> str:
    depth = rng.choice([33, 34, 50, 200, 999, 1000, 3000])
    if rng.random() < 0.5:
        return "[" * depth + "]" * depth
    opener, closer = ('{"a":', "}") if rng.random() < 0.5 else ('[{"k":', "}]")
    return opener * depth + "1" + closer * depth


def systematic(room: str, token: str, asset: str) -> list[dict[str, Any]]:
    """Every field of every message type, each given every wrong-typed and out-of-range value and
    a NUL character (strings): the exhaustive part, sent before the random frames."""
    rng = random.Random(0)  # only picks among equivalent values; the list itself is fixed
    out = []
    for mtype, template in templates(room, token, asset).items():
        for field in ["type", "id", *template]:
            kind = KINDS[field]
            values = [*_wrong_types(kind, rng), *_out_of_range(kind, rng)]
            if kind in ("uuid", "text", "type", "id"):
                values.append((template.get(field) or mtype or "x") + "\x00")
            for value in values:
                out.append({"type": mtype, "id": f"s-{len(out)}", **template, field: value})
    return out


class Fuzzer:
    """Frames that must each be refused with one error frame."""

    def __init__(self, rng: random.Random, room: str, token: str, asset: str, other_room: str,
                 first: list[dict[str, Any]] | None = None) -> None:
        self.rng = rng
        self.room, self.token, self.asset, self.other_room = room, token, asset, other_room
        self.templates = templates(room, token, asset)
        self.count = 0
        self.first = list(first or [])  # sent before the random frames

    def frame(self) -> tuple[str | bytes | dict[str, Any], str]:
        """(frame, category)."""
        self.count += 1
        if self.first:
            return self.first.pop(0), "systematic"
        rng = self.rng
        category = rng.choices(
            ["bytes", "utf8", "text", "deep", "wrong_type", "range", "literal", "nul", "missing", "unknown_type",
             "bad_id", "truncated", "escape", "not_joined", "refused"],
            weights=[5, 5, 4, 8, 20, 15, 6, 8, 6, 4, 6, 5, 3, 4, 3])[0]
        return getattr(self, "_" + category)(), category

    # -- raw garbage ---------------------------------------------------------------------------
    def _bytes(self) -> bytes:
        return bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(0, 300)))

    def _utf8(self) -> bytes:
        text = self._dumps(self._message())
        cut = self.rng.randint(1, len(text) - 1)
        bad = self.rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf", b"\x80"])
        data = text.encode()
        quote = data.find(b'"', cut)  # inside a string when possible
        at = quote + 1 if quote >= 0 else cut
        return data[:at] + bad + data[at:]

    def _text(self) -> str:
        alphabet = string.printable + "{}[]\":,\\ü€😀\u2028"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(1, 200)))

    def _truncated(self) -> str:
        text = self._dumps(self._message())
        return text[:self.rng.randint(1, len(text) - 1)]

    # -- a message with one broken part -----------------------------------------------------------
    def _message(self, mtype: str | None = None) -> dict[str, Any]:
        mtype = mtype or self.rng.choice(list(self.templates))
        msg = {"type": mtype, "id": f"f{self.count}", **self.templates[mtype]}
        for optional in [k for k in msg if k not in ("type", "id", *REQUIRED[mtype])]:
            if self.rng.random() < 0.4:
                del msg[optional]
        if mtype == "token.move" and self.rng.random() < 0.5:
            msg["preview"] = True
        return msg

    def _field(self, msg: dict[str, Any]) -> str:
        return self.rng.choice([k for k in msg if k != "type"] or ["id"])

    def _wrong_type(self) -> dict[str, Any]:
        msg = self._message()
        field = self.rng.choice(list(msg))
        msg[field] = self.rng.choice(_wrong_types(KINDS[field], self.rng))
        return msg

    def _range(self) -> dict[str, Any]:
        msg = self._message()
        field = self._field(msg)
        msg[field] = self.rng.choice(_out_of_range(KINDS[field], self.rng))
        return msg

    def _literal(self) -> str:
        msg = self._message(self.rng.choice(["token.add", "token.move", "token.update", "pointer", "join"]))
        numeric = [k for k in msg if KINDS.get(k) in ("coord", "rotation", "scale", "z", "version")]
        msg[self.rng.choice(numeric or ["id"])] = LITERAL
        literal = self.rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "nan", "inf", "+1", "01",
                                   "1.", ".5", "0x10", "1e", "--1"])
        return self._dumps(msg).replace(f'"{LITERAL}"', literal)

    def _nul(self) -> dict[str, Any]:
        msg = self._message()
        strings = [k for k in msg if isinstance(msg[k], str)]
        field = self.rng.choice([*strings, "__extra__"])
        value = msg.get(field, "note")
        at = self.rng.randint(0, len(value))
        msg[field] = value[:at] + "\x00" + value[at:]
        if self.rng.random() < 0.2:
            msg["k\x00"] = 1
        return msg

    def _missing(self) -> dict[str, Any]:
        mtype = self.rng.choice([t for t, required in REQUIRED.items() if required])
        msg = self._message(mtype)
        del msg[self.rng.choice(REQUIRED[mtype])]
        return msg

    def _unknown_type(self) -> dict[str, Any]:
        msg = self._message()
        msg["type"] = self.rng.choice(["token.teleport", "admin.drop", "TOKEN.MOVE", "join ", "", "ack", "error",
                                       "pong", "token", "chat", "x" * 100])
        if self.rng.random() < 0.2:
            del msg["type"]
        return msg

    def _bad_id(self) -> dict[str, Any]:
        msg = self._message()
        msg["id"] = self.rng.choice([*_out_of_range("id", self.rng), *_wrong_types("id", self.rng)])
        return msg

    def _escape(self) -> str:
        msg = self._message(self.rng.choice(["chat.send", "dice.roll", "ping"]))
        msg["id" if msg["type"] == "ping" else ("text" if msg["type"] == "chat.send" else "notation")] = LITERAL
        escape = self.rng.choice(["\\ud800", "\\udfff", "\\ud83d", "\\x41", "\\u12", "\\q", "\t", "\n", "\x01"])
        return self._dumps(msg).replace(f'"{LITERAL}"', f'"a{escape}b"')

    def _deep_frame(self) -> str:
        msg = self._message()
        where = self.rng.choice([k for k in msg if k != "type"] + ["__extra__", "__top__"])
        if where == "__top__":
            return _nested(self.rng)
        msg[where] = DEEP
        return self._dumps(msg).replace(f'"{DEEP}"', _nested(self.rng))

    _deep = _deep_frame  # the category name

    # -- well formed, but not allowed -------------------------------------------------------------
    def _not_joined(self) -> dict[str, Any]:
        msg = self._message(self.rng.choice([t for t in self.templates if t != "ping"]))
        msg["room_id"] = self.rng.choice([NOWHERE, self.other_room])
        return msg

    def _refused(self) -> dict[str, Any]:
        """Valid frames that the player may not send (previews and commits of the GM's token...)."""
        choice = self.rng.randrange(6)
        if choice == 0:
            return {"type": "token.move", "id": f"f{self.count}", "room_id": self.room, "token_id": self.token,
                    "x": 1, "y": 2, "preview": True}
        if choice == 1:
            return {"type": "token.move", "id": f"f{self.count}", "room_id": self.room, "token_id": NOWHERE,
                    "x": 1, "y": 2, "preview": self.rng.random() < 0.5}
        if choice == 2:
            return {"type": "token.remove", "id": f"f{self.count}", "room_id": self.room, "token_id": self.token}
        if choice == 3:
            return {"type": "token.add", "id": f"f{self.count}", "room_id": self.room, "asset_id": NOWHERE,
                    "x": 1, "y": 2}
        if choice == 4:
            return {"type": "dice.roll", "id": f"f{self.count}", "room_id": self.room,
                    "notation": self.rng.choice(["101d6", "1d1001", "d", "1d6; DROP TABLE users", "((1d6"])}
        return {"type": "token.update", "id": f"f{self.count}", "room_id": self.room, "token_id": self.token}

    @staticmethod
    def _dumps(msg: dict[str, Any]) -> str:
        return json.dumps(msg)


async def _fuzz_socket(api: Api, who: Player, fuzzer: Fuzzer, join: bool, label: str
                       ) -> tuple[collections.Counter[str], collections.Counter[str]]:
    ws = await api.ws(who)
    if join:
        assert (await ws.request("join", room_id=fuzzer.room))["type"] == "ack"
    sent_ids: list[str] = []
    categories: collections.Counter[str] = collections.Counter()
    for _ in range(FRAMES_PER_SOCKET):
        frame, category = fuzzer.frame()
        categories[category] += 1
        if isinstance(frame, dict):
            if isinstance(frame.get("id"), str):
                sent_ids.append(frame["id"])
            frame = json.dumps(frame)
        await ws.send_raw(frame)
    try:
        pong = await ws.request("ping")  # answered after every frame before it
    except TimeoutError:
        raise AssertionError(f"{label}: no pong; the socket closed with {ws.sock.protocol.close_rcvd} "
                             f"(received close frame) / {ws.sock.close_code}") from None
    assert pong["type"] == "pong", label
    replies = []
    while not ws.events.empty():
        replies.append(ws.events.get_nowait())
    errors = [r for r in replies if r.get("type") == "error"]
    codes = collections.Counter(r["code"] for r in errors)
    others = [r for r in replies if r.get("type") != "error"]
    assert not others, f"{label}: frames that are not refusals: {others[:3]}"
    assert len(errors) == FRAMES_PER_SOCKET, f"{label}: {len(errors)} replies to {FRAMES_PER_SOCKET} frames"
    assert "internal_error" not in codes, f"{label}: {codes}"
    answered = collections.Counter(r["id"] for r in errors if isinstance(r.get("id"), str))
    for msg_id in sent_ids:
        if msg_id.startswith(("f", "s-")) and len(msg_id) <= 64 and "\x00" not in msg_id:
            assert answered[msg_id] == 1, f"{label}: id {msg_id!r} answered {answered[msg_id]} times"
    await ws.close()
    return codes, categories


async def test_fuzz_the_socket(api: Api, server: ServerProcess) -> None:
    gm = await api.register("gm")
    players = [await api.register("fz") for _ in range(3)]
    room = await api.room(gm, *players)
    other_room = await api.room(gm)  # they are not members of this one
    asset = await api.asset(gm, room["id"])
    gm_ws = await api.ws(gm)
    await gm_ws.request("join", room_id=room["id"])
    token = (await gm_ws.request("token.add", room_id=room["id"], asset_id=asset["id"], x=5, y=5))["token"]
    await gm_ws.request("chat.send", room_id=room["id"], text="before the storm")
    # One socket per player stays in the room throughout, so the fuzzing sockets' joins and leaves
    # announce nobody: the room's stored version must not move at all.
    anchors = [await api.ws(p) for p in players]
    for anchor in anchors:
        assert (await anchor.request("join", room_id=room["id"]))["type"] == "ack"
    before = await api.snapshot(gm, room["id"])
    log_offset = server.log_path.stat().st_size

    seed = SEED + (1 if "postgres" in server.name else 0)
    codes: collections.Counter[str] = collections.Counter()
    categories: collections.Counter[str] = collections.Counter()
    limit = asyncio.Semaphore(CONCURRENT)

    exhaustive = systematic(room["id"], token["id"], asset["id"])
    assert len(exhaustive) <= SOCKETS * FRAMES_PER_SOCKET // 2

    async def one(i: int) -> None:
        fuzzer = Fuzzer(random.Random(f"{seed}-{i}"), room["id"], token["id"], asset["id"], other_room["id"],
                        first=exhaustive[i::SOCKETS])
        async with limit:
            got, cats = await _fuzz_socket(api, players[i % len(players)], fuzzer, join=i % 5 != 4,
                                           label=f"seed {seed} socket {i}")
        codes.update(got)
        categories.update(cats)

    await asyncio.gather(*(one(i) for i in range(SOCKETS)))
    # A text frame that is not UTF-8 must end the connection (RFC 6455): with a close frame, 1007.
    rng = random.Random(f"{seed}-utf8")
    for _ in range(5):
        ws = await api.ws(players[0])
        bad = rng.choice([b"\xff", b"\xc3(", b"\xed\xa0\x80"])
        await ws.sock.send(b'{"type":"ping","id":"' + bad + b'"}', text=True)
        assert await ws.closed_with() == 1007, f"seed {seed}: {ws.sock.close_code}"
        assert ws.sock.protocol.close_rcvd is not None, f"seed {seed}: closed without a close frame"
        categories["text_not_utf8"] += 1
        codes["closed 1007"] += 1

    after = await api.snapshot(gm, room["id"])
    for key in ("tokens", "messages", "assets"):
        assert after[key] == before[key], f"seed {seed}: stored {key} changed"
    assert after["room"]["version"] == before["room"]["version"], f"seed {seed}: the room version moved"
    log = server.log_path.read_bytes()[log_offset:].decode(errors="replace")
    assert "Traceback" not in log and '"level": "error"' not in log, f"seed {seed}: {log[-3000:]}"
    total = sum(categories.values())
    assert total >= 10_000 and sum(codes.values()) == total
    print(f"\n{server.name}: {total} frames, seed {seed}; by category {dict(categories)}; codes {dict(codes)}")
    # The room plays on.
    moved = await gm_ws.request("token.move", room_id=room["id"], token_id=token["id"], x=6, y=6)
    assert moved["type"] == "ack"
    for ws in (*anchors, gm_ws):
        await ws.close()


__all__ = ["Fuzzer", "Ws"]
