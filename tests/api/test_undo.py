"""Undo on one server, both embedded backends (SQLite; PostgreSQL without Redis): the scripted session
of tests/support/undo_session.py."""

from __future__ import annotations

from tests.support.client import Api
from tests.support.undo_session import undo_session


async def test_undo_inverts_the_callers_last_token_changes(api: Api) -> None:
    await undo_session(api, api)
