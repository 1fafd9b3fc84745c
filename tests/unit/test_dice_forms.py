"""The play-tools dice forms (issue 13): labels, explosions, success counts, Fudge dice, repeats.

Exact results come from a scripted rng; the grammar's edges from parametrized rejections; and
hypothesis checks that any generated notation round-trips through its canonical spelling, rolls
within its bounds, and that no text at all makes the parser fail other than with `bad_dice`."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.test_dice import ScriptedRng

from tableforge.domain import dice
from tableforge.domain.dice import Compare, DiceCommand, DiceTerm, parse, parse_command, roll_command
from tableforge.domain.errors import ValidationFailed


def command(text: str, *values: int, label: str | None = None) -> dice.CommandRoll:
    rng = ScriptedRng(*values)
    result = roll_command(text, rng, label=label)
    assert rng.values == [], "the roll used fewer dice than the test scripted"
    return result


def results(out: dict, term: int = 0) -> list[dict]:
    return out["terms"][term]["results"]


# --- labels ----------------------------------------------------------------------------------------------

def test_a_label_is_kept_apart_from_the_notation() -> None:
    result = command("1d20+5 stealth", 13)
    out = result.to_dict()
    assert (out["notation"], out["label"], out["total"]) == ("1d20+5", "stealth", 18)
    assert result.text() == "stealth: 1d20+5 = 18"


@pytest.mark.parametrize(("text", "label"), [
    ("1d20   sneak \t attack  ", "sneak attack"),
    ("1d20 + 5 Stealth (with advantage)", "Stealth (with advantage)"),
    ("2d6 dagger 2", "dagger 2"),
    ("1d20 élan", "élan"),
    ("1d20 🎲 luck", "🎲 luck"),
    ("1d20 damage", "damage"),  # starts with d, but not like dice
    ("4dF fate", "fate"),
    ("1d20 khan's test", "khan's test"),
])
def test_labels(text: str, label: str) -> None:
    assert parse_command(text).label == label


def test_a_label_given_apart_is_checked_like_a_typed_one() -> None:
    assert command("1d20", 5, label="  Perception  ").to_dict()["label"] == "Perception"
    assert command("1d20", 5, label="   ").to_dict()["label"] is None
    with pytest.raises(ValidationFailed, match="given twice"):
        roll_command("1d20 stealth", label="stealth")
    with pytest.raises(ValidationFailed, match="label too long"):
        roll_command("1d20", label="x" * 101)
    with pytest.raises(ValidationFailed, match="control characters"):
        roll_command("1d20", label="bell\x07")


# --- exploding dice ------------------------------------------------------------------------------------

def test_exploding_dice_add_a_die_right_after_the_one_that_exploded() -> None:
    rng = ScriptedRng(6, 2, 3, 6, 6, 1)
    out = roll_command("3d6!", rng).to_dict()
    assert rng.sides_asked == [6] * 6
    assert results(out) == [{"value": 6, "exploded": True}, {"value": 2, "extra": True}, {"value": 3},
                            {"value": 6, "exploded": True}, {"value": 6, "extra": True, "exploded": True},
                            {"value": 1, "extra": True}]
    assert out["total"] == 24 and out["rolls"] == [[6, 2, 3, 6, 6, 1]] and out["kept"] == out["rolls"]
    assert out["terms"][0]["count"] == 3 and out["notation"] == "3d6!"


@pytest.mark.parametrize(("text", "values", "total", "exploded"), [
    ("2d10!>=9", [9, 10, 4, 3], 26, 2),  # 9 explodes, so does its extra 10
    ("1d%!", [100, 42], 142, 1),
    ("d4!=1", [1, 1, 3], 5, 2),
    ("1d6!>5", [6, 6, 2], 14, 2),
    ("1d6!<2", [1, 5], 6, 1),
])
def test_explosion_conditions(text: str, values: list[int], total: int, exploded: int) -> None:
    out = command(text, *values).to_dict()
    assert out["total"] == total
    assert sum(1 for d in results(out) if d.get("exploded")) == exploded


def test_keep_applies_to_every_die_rolled_extras_included() -> None:
    out = command("4d6!kh3", 6, 5, 1, 2, 3).to_dict()
    assert out["kept"] == [[6, 5, 3]] and out["total"] == 14
    assert [d.get("dropped", False) for d in results(out)] == [False, False, True, True, False]


def test_explosions_stop_at_the_command_budget_and_say_so() -> None:
    # A rng that always rolls the highest face: without a bound this would never end.
    result = roll_command("100d2!", lambda sides: sides)
    dice_ = results(result.to_dict())
    assert len(dice_) == 100 + dice.MAX_EXTRA_DICE
    assert sum(1 for d in dice_ if d.get("exploded")) == dice.MAX_EXTRA_DICE
    assert sum(1 for d in dice_ if d.get("extra")) == dice.MAX_EXTRA_DICE
    capped = [d for d in dice_ if d.get("capped")]
    assert len(capped) == 100 and all(not d.get("exploded") for d in capped)
    assert result.total == 2 * (100 + dice.MAX_EXTRA_DICE)


def test_repeats_share_one_explosion_budget() -> None:
    out = roll_command("2#50d2!", lambda sides: sides).to_dict()
    per_set = [sum(1 for d in t["results"] if d.get("extra")) for t in out["terms"]]
    assert per_set == [dice.MAX_EXTRA_DICE, 0]
    assert out["totals"] == [2 * (50 + dice.MAX_EXTRA_DICE), 100]


# --- success counting ------------------------------------------------------------------------------------

def test_success_counting() -> None:
    out = command("6d6>=5", 1, 5, 6, 4, 5, 2).to_dict()
    assert out["total"] == 3 and out["totals"] == [3]
    term = out["terms"][0]
    assert (term["successes"], term["failures"], term["subtotal"]) == (3, 0, 3)
    assert [d.get("success", False) for d in term["results"]] == [False, True, True, False, True, False]
    assert out["rolls"] == [[1, 5, 6, 4, 5, 2]], "the v1 fields still list every die"


def test_cs_is_the_same_count_and_the_canonical_spelling_drops_it() -> None:
    values = [7, 3, 10, 6, 9, 1, 7, 2, 8, 5]
    a, b = command("10d10cs>=7", *values), command("10d10>=7", *values)
    assert a.to_dict() == b.to_dict()
    assert a.total == 5 and a.command.notation == "10d10>=7"
    assert a.text() == "10d10>=7 = 5 successes"


def test_failures_are_subtracted() -> None:
    out = command("5d10>=8f1", 8, 1, 10, 1, 5).to_dict()
    term = out["terms"][0]
    assert (term["successes"], term["failures"], out["total"]) == (2, 2, 0)
    assert [(d.get("success", False), d.get("failure", False)) for d in term["results"]] == [
        (True, False), (False, True), (True, False), (False, True), (False, False)]
    assert out["notation"] == "5d10>=8f1"


def test_dropped_dice_are_not_counted_and_counts_add_to_other_terms() -> None:
    out = command("4d10kh2>=7+1", 9, 8, 2, 7).to_dict()
    assert results(out) == [{"value": 9, "success": True}, {"value": 8, "success": True},
                            {"value": 2, "dropped": True}, {"value": 7, "dropped": True}]
    assert out["total"] == 3


def test_explode_then_count_with_cs() -> None:
    out = command("3d10!cs>=8", 10, 4, 8, 2).to_dict()
    assert [d["value"] for d in results(out)] == [10, 4, 8, 2]
    assert out["total"] == 2 and out["notation"] == "3d10!cs>=8"
    # A comparison right after ! belongs to the explosion.
    assert parse("3d10!>=8").terms[0] == DiceTerm(3, 10, explode=Compare(">=", 8))


def test_exact_face_count() -> None:
    assert command("5d6=6", 6, 1, 6, 6, 3).total == 3
    assert command("5d6cs6", 6, 1, 6, 6, 3).total == 3


# --- Fudge dice ----------------------------------------------------------------------------------------

def test_fudge_dice_read_a_d3_as_minus_one_zero_plus_one() -> None:
    rng = ScriptedRng(1, 2, 3, 3)
    out = roll_command("4dF+1", rng).to_dict()
    assert rng.sides_asked == [3, 3, 3, 3]
    assert out["rolls"] == [[-1, 0, 1, 1]] and out["total"] == 2
    assert out["terms"][0]["sides"] == "F" and out["notation"] == "4dF+1"


def test_fudge_keep_and_count() -> None:
    assert command("4dFkh2", 1, 3, 3, 2).total == 2
    assert command("4dF>=1", 1, 3, 3, 2).total == 2


# --- several terms, repeats ------------------------------------------------------------------------------

def test_several_dice_terms() -> None:
    out = command("1d20+1d4+3", 11, 2).to_dict()
    assert out["total"] == 16 and out["rolls"] == [[11], [2]] and out["modifier"] == 3


def test_repeat_rolls_the_expression_again_and_totals_each_set() -> None:
    result = command("3#1d20+2", 4, 17, 9)
    out = result.to_dict()
    assert (out["notation"], out["repeat"], out["totals"]) == ("3#1d20+2", 3, [6, 19, 11])
    # The v1 fields describe the sets together, so an old client's sum is right.
    assert out["total"] == 36 and out["modifier"] == 6 and out["rolls"] == [[4], [17], [9]]
    assert [t["set"] for t in out["terms"]] == [0, 0, 1, 1, 2, 2]
    assert result.text() == "3#1d20+2 = 6, 19, 11"
    assert command(" 2 # 1d6 attacks", 3, 4).to_dict()["label"] == "attacks"
    assert parse_command("1#1d6").notation == "1d6"


def test_old_forms_keep_working_through_the_command_parser() -> None:
    for text in ["4d6kh3+2", "2d20kl1", "3d6 + 1d4 - 2", "d%", "4d6d1", "-1d4+2", "+5"]:
        assert parse_command(text).expression == parse(text)


# --- refusals ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "message_part", "position"), [
    ("1d6!>=1", "would make every d6 explode", 4),
    ("1d2!<3", "would make every d2 explode", 4),
    ("1d6!>0", "would make every d6 explode", 4),
    ("4dF!", "Fudge dice cannot explode", 4),
    ("3d6!!", "compounding (!!) explosions are not supported", 5),
    ("3d6!p", "penetrating (!p) explosions are not supported", 5),
    ("1d20 kh1", "unexpected 'k' at position 6", 6),
    ("4 d6", "unexpected 'd' at position 3", 3),
    ("1d20 + 5 d4", "unexpected 'd' at position 10", 10),
    ("1d20 2d6", "unexpected '2' at position 6", 6),
    ("1d20+5stealth", "unexpected 's' at position 7", 7),
    ("1d20 >=5", "unexpected '>' at position 6", 6),
    ("1d20 cs>=5", "unexpected 'c' at position 6", 6),
    ("4d6kh3!", "unexpected '!' at position 7", 7),
    ("2d6>=3>=4", "unexpected '>' at position 7", 7),
    ("1d6f1", "failures are counted after successes", 4),
    ("5>=3", "apply to a dice group", 2),
    ("5!", "apply to a dice group", 2),
    ("1d6cs", "a comparison after 'cs'", 6),
    ("1d6c>=3", "'cs' and a comparison", 5),
    ("1d6>=", "a number after '>='", 6),
    ("1d6>=1001", "number too large in a success count: 1001", 4),
    ("1d6!>=1001", "number too large in an explosion", 5),
    ("6d6>=5f", "after 'f'", 8),
    ("1dX", "the number of sides", 3),
    ("#1d20", "unexpected '#' at position 1", 1),
    ("3#", "unexpected end of notation at position 3", 3),
    ("0#1d6", "cannot repeat a roll 0 times", 1),
    ("21#1d6", "cannot repeat a roll 21 times", 1),
    ("3#1d6#2", "unexpected '#' at position 6", 6),
    ("1d20 a\x07b", "control characters (position 7)", 7),
    ("1d20 " + "x" * 101, "label too long: 101 characters", 6),
])
def test_refusals_point_at_the_character(text: str, message_part: str, position: int) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_command(text)
    assert caught.value.code == "bad_dice" and caught.value.status == 422
    assert message_part in caught.value.message
    assert caught.value.details == {"position": position}
    rng = ScriptedRng()
    with pytest.raises(ValidationFailed):
        roll_command(text, rng)
    assert rng.sides_asked == [], "refused before any die was rolled"


@pytest.mark.parametrize(("text", "message_part"), [
    ("3#50d6", "too many dice: 150 in total (3 times 50) (at most 100)"),
    ("20#1d6+5d6", "too many dice: 120 in total"),
])
def test_repeats_count_towards_the_dice_limit(text: str, message_part: str) -> None:
    with pytest.raises(ValidationFailed, match=message_part.replace("(", r"\(").replace(")", r"\)")):
        parse_command(text)


def test_expressions_take_neither_repeat_nor_label() -> None:
    with pytest.raises(ValidationFailed, match="unexpected '#' at position 2"):
        parse("3#1d20")
    with pytest.raises(ValidationFailed, match="unexpected 's' at position 6"):
        parse("1d20 stealth")


# --- properties ----------------------------------------------------------------------------------------

_compare = st.builds(Compare, st.sampled_from([">=", "<=", ">", "<", "="]), st.integers(0, 12))


@st.composite
def dice_terms(draw: st.DrawFn) -> DiceTerm:
    fudge = draw(st.booleans())
    sides = 3 if fudge else draw(st.sampled_from([2, 4, 6, 8, 10, 12, 20, 100]))
    count = draw(st.integers(1, 8))
    explode = None
    if not fudge and draw(st.booleans()):
        explode = draw(_compare.filter(lambda c: not all(c.matches(f) for f in range(1, sides + 1))))
    mode = draw(st.sampled_from([None, "kh", "kl", "dh", "dl"]))
    amount = 0
    if mode in ("kh", "kl"):
        amount = draw(st.integers(1, count))
    elif mode in ("dh", "dl"):
        amount = draw(st.integers(0, count - 1))
    success = draw(st.none() | _compare)
    failure = draw(st.none() | _compare) if success is not None else None
    return DiceTerm(count, sides, draw(st.sampled_from([1, -1])), mode, amount, explode, success, failure, fudge)


@st.composite
def commands(draw: st.DrawFn) -> DiceCommand:
    terms = draw(st.lists(dice_terms() | st.builds(dice.ConstantTerm, st.integers(0, 50), st.sampled_from([1, -1])),
                          min_size=1, max_size=4))
    if terms[0].sign < 0 and isinstance(terms[0], dice.ConstantTerm) and terms[0].value == 0:
        terms[0] = dice.ConstantTerm(0, 1)
    label = draw(st.none() | st.sampled_from(["stealth", "attack roll", "Mêlée", "fire 🔥"]))
    return DiceCommand(dice.DiceExpression(tuple(terms)), draw(st.integers(1, 3)), label)


@settings(max_examples=150, deadline=None)
@given(commands(), st.integers(0, 2**32))
def test_generated_commands_round_trip_and_roll_within_bounds(cmd: DiceCommand, seed: int) -> None:
    text = cmd.notation + (f" {cmd.label}" if cmd.label else "")
    parsed = parse_command(text)
    assert parsed.notation == cmd.notation and parsed.label == cmd.label
    assert parse_command(parsed.notation).notation == parsed.notation, "canonical is a fixed point"
    source = random.Random(seed)
    out = parsed.roll(lambda sides: source.randint(1, sides)).to_dict()
    assert len(out["totals"]) == cmd.repeat and out["total"] == sum(out["totals"])
    extras = 0
    for term in out["terms"]:
        if "constant" in term:
            continue
        values = [d["value"] for d in term["results"]]
        low, high = (-1, 1) if term["sides"] == "F" else (1, term["sides"])
        assert all(low <= v <= high for v in values)
        assert term["rolls"] == values
        assert len(values) == term["count"] + sum(1 for d in term["results"] if d.get("extra"))
        extras += sum(1 for d in term["results"] if d.get("extra"))
        kept = [d["value"] for d in term["results"] if not d.get("dropped")]
        assert term["kept"] == kept
        if "successes" in term:
            assert term["successes"] == sum(1 for d in term["results"] if d.get("success"))
            assert term["subtotal"] == term["successes"] - term["failures"]
            assert not any(d.get("success") and d.get("dropped") for d in term["results"])
        else:
            assert term["subtotal"] == sum(kept)
    assert extras <= dice.MAX_EXTRA_DICE
    for index, total in enumerate(out["totals"]):
        parts = [t for t in out["terms"] if t["set"] == index]
        assert total == sum(t["sign"] * t.get("constant", t.get("subtotal", 0)) for t in parts)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789dDkKhHlLfFcCsS!#%<>=+- \tx😀é")), max_size=40))
def test_any_text_is_a_command_or_a_bad_dice_error(text: str) -> None:
    try:
        cmd = parse_command(text)
    except ValidationFailed as error:
        assert error.code == "bad_dice" and error.status == 422
        if error.details is not None:
            assert 1 <= error.details["position"] <= len(text) + 1
        return
    result = cmd.roll()
    assert len(result.totals) == cmd.repeat
    assert parse_command(cmd.notation).notation == cmd.notation
