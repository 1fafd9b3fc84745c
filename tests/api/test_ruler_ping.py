"""The ruler and the ping on one server, both embedded backends (SQLite; PostgreSQL without Redis)."""

from __future__ import annotations

from tests.support.client import Api
from tests.support.ruler_session import ruler_session


async def test_ruler_and_ping_are_measured_and_routed_like_pointers(api: Api) -> None:
    await ruler_session(api, api)
