"""Dice notation: exact results with a scripted rng, every rejection path, and the secrets-backed range."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable

import pytest

from tableforge.domain.dice import ConstantTerm, DiceExpression, DiceRoll, DiceTerm, parse, roll
from tableforge.domain.errors import ValidationFailed


class ScriptedRng:
    """Hands out fixed values and remembers which die sizes were asked for."""

    def __init__(self, *values: int) -> None:
        self.values = list(values)
        self.sides_asked: list[int] = []

    def __call__(self, sides: int) -> int:
        self.sides_asked.append(sides)
        assert self.values, "roll asked for more dice than the test scripted"
        return self.values.pop(0)


def rolled(notation: str, *values: int) -> DiceRoll:
    rng = ScriptedRng(*values)
    result = roll(notation, rng)
    assert rng.values == [], "roll used fewer dice than the test scripted"
    return result


# --- valid notations, exact results -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("notation", "values", "normalized", "rolls", "kept", "modifier", "total"),
    [
        ("1d20+5", [13], "1d20+5", [[13]], [[13]], 5, 18),
        ("d20", [7], "1d20", [[7]], [[7]], 0, 7),
        ("4d6kh3+2", [3, 6, 1, 4], "4d6kh3+2", [[3, 6, 1, 4]], [[3, 6, 4]], 2, 15),
        ("4d6k3", [3, 6, 1, 4], "4d6kh3", [[3, 6, 1, 4]], [[3, 6, 4]], 0, 13),
        ("2d20kh1+3", [8, 17], "2d20kh1+3", [[8, 17]], [[17]], 3, 20),
        ("2d20kl1", [8, 17], "2d20kl1", [[8, 17]], [[8]], 0, 8),
        ("4d6dl1", [3, 6, 1, 4], "4d6dl1", [[3, 6, 1, 4]], [[3, 6, 4]], 0, 13),
        ("4d6d1", [3, 6, 1, 4], "4d6dl1", [[3, 6, 1, 4]], [[3, 6, 4]], 0, 13),
        ("4d6dh1", [3, 6, 1, 4], "4d6dh1", [[3, 6, 1, 4]], [[3, 1, 4]], 0, 8),
        ("5d10kl2", [9, 2, 7, 1, 5], "5d10kl2", [[9, 2, 7, 1, 5]], [[2, 1]], 0, 3),
        ("4d6dl0", [3, 6, 1, 4], "4d6dl0", [[3, 6, 1, 4]], [[3, 6, 1, 4]], 0, 14),
        ("4d6kh4", [3, 6, 1, 4], "4d6kh4", [[3, 6, 1, 4]], [[3, 6, 1, 4]], 0, 14),
        ("3d6 + 1d4 - 2", [2, 5, 6, 3], "3d6+1d4-2", [[2, 5, 6], [3]], [[2, 5, 6], [3]], -2, 14),
        ("1d20-1d4", [15, 3], "1d20-1d4", [[15], [3]], [[15], [3]], 0, 12),
        ("-1d4+2", [4], "-1d4+2", [[4]], [[4]], 2, -2),
        ("  2D6KH1  -  3 + 4 ", [2, 5], "2d6kh1-3+4", [[2, 5]], [[5]], 1, 6),
        ("D%", [42], "1d100", [[42]], [[42]], 0, 42),
        ("2d%kl1", [42, 99], "2d100kl1", [[42, 99]], [[42]], 0, 42),
        ("+5", [], "5", [], [], 5, 5),
        ("007d6", [1] * 7, "7d6", [[1] * 7], [[1] * 7], 0, 7),
        ("1d6\t+\n1", [6], "1d6+1", [[6]], [[6]], 1, 7),
    ],
)
def test_rolls_exactly(notation: str, values: list[int], normalized: str, rolls: list[list[int]],
                       kept: list[list[int]], modifier: int, total: int) -> None:
    result = rolled(notation, *values)
    assert result.notation == normalized
    assert result.rolls == rolls
    assert result.kept == kept
    assert result.modifier == modifier
    assert result.total == total


def test_rng_is_asked_for_each_die_in_order() -> None:
    rng = ScriptedRng(1, 2, 3, 4, 5)
    roll("2d6 + d% - 2d8", rng)
    assert rng.sides_asked == [6, 6, 100, 8, 8]


def test_ties_are_broken_by_roll_order() -> None:
    # The earlier of equal dice counts as the lower one for dl, and the higher one for dh.
    assert rolled("4d6dl1", 2, 5, 2, 2).kept == [[5, 2, 2]]
    assert rolled("4d6dh1", 5, 2, 5, 5).kept == [[2, 5, 5]]
    assert rolled("3d6kh2", 4, 4, 4).kept == [[4, 4]]


def test_to_dict_shape() -> None:
    result = rolled("4d6kh3 - 1d4 + 2 - 1", 3, 6, 1, 4, 2)
    assert result.to_dict() == {
        # the v1 fields, as before
        "notation": "4d6kh3-1d4+2-1",
        "rolls": [[3, 6, 1, 4], [2]],
        "kept": [[3, 6, 4], [2]],
        "modifier": 1,
        "total": 12,
        # the extension: no label, one set, and each die with its flags
        "label": None,
        "repeat": 1,
        "totals": [12],
        "terms": [
            {"set": 0, "dice": "4d6kh3", "sign": 1, "count": 4, "sides": 6, "rolls": [3, 6, 1, 4],
             "kept": [3, 6, 4], "subtotal": 13,
             "results": [{"value": 3}, {"value": 6}, {"value": 1, "dropped": True}, {"value": 4}]},
            {"set": 0, "dice": "1d4", "sign": -1, "count": 1, "sides": 4, "rolls": [2], "kept": [2],
             "subtotal": 2, "results": [{"value": 2}]},
            {"set": 0, "constant": 2, "sign": 1},
            {"set": 0, "constant": 1, "sign": -1},
        ],
    }


def test_to_dict_does_not_share_lists_with_the_roll() -> None:
    result = rolled("2d6", 1, 2)
    data = result.to_dict()
    data["rolls"][0].append(99)
    data["terms"][0]["kept"].append(99)
    assert result.rolls == [[1, 2]]
    assert result.kept == [[1, 2]]


def test_roll_is_frozen() -> None:
    result = rolled("1d6", 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.total = 6  # type: ignore[misc]


def test_parse_validates_without_rolling() -> None:
    expression = parse("4d6kh3 + 1d8 - 2")
    assert isinstance(expression, DiceExpression)
    assert expression.terms == (
        DiceTerm(count=4, sides=6, sign=1, mode="kh", amount=3),
        DiceTerm(count=1, sides=8, sign=1),
        ConstantTerm(value=2, sign=-1),
    )
    assert expression.notation == "4d6kh3+1d8-2" == str(expression)
    assert expression.dice_count == 5
    assert expression.modifier == -2
    assert expression.roll(ScriptedRng(6, 6, 1, 6, 8)).total == 18 + 8 - 2


def test_normalized_notation_parses_back_to_the_same_expression() -> None:
    for notation in ["D20 + 5", "4d6K3", "d%-2", "3d6 - 1d4dh0", "-2 + 2d20d1"]:
        expression = parse(notation)
        assert parse(expression.notation) == expression


def test_limits_are_inclusive() -> None:
    assert parse("100d6").dice_count == 100
    assert parse("50d6+50d6").dice_count == 100
    assert parse("1d1000").terms == (DiceTerm(count=1, sides=1000),)
    assert parse("1d2").terms == (DiceTerm(count=1, sides=2),)
    assert parse("1000000-1000000").modifier == 0
    assert len(parse("+".join(["1"] * 20)).terms) == 20
    assert parse("1" + " " * 197 + "+1").modifier == 2  # exactly 200 characters


def test_bad_rng_output_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"1\.\.6"):
        roll("1d6", lambda sides: 7)
    with pytest.raises(ValueError):
        roll("1d6", lambda sides: 0)


# --- invalid notations ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("notation", "message_part"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "unexpected 'a' at position 1"),
        ("1d", "unexpected end of notation at position 3"),
        ("d", "number of sides"),
        ("d0", "at least 2 sides"),
        ("d1", "at least 2 sides"),
        ("0d6", "at least 1 die"),
        ("101d6", "too many dice: 101"),
        ("50d6+60d6", "too many dice: 110 in total (at most 100)"),
        ("1d1001", "too many sides: d1001"),
        ("4d6kh5", "cannot keep 5 of 4 dice"),
        ("4d6kh0", "cannot keep 0 of 4 dice"),
        ("4d6kl5", "cannot keep 5 of 4 dice"),
        ("4d6dl4", "cannot drop 4 of 4 dice"),
        ("4d6dh4", "cannot drop 4 of 4 dice"),
        ("1d6d1", "cannot drop 1 of 1 dice"),
        ("4d6kh", "how many dice to keep"),
        ("4d6dl", "how many dice to drop"),
        ("4d6kh3dl1", "unexpected 'd' at position 7"),
        ("2d6+", "unexpected end of notation at position 5"),
        ("2d6 + - 1", "unexpected '-' at position 7"),
        ("+", "unexpected end of notation"),
        ("1d6; DROP TABLE users", "unexpected ';' at position 4"),
        ("1d6" + "+1d6" * 60, "too long"),
        ("1" * 201, "too long: 201 characters"),
        ("x" * 10_000, "too long"),
        ("1e5", "unexpected 'e' at position 2"),
        ("1.5", "unexpected '.' at position 2"),
        ("2*3", "unexpected '*' at position 2"),
        ("(1d6)", "unexpected '(' at position 1"),
        ("99999999999999999999d6", "too many dice: 99999999999999999999"),
        ("1d99999999999999999999", "too many sides"),
        ("1000001", "number too large: 1000001"),
        ("4 d6", "unexpected 'd' at position 3"),
        ("1d20 kh1", "unexpected 'k' at position 6"),
        ("1d\u0663", "unexpected"),  # Arabic-Indic digit three is not a digit here
        ("1d6\x00", "unexpected '\\x00' at position 4"),
        ("+".join(["1"] * 21), "too many terms"),
        ("+".join(["1d6"] * 21), "too many terms"),
    ],
)
def test_rejects_bad_notation(notation: str, message_part: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse(notation)
    assert caught.value.code == "bad_dice"
    assert caught.value.status == 422
    assert message_part in caught.value.message
    # roll() must refuse the same input before asking for any random number.
    rng = ScriptedRng()
    with pytest.raises(ValidationFailed):
        roll(notation, rng)
    assert rng.sides_asked == []


def test_error_details_point_at_the_problem() -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse("1d6 + 2x")
    assert caught.value.details == {"position": 8}


def test_rejects_non_string() -> None:
    bad: Callable[[object], DiceExpression] = parse  # type: ignore[assignment]
    with pytest.raises(ValidationFailed) as caught:
        bad(20)
    assert caught.value.code == "bad_dice"


# --- real randomness -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sides", [2, 4, 6, 20, 100, 1000])
def test_secrets_rolls_stay_in_range(sides: int) -> None:
    seen: set[int] = set()
    for _ in range(200):
        result = roll(f"50d{sides}")
        assert all(1 <= value <= sides for value in result.rolls[0])
        assert result.total == sum(result.rolls[0])
        seen.update(result.rolls[0])
    if sides <= 20:
        assert seen == set(range(1, sides + 1))  # 10,000 rolls: every face shows up


def test_secrets_keep_highest_totals_stay_in_range() -> None:
    for _ in range(2000):
        result = roll("4d6kh3+2")
        assert 5 <= result.total <= 20
        assert len(result.kept[0]) == 3
        assert sorted(result.kept[0]) == sorted(result.rolls[0])[1:]


def test_default_rng_uses_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_randbelow(n: int) -> int:
        calls.append(n)
        return n - 1

    monkeypatch.setattr(secrets, "randbelow", fake_randbelow)
    assert roll("3d8").total == 24
    assert calls == [8, 8, 8]
