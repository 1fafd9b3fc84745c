"""Tokens as characters on one server, both embedded backends (SQLite; PostgreSQL without Redis):
the scripted session of tests/support/character_session.py."""

from __future__ import annotations

from tests.support.character_session import character_session
from tests.support.client import Api


async def test_bars_conditions_and_their_visibility_reach_each_audience(api: Api) -> None:
    await character_session(api, api)
