"""Invalidation messages and the bookkeeping of invalidations that could not be delivered."""

from __future__ import annotations

import pytest

from tableforge.cache.invalidation import (
    MAX_KEYS_PER_MESSAGE,
    Invalidation,
    PendingInvalidations,
    key_messages,
)


def test_messages_round_trip() -> None:
    for message in (
        Invalidation("a", keys=("k1", "k2")),
        Invalidation("a", patterns=("catalog:*",)),
        Invalidation("a", tags=("catalog",)),
        Invalidation("a", flush=True),
    ):
        assert Invalidation.decode(message.encode()) == message
    assert [Invalidation("a", keys=("k",)).type, Invalidation("a", flush=True).type] == ["keys", "flush"]


@pytest.mark.parametrize(
    "data", [b"", b"not json", b"[]", b'{"k": ["x"]}', b'{"i": 3}', b'{"i": "a", "k": "x"}', b'{"i": "a", "k": [1]}']
)
def test_foreign_or_broken_messages_decode_to_none(data: bytes) -> None:
    assert Invalidation.decode(data) is None


def test_keys_are_batched_per_message() -> None:
    keys = [f"k{i}" for i in range(MAX_KEYS_PER_MESSAGE * 2 + 1)]
    messages = [Invalidation.decode(m) for m in key_messages("a", keys)]
    assert [len(m.keys) for m in messages if m] == [MAX_KEYS_PER_MESSAGE, MAX_KEYS_PER_MESSAGE, 1]
    assert [k for m in messages if m for k in m.keys] == keys


def test_pending_take_merge_and_overflow() -> None:
    pending = PendingInvalidations(limit=3)
    assert not pending
    pending.add_keys(["a", "b"])
    pending.add_tag("catalog")
    taken = pending.take()
    assert not pending and taken.keys == {"a", "b"} and taken.tags == {"catalog"}
    pending.merge(taken)  # the replay failed: keep everything for the next attempt
    assert pending.keys == {"a", "b"}
    pending.add_pattern("room:*")
    assert pending.overflow and not pending.keys and not pending.patterns
    assert pending.tags == {"catalog"}  # generation bumps are never dropped
