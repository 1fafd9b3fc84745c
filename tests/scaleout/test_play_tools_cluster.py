"""Tokens as characters and the turn order across two real instances (PostgreSQL + Redis): the GM on one, the players
and the spectator on the other, so each field's audience (the owner's `pu:` copy included) travels
through the broker and the stored history."""

from __future__ import annotations

from tests.support.character_session import character_session
from tests.support.client import Api
from tests.support.cluster import Cluster
from tests.support.initiative_session import initiative_session
from tests.support.ruler_session import ruler_session
from tests.support.undo_session import undo_session


async def test_each_audience_gets_its_copy_across_instances(pair: Cluster) -> None:
    async with Api(pair.servers[0].base_url) as gm_api, Api(pair.servers[1].base_url) as player_api:
        await character_session(gm_api, player_api)


async def test_turn_order_across_instances(pair: Cluster) -> None:
    async with Api(pair.servers[0].base_url) as gm_api, Api(pair.servers[1].base_url) as player_api:
        await initiative_session(gm_api, player_api)


async def test_ruler_and_ping_across_instances(pair: Cluster) -> None:
    async with Api(pair.servers[0].base_url) as gm_api, Api(pair.servers[1].base_url) as player_api:
        await ruler_session(gm_api, player_api)


async def test_undo_across_instances(pair: Cluster) -> None:
    """Alice changes on one instance and undoes from her socket on the other."""
    async with Api(pair.servers[0].base_url) as gm_api, Api(pair.servers[1].base_url) as player_api:
        await undo_session(gm_api, player_api)
