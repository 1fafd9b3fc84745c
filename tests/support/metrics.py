"""Read one sample of a server's /metrics (the tests compare values before and after)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


async def sample(http: httpx.AsyncClient, name: str, **labels: str) -> float:
    """The value of the sample `name` with these labels (0.0 when absent: a counter never touched)."""
    text = (await http.get("/metrics")).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total
