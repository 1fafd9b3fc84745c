"""Hidden information on one server (embedded: SQLite, and PostgreSQL without Redis): the scripted
sessions of tests/support/hidden_session.py."""

from __future__ import annotations

from tests.support.client import Api
from tests.support.hidden_session import hidden_tokens_session, spectator_session, whispers_and_rolls_session


async def test_players_never_receive_hidden_tokens(api: Api) -> None:
    await hidden_tokens_session(api, api)


async def test_whispers_and_secret_rolls_reach_exactly_their_audience(api: Api) -> None:
    await whispers_and_rolls_session(api, api)


async def test_a_spectator_sees_what_players_see_and_cannot_act(api: Api) -> None:
    await spectator_session(api, api)
