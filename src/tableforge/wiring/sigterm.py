"""SIGTERM drains before the server stops (scale-out mode).

uvicorn's own SIGTERM handling closes the listening socket and every WebSocket (1012) at once, so all
of an instance's clients would reconnect in the same second, through a balancer that may not yet
know the instance is going. Here SIGTERM first drains (services/draining.py: /ready 503, new sockets
refused, the open ones closed gradually) and only then hands the signal to uvicorn's handler, which
stops the server as before. A second SIGTERM during the drain stops at once.

The handler is installed from the lifespan start-up, where uvicorn (each `--workers` process too) has
already installed its own: that one is kept and called afterwards, and put back at shutdown. Without a
Python-level handler to hand over to (not run by uvicorn), nothing is installed. Embedded mode does not
drain: one instance has nowhere else to send its clients, so they are closed at once as before.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from tableforge.observability.logging import get_logger
from tableforge.services import draining
from tableforge.services.runtime import Runtime

log = get_logger(__name__)


def install(rt: Runtime) -> Callable[[], None]:
    """Drain on SIGTERM, then stop as uvicorn would. Returns the function that puts the old handler back."""
    s = rt.settings
    if not s.scale_out or (s.drain_seconds <= 0 and s.drain_notice_seconds <= 0):
        return lambda: None
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return lambda: None
    loop = asyncio.get_running_loop()
    handed_over = False

    def hand_over(sig: int, frame: FrameType | None) -> None:
        nonlocal handed_over
        if not handed_over:
            handed_over = True
            previous(sig, frame)

    async def drain_then_stop() -> None:
        try:
            draining.begin(rt, "signal")
            await draining.wait_drained(rt)
        finally:
            hand_over(signal.SIGTERM, None)

    def start() -> None:
        rt.spawn(drain_then_stop())

    asked = False

    def on_sigterm(sig: int, frame: FrameType | None) -> Any:
        nonlocal asked
        if asked:
            hand_over(sig, frame)  # asked twice: stop now
            return
        asked = True
        loop.call_soon_threadsafe(start)

    signal.signal(signal.SIGTERM, on_sigterm)

    def uninstall() -> None:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous)

    return uninstall
