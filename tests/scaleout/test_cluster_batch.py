"""Batch frames across instances: the previews and the commit come through Redis to the readers'
instance, and still reach a batch reader and a single-frame reader the same, in order."""

from __future__ import annotations

from tests.support.batching import check_batching
from tests.support.client import Api
from tests.support.cluster import Cluster


async def test_batch_frames_across_two_instances(pair: Cluster) -> None:
    first, second = pair.servers
    async with Api(first.base_url) as api:
        await check_batching(api, first.ws_url, second.ws_url, second.ws_url)
