"""Hidden information across two real instances (PostgreSQL + Redis): the GM's socket and HTTP on
one, the players' and the spectator's on the other, so every audience travels through the broker
and the stored history (tests/support/hidden_session.py has the scripts and the scans)."""

from __future__ import annotations

from tests.support.client import Api
from tests.support.cluster import Cluster
from tests.support.hidden_session import hidden_tokens_session, spectator_session, whispers_and_rolls_session


async def test_players_on_another_instance_never_receive_hidden_tokens(pair: Cluster) -> None:
    async with Api(pair.servers[0].base_url) as gm_api, Api(pair.servers[1].base_url) as player_api:
        await hidden_tokens_session(gm_api, player_api)


async def test_whispers_and_secret_rolls_across_instances(pair: Cluster) -> None:
    async with Api(pair.servers[0].base_url) as gm_api, Api(pair.servers[1].base_url) as player_api:
        await whispers_and_rolls_session(gm_api, player_api)


async def test_a_spectator_on_another_instance_cannot_act(pair: Cluster) -> None:
    async with Api(pair.servers[0].base_url) as gm_api, Api(pair.servers[1].base_url) as player_api:
        await spectator_session(gm_api, player_api)
