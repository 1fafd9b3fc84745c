"""Batch frames on one embedded instance (protocol: `join {batch: true}`)."""

from __future__ import annotations

from tests.support.batching import check_batching
from tests.support.client import Api


async def test_batch_frames_carry_the_same_frames_in_order_only_to_sockets_that_asked(api: Api) -> None:
    await check_batching(api, api.ws_url, api.ws_url, api.ws_url)
