"""The pieces of a dice notation and how one of them is rolled: limits, comparisons, terms, dice.

Kept apart from the grammar (dice_parser.py) and from whole expressions (dice.py) so each stays
small. Everything is pure: randomness comes in as `rng(sides) -> 1..sides`.

Order of work inside one dice term (``4d6!kh3>=5f1``): roll the dice, each followed by the dice its
explosions add; then keep/drop over every die rolled (extras included); then count successes and
failures among the dice that are kept. The term's value is the sum of the kept dice, or, when it
counts successes, successes minus failures.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, NoReturn, TypeAlias

from tableforge.domain.errors import ValidationFailed
from tableforge.domain.limits import DICE_LABEL_MAX_CHARS

ERROR_CODE = "bad_dice"
MAX_DICE = 100  # dice in one command before explosions, every term and every repeat counted
MAX_EXTRA_DICE = 100  # dice that explosions may add to one command; past it, dice are marked `capped`
MAX_SIDES = 1000
MIN_SIDES = 2
MAX_TERMS = 20  # terms in one expression
MAX_REPEAT = 20  # the N of `N#…`
MAX_CONSTANT = 1_000_000
MAX_LABEL_CHARS = DICE_LABEL_MAX_CHARS
FUDGE_SIDES = 3  # a Fudge die is a d3 read as -1, 0, +1

KeepMode: TypeAlias = Literal["kh", "kl", "dh", "dl"]
CompareOp: TypeAlias = Literal[">=", "<=", ">", "<", "="]
Rng: TypeAlias = Callable[[int], int]

_OPS: dict[str, Callable[[int, int], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq}


def fail(message: str, position: int | None = None) -> NoReturn:
    """The one error of this package: 422 `bad_dice`, `details.position` 1-based when known."""
    details = None if position is None else {"position": position}
    raise ValidationFailed(message, code=ERROR_CODE, details=details)


@dataclass(frozen=True, slots=True)
class Compare:
    """A comparison against a die's face: `>=5` and friends (`=` when written as a bare number)."""

    op: CompareOp
    value: int

    def matches(self, face: int) -> bool:
        return _OPS[self.op](face, self.value)

    @property
    def notation(self) -> str:
        return f"{self.op}{self.value}"


@dataclass(frozen=True, slots=True)
class ConstantTerm:
    """A flat modifier; ``value`` is never negative so the sign lives in one place, as for dice."""

    value: int
    sign: int = 1

    @property
    def notation(self) -> str:
        return str(self.value)


@dataclass(frozen=True, slots=True)
class DiceTerm:
    """``count`` dice with ``sides`` faces (or Fudge dice), and what to do with them.

    ``mode``/``amount``: keep or drop; ``explode``: when a die adds another (None: never);
    ``success``/``failure``: count dice instead of adding them."""

    count: int
    sides: int
    sign: int = 1
    mode: KeepMode | None = None
    amount: int = 0
    explode: Compare | None = None
    success: Compare | None = None
    failure: Compare | None = None
    fudge: bool = False

    @property
    def faces(self) -> range:
        return range(-1, 2) if self.fudge else range(1, self.sides + 1)

    @property
    def notation(self) -> str:
        parts = [f"{self.count}d{'F' if self.fudge else self.sides}"]
        if self.explode is not None:
            bare = self.explode == Compare("=", self.sides)
            parts.append("!" if bare else f"!{self.explode.notation}")
        if self.mode is not None:
            parts.append(f"{self.mode}{self.amount}")
        if self.success is not None:
            # After an explosion a comparison would read as the explosion's: `cs` says it is not.
            parts.append(f"cs{self.success.notation}" if self.explode is not None else self.success.notation)
        if self.failure is not None:
            parts.append(f"f{self.failure.value}" if self.failure.op == "=" else f"f{self.failure.notation}")
        return "".join(parts)

    def face(self, rng: Rng) -> int:
        """One die; `rng` is trusted here (`checked` wraps one that is not)."""
        return rng(FUDGE_SIDES) - 2 if self.fudge else rng(self.sides)

    def select(self, values: Sequence[int]) -> set[int]:
        """The indexes of the dice that count. Among equal values the die rolled first is the higher
        (for kh/dh) or the lower (for kl/dl), so which dice are kept is deterministic."""
        every = range(len(values))
        if self.mode is None:
            return set(every)
        highest_first = sorted(every, key=lambda i: (-values[i], i))
        lowest_first = sorted(every, key=lambda i: (values[i], i))
        if self.mode == "kh":
            return set(highest_first[: self.amount])
        if self.mode == "kl":
            return set(lowest_first[: self.amount])
        if self.mode == "dh":
            return set(highest_first[self.amount :])
        return set(lowest_first[self.amount :])


