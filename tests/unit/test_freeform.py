"""domain/freeform.py and domain/text.py: the limits of free-form JSON, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from tableforge.domain import freeform
from tableforge.domain.text import check_text, has_nul


def _deep(depth: int) -> Any:
    doc: Any = 1
    for _ in range(depth):
        doc = [doc]
    return doc


def test_depth_is_checked_without_recursion() -> None:
    assert freeform.check(_deep(freeform.MAX_DEPTH)) is None
    violation = freeform.check(_deep(100_000))  # far past the interpreter's recursion limit
    assert violation is not None and violation.limit == "max_depth"


@pytest.mark.parametrize(("doc", "limit", "path"), [
    ({"a": {"b": [0, 2**53]}}, "int_range", "/a/b/1"),
    ({"a": -(2**53)}, "int_range", "/a"),
    ({"x/y": float("inf")}, "finite_number", "/x~1y"),
    ({"s": "a\x00"}, "nul", "/s"),
    ({"k" * 201: 1}, "max_key_chars", None),
    ({"l": list(range(freeform.MAX_ITEMS + 1))}, "max_items", "/l"),
    ({"l": [[0] * 9_000, [0] * 9_000, [0] * 9_000]}, "max_nodes", None),
])
def test_each_limit_names_itself_and_where(doc: Any, limit: str, path: str | None) -> None:
    violation = freeform.check(doc)
    assert violation is not None and violation.limit == limit
    if path is not None:
        assert violation.path == path


def test_within_limits() -> None:
    doc = {"hp": 2**53 - 1, "dice": ["1d20", -5, 1.5, None, True], "sheet": {"name": "é" * 20_000}}
    assert freeform.check(doc) is None


def test_text() -> None:
    assert has_nul("a\x00") and not has_nul("a0")
    assert check_text("fine") == "fine"
    with pytest.raises(ValueError, match="NUL"):
        check_text("\x00")
