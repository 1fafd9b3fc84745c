"""The turn order's rules (domain/initiative.py): adding, sorting by the system's order, stepping
through turns and rounds, removing the current entry, and what players see of it."""

from __future__ import annotations

import pytest

from tableforge.domain import initiative as rules
from tableforge.domain.errors import AppError


def tracker(*values: tuple[str, int]) -> dict:
    doc = rules.empty()
    for i, (token, value) in enumerate(values):
        doc = rules.apply(doc, "add", token_id=token, value=value, new_id=f"e{i}")
    return doc


def test_add_again_replaces_the_value_and_sort_follows_the_order() -> None:
    doc = tracker(("a", 5), ("b", 12), ("c", 9))
    doc = rules.apply(doc, "add", token_id="a", value=20, new_id="ignored")
    assert [(e["token_id"], e["value"]) for e in doc["entries"]] == [("a", 20), ("b", 12), ("c", 9)]
    assert [e["token_id"] for e in rules.apply(doc, "sort", order="ascending")["entries"]] == ["c", "b", "a"]
    assert [e["token_id"] for e in rules.apply(doc, "sort")["entries"]] == ["a", "b", "c"]
    assert doc["version"] == 4


def test_turns_wrap_into_rounds_both_ways() -> None:
    doc = tracker(("a", 3), ("b", 2))
    seen = []
    for op in ("next", "next", "next", "prev", "prev", "prev", "next_round"):
        doc = rules.apply(doc, op)
        seen.append((rules.current_token(doc), doc["round"]))
    assert seen == [("a", 1), ("b", 1), ("a", 2), ("b", 1), ("a", 1), ("a", 1), ("a", 2)]


def test_removing_the_current_entry_passes_the_turn_on() -> None:
    doc = rules.apply(tracker(("a", 3), ("b", 2), ("c", 1)), "next")
    doc = rules.apply(doc, "next")
    doc = rules.apply(doc, "remove", entry_id="e1")
    assert rules.current_token(doc) == "c"
    doc = rules.apply(doc, "remove", entry_id="e2")
    assert rules.current_token(doc) == "a"
    with pytest.raises(AppError) as info:
        rules.apply(doc, "remove", entry_id="nope")
    assert info.value.code == "entry_not_found"
    with pytest.raises(AppError) as info:
        rules.apply(rules.empty(), "next")
    assert info.value.code == "initiative_empty"


def test_players_see_their_entries_and_no_hidden_current_turn() -> None:
    doc = rules.apply(tracker(("a", 3), ("m", 2)), "next")
    doc = rules.apply(doc, "next")
    view = rules.for_players(doc, {"a"})
    assert [e["token_id"] for e in view["entries"]] == ["a"] and view["current"] is None
    assert rules.for_players(rules.apply(doc, "next"), {"a"})["current"] == "e0"


def test_bounded() -> None:
    doc = tracker(*((f"t{i}", i) for i in range(rules.MAX_ENTRIES)))
    with pytest.raises(AppError) as info:
        rules.apply(doc, "add", token_id="one more", value=1, new_id="x")
    assert info.value.code == "initiative_full"