Term: TypeAlias = DiceTerm | ConstantTerm


class Die(NamedTuple):
    """One die as rolled. `exploded`: it met the explosion condition and the next die is its extra;
    `extra`: added by the explosion of the die before it; `capped`: it met the condition, but the
    command had already added MAX_EXTRA_DICE dice; `dropped`: left out by keep/drop;
    `success`/`failure`: counted as such (kept dice of a counting term only). A NamedTuple: a roll
    makes up to 200 of them, and a frozen dataclass costs several times more to build."""

    value: int
    dropped: bool = False
    exploded: bool = False
    extra: bool = False
    capped: bool = False
    success: bool = False
    failure: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Flags only when true: a roll of 100 plain dice stays small on the wire."""
        out: dict[str, Any] = {"value": self.value}
        if self.dropped:
            out["dropped"] = True
        if self.exploded:
            out["exploded"] = True
        if self.extra:
            out["extra"] = True
        if self.capped:
            out["capped"] = True
        if self.success:
            out["success"] = True
        if self.failure:
            out["failure"] = True
        return out


def checked(rng: Rng) -> Rng:
    """An injected rng (tests) that must keep to its contract: a broken one is a programming error,
    not the player's fault, hence ValueError and not ValidationFailed. The default one (secrets)
    needs no check, and a roll does not pay for one."""

    def check(sides: int) -> int:
        value = rng(sides)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= sides:
            raise ValueError(f"rng returned {value!r} for a d{sides}; expected 1..{sides}")
        return value

    return check


class ExtraBudget:
    """How many dice explosions may still add to the command being rolled (shared by its terms and
    repeats, so the size of one roll's event is bounded whatever the luck)."""

    __slots__ = ("left",)

    def __init__(self, left: int = MAX_EXTRA_DICE) -> None:
        self.left = left


@dataclass(frozen=True, slots=True)
class TermRoll:
    """One dice term as rolled: every die in roll order (extras right after the die that added them)."""

    term: DiceTerm
    dice: tuple[Die, ...]
    value: int  # unsigned: kept sum, or successes - failures
    successes: int = 0
    failures: int = 0
    values: tuple[int, ...] = ()  # every die's value, in roll order
    kept_values: tuple[int, ...] = ()  # the dice not dropped

    @property
    def rolls(self) -> list[int]:
        return list(self.values)

    @property
    def kept(self) -> list[int]:
        return list(self.kept_values)

    def to_dict(self, set_index: int) -> dict[str, Any]:
        term = self.term
        out: dict[str, Any] = {
            "set": set_index, "dice": term.notation, "sign": term.sign, "count": term.count,
            "sides": "F" if term.fudge else term.sides, "rolls": self.rolls, "kept": self.kept,
            "subtotal": self.value, "results": [d.to_dict() for d in self.dice],
        }
        if term.success is not None:
            out["successes"] = self.successes
            out["failures"] = self.failures
        return out


def roll_term(term: DiceTerm, rng: Rng, budget: ExtraBudget) -> TermRoll:
    face = term.face
    explode = term.explode
    exploded: set[int] = set()
    extra: set[int] = set()
    capped: set[int] = set()
    if explode is None:
        if term.fudge:
            values = [rng(FUDGE_SIDES) - 2 for _ in range(term.count)]
        else:
            sides = term.sides
            values = [rng(sides) for _ in range(term.count)]
    else:
        values = []
        for _ in range(term.count):
            value = face(rng)
            values.append(value)
            # Ends: each extra die meets the condition with probability < 1 (the parser refuses a
            # condition every face meets), and the budget bounds the dice added in any case.
            while explode.matches(value):
                if budget.left <= 0:
                    capped.add(len(values) - 1)
                    break
                budget.left -= 1
                exploded.add(len(values) - 1)
                extra.add(len(values))
                value = face(rng)
                values.append(value)
    chosen = None if term.mode is None else term.select(values)
    success, failure = term.success, term.failure
    if chosen is None and success is None and explode is None:  # plain dice, the usual roll
        return TermRoll(term, tuple(map(Die, values)), sum(values), 0, 0, tuple(values), tuple(values))
    dice: list[Die] = []
    successes = failures = total = 0
    kept_values: list[int] = []
    for i, value in enumerate(values):
        kept = chosen is None or i in chosen
        hit = miss = False
        if kept:
            total += value
            kept_values.append(value)
            if success is not None:
                hit = success.matches(value)
                miss = not hit and failure is not None and failure.matches(value)
                successes += hit
                failures += miss
        dice.append(Die(value, not kept, i in exploded, i in extra, i in capped, hit, miss))
    value = successes - failures if success is not None else total
    return TermRoll(term, tuple(dice), value, successes, failures, tuple(values), tuple(kept_values))
