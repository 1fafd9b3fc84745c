"""The hub's fan-out per stored event, with and without audiences: CPU time per in-order event.

Run: .venv/bin/python bench/bench_hub_fanout.py [--events 20000] [--sockets 10] [--repeat 15]
     (and the same script with another tree's venv, e.g. the branch point's, for a before/after:
      /path/to/base/.venv/bin/python bench/bench_hub_fanout.py)

One room on one hub (memory broker), `--sockets` joined sockets (one GM, the rest players) whose
writers are not started, so what is measured is the hub: ordering, choosing each socket's frame,
queueing it. Events are `token.moved` bodies as the event log writes them, each delivered in order
through `Hub.on_room_message`, the path a broker message takes. Cases (trees with audiences only):
- `visible`: the move of a token players see: the GMs of its scene and the players get the body
  (what every move of a room without hidden information is, and what the base tree measures);
- `hidden`: the move of a hidden token: its scene's GMs get it, the others `room.skip`;
- `flip`: a move whose players' copy is a variant (`token.removed`).
Median of `--repeat` runs of `time.process_time()` per event, cases interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

import orjson

from tableforge.realtime.broker import MemoryBroker
from tableforge.realtime.connection import Connection
from tableforge.realtime.envelope import pack
from tableforge.realtime.hub import Hub

try:  # the tree with hidden information
    from tableforge.domain.audience import Routing, View
    AUDIENCES = True
except ImportError:  # the branch point
    AUDIENCES = False

ROOM = str(uuid.uuid4())
SCENE = str(uuid.uuid4())


def body(version: int, token: str) -> bytes:
    return orjson.dumps({"type": "token.moved", "room_id": ROOM, "version": version, "ts": 1.0, "by": "u",
                         "token_id": token, "x": 1.0, "y": 2.0, "token_version": version})


def envelope(version: int, case: str, token: str) -> bytes:
    if not AUDIENCES:
        return pack(version, time.time() * 1000, "", body(version, token))
    routing = {"visible": Routing(f"g@{SCENE};p"), "hidden": Routing(f"g@{SCENE}"),
               "flip": Routing(f"g@{SCENE}", (("p", orjson.dumps({"type": "token.removed", "room_id": ROOM,
                                                                  "version": version, "token_id": token})),))}[case]
    return pack(version, time.time() * 1000, "", body(version, token), routing)


async def run(case: str, events: int, sockets: int) -> float:
    async def versions(ids: list[str]) -> dict[str, int]:
        return {i: 0 for i in ids}

    async def history(*_: Any) -> list[Any]:
        return []

    hub = Hub(MemoryBroker(), "bench", versions_loader=versions, history_loader=history, send_queue=events + 10)

    async def nothing(*_: Any) -> None:
        return None

    conns = []
    for i in range(sockets):
        conn = Connection(f"c{i}", f"user{i}", f"user{i}", nothing, nothing, events + 10)
        role = "gm" if i == 0 else "player"
        await hub.attach(conn, ROOM, View(role, SCENE if role == "gm" else None, conn.user_id) if AUDIENCES else role)
        hub.activate(conn, ROOM, 0, "{}")
        conns.append(conn)
    token = str(uuid.uuid4())
    data = [envelope(v, case, token) for v in range(1, events + 1)]
    start = time.process_time()
    for item in data:
        hub.on_room_message(ROOM, item)
    spent = time.process_time() - start
    assert all(c.queue_depth == events + 1 for c in conns), "every socket got every version"
    await hub.close()
    return spent / events * 1e6


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    cases = ["visible", "hidden", "flip"] if AUDIENCES else ["visible"]
    runs: dict[str, list[float]] = {case: [] for case in cases}
    for _ in range(args.repeat):
        for case in cases:
            runs[case].append(await run(case, args.events, args.sockets))
    return {"audiences": AUDIENCES, "events": args.events, "sockets": args.sockets,
            "median_us_per_event": {case: round(statistics.median(v), 3) for case, v in runs.items()},
            "runs": {case: [round(x, 3) for x in v] for case, v in runs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--sockets", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=15)
    print(json.dumps(asyncio.run(amain(parser.parse_args())), indent=1))


if __name__ == "__main__":
    main()
