"""The turn order on one server, both embedded backends (SQLite; PostgreSQL without Redis)."""

from __future__ import annotations

from tests.support.client import Api
from tests.support.initiative_session import initiative_session


async def test_turn_order_with_a_hidden_monster(api: Api) -> None:
    await initiative_session(api, api)
