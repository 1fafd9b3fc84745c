"""Dice notation such as ``4d6kh3+2``, ``2d20kl1``, ``3d6 + 1d4 - 2`` or ``d%``: parsing, limits and rolling.

Parsing is separate from rolling so that the API can reject a bad notation (with a message that points at
the offending character) before anything is rolled or stored.  Everything here is pure apart from the
default random source, which is :mod:`secrets` because players must not be able to predict rolls.

Grammar (case-insensitive, whitespace allowed around ``+`` and ``-`` but not inside a term)::

    expression := [sign] term (sign term)*
    sign       := "+" | "-"
    term       := INT | [INT] "d" (INT | "%") [suffix]
    suffix     := ("kh" | "k" | "kl" | "dh" | "dl" | "d") INT

``k`` alone means ``kh`` and ``d`` alone (after the sides) means ``dl``; the count after a suffix is
required.  Among equal values the die rolled first is treated as the higher (for ``kh``/``dh``) or the
lower (for ``kl``/``dl``), so which dice are kept is deterministic.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, TypeAlias

from tableforge.domain.errors import ValidationFailed
from tableforge.domain.limits import NOTATION_MAX_CHARS

MAX_DICE = 100
MAX_SIDES = 1000
MIN_SIDES = 2
MAX_TERMS = 20
MAX_CONSTANT = 1_000_000
ERROR_CODE = "bad_dice"

KeepMode: TypeAlias = Literal["kh", "kl", "dh", "dl"]
Rng: TypeAlias = Callable[[int], int]

_MODES: dict[str, KeepMode] = {"kh": "kh", "kl": "kl", "dh": "dh", "dl": "dl"}
_DIGITS = "0123456789"  # str.isdigit() would also accept "²" or Arabic-Indic digits


def _fail(message: str, position: int | None = None) -> NoReturn:
    details = None if position is None else {"position": position}
    raise ValidationFailed(message, code=ERROR_CODE, details=details)


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
    """``count`` dice with ``sides`` faces; ``mode``/``amount`` say which of them count towards the total."""

    count: int
    sides: int
    sign: int = 1
    mode: KeepMode | None = None
    amount: int = 0

    @property
    def notation(self) -> str:
        suffix = "" if self.mode is None else f"{self.mode}{self.amount}"
        return f"{self.count}d{self.sides}{suffix}"

    def select(self, values: Sequence[int]) -> list[int]:
        """Return the kept values in roll order, so a reader can match them against ``rolls``."""
        if self.mode is None:
            return list(values)
        highest_first = sorted(range(len(values)), key=lambda i: (-values[i], i))
        lowest_first = sorted(range(len(values)), key=lambda i: (values[i], i))
        if self.mode == "kh":
            chosen = set(highest_first[: self.amount])
        elif self.mode == "kl":
            chosen = set(lowest_first[: self.amount])
        elif self.mode == "dh":
            chosen = set(highest_first[self.amount :])
        else:
            chosen = set(lowest_first[self.amount :])
        return [value for i, value in enumerate(values) if i in chosen]


Term: TypeAlias = DiceTerm | ConstantTerm


def _join(terms: Sequence[Term]) -> str:
    parts: list[str] = []
    for index, term in enumerate(terms):
        if term.sign < 0:
            parts.append("-")
        elif index > 0:
            parts.append("+")
        parts.append(term.notation)
    return "".join(parts)


def _default_rng(sides: int) -> int:
    return secrets.randbelow(sides) + 1


@dataclass(frozen=True, slots=True)
class DiceExpression:
    """A validated notation, ready to roll any number of times without parsing again."""

    terms: tuple[Term, ...]

    @property
    def notation(self) -> str:
        """Canonical spelling (``D20 + 5`` -> ``1d20+5``), so equal rolls look equal in logs and chat."""
        return _join(self.terms)

    @property
    def dice_count(self) -> int:
        return sum(term.count for term in self.terms if isinstance(term, DiceTerm))

    @property
    def modifier(self) -> int:
        return sum(term.sign * term.value for term in self.terms if isinstance(term, ConstantTerm))

    def __str__(self) -> str:
        return self.notation

    def roll(self, rng: Rng | None = None) -> DiceRoll:
        """Roll every dice group; ``rng(sides)`` must return 1..sides and exists so tests can be exact."""
        source = _default_rng if rng is None else rng
        rolls: list[list[int]] = []
        kept: list[list[int]] = []
        total = self.modifier
        for term in self.terms:
            if not isinstance(term, DiceTerm):
                continue
            values = [_checked(source(term.sides), term.sides) for _ in range(term.count)]
            chosen = term.select(values)
            rolls.append(values)
            kept.append(chosen)
            total += term.sign * sum(chosen)
        return DiceRoll(notation=self.notation, rolls=rolls, kept=kept, modifier=self.modifier,
                        total=total, expression=self)


def _checked(value: int, sides: int) -> int:
    # A broken injected rng is a programming error, not the player's fault, hence not ValidationFailed.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= sides:
        raise ValueError(f"rng returned {value!r} for a d{sides}; expected 1..{sides}")
    return value


@dataclass(frozen=True, slots=True)
class DiceRoll:
    """The outcome of one roll; ``to_dict()`` is what gets stored and broadcast."""

    notation: str
    rolls: list[list[int]]
    kept: list[list[int]]
    modifier: int
    total: int
    expression: DiceExpression

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy; lists are fresh so callers cannot mutate this (frozen) roll through it."""
        groups: Iterator[tuple[list[int], list[int]]] = zip(self.rolls, self.kept, strict=True)
        terms: list[dict[str, Any]] = []
        for term in self.expression.terms:
            if isinstance(term, ConstantTerm):
                terms.append({"constant": term.value, "sign": term.sign})
                continue
            rolled, chosen = next(groups)
            terms.append({"dice": term.notation, "sign": term.sign, "rolls": list(rolled),
                          "kept": list(chosen), "subtotal": sum(chosen)})
        return {
            "notation": self.notation,
            "rolls": [list(group) for group in self.rolls],
            "kept": [list(group) for group in self.kept],
            "modifier": self.modifier,
            "total": self.total,
            "terms": terms,
        }


class _Parser:
    """Single pass over the text; positions in messages are 1-based because people read them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos].lower() if self.pos < len(self.text) else ""

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def unexpected(self, expected: str) -> NoReturn:
        if self.pos >= len(self.text):
            _fail(f"unexpected end of notation at position {self.pos + 1}; expected {expected}", self.pos + 1)
        _fail(f"unexpected {self.text[self.pos]!r} at position {self.pos + 1}; expected {expected}",
              self.pos + 1)

    def digits(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _DIGITS:
            self.pos += 1
        return self.text[start : self.pos]

    def expression(self) -> DiceExpression:
        terms: list[Term] = []
        self.skip_spaces()
        sign = 1
        if self.peek() in ("+", "-"):
            sign = -1 if self.peek() == "-" else 1
            self.pos += 1
            self.skip_spaces()
        while True:
            if len(terms) == MAX_TERMS:
                _fail(f"too many terms: more than {MAX_TERMS} (term {MAX_TERMS + 1} starts at position "
                      f"{self.pos + 1})", self.pos + 1)
            terms.append(self.term(sign))
            self.skip_spaces()
            if self.pos >= len(self.text):
                break
            if self.peek() not in ("+", "-"):
                self.unexpected("'+' or '-'")
            sign = -1 if self.peek() == "-" else 1
            self.pos += 1
            self.skip_spaces()
        expression = DiceExpression(tuple(terms))
        if expression.dice_count > MAX_DICE:
            _fail(f"too many dice: {expression.dice_count} in total (at most {MAX_DICE})")
        return expression

    def term(self, sign: int) -> Term:
        start = self.pos + 1
        count_text = self.digits()
        if self.peek() != "d":
            if not count_text:
                self.unexpected("a number or a dice group like 1d20")
            value = int(count_text)
            if value > MAX_CONSTANT:
                _fail(f"number too large: {value} at position {start} (at most {MAX_CONSTANT})", start)
            return ConstantTerm(value, sign)
        self.pos += 1
        count = int(count_text) if count_text else 1
        if count < 1:
            _fail(f"a dice group needs at least 1 die, got {count} at position {start}", start)
        if count > MAX_DICE:
            _fail(f"too many dice: {count} at position {start} (at most {MAX_DICE})", start)
        sides_at = self.pos + 1
        if self.peek() == "%":
            self.pos += 1
            sides = 100
        else:
            sides_text = self.digits()
            if not sides_text:
                self.unexpected("the number of sides, like the 6 in 1d6")
            sides = int(sides_text)
        if sides < MIN_SIDES:
            _fail(f"a die needs at least {MIN_SIDES} sides, got d{sides} at position {sides_at}", sides_at)
        if sides > MAX_SIDES:
            _fail(f"too many sides: d{sides} at position {sides_at} (at most {MAX_SIDES})", sides_at)
        mode, amount = self.suffix(count)
        return DiceTerm(count, sides, sign, mode, amount)

    def suffix(self, count: int) -> tuple[KeepMode | None, int]:
        start = self.pos + 1
        letter = self.peek()
        if letter not in ("k", "d"):
            return None, 0
        self.pos += 1
        which = self.peek()
        if which in ("h", "l"):
            self.pos += 1
        else:
            which = "h" if letter == "k" else "l"
        mode = _MODES[letter + which]
        amount_text = self.digits()
        if not amount_text:
            verb = "keep" if letter == "k" else "drop"
            self.unexpected(f"how many dice to {verb}, like the 3 in 4d6{mode}3")
        amount = int(amount_text)
        if letter == "k" and not 1 <= amount <= count:
            _fail(f"cannot keep {amount} of {count} dice at position {start} (keep between 1 and {count})",
                  start)
        if letter == "d" and not 0 <= amount <= count - 1:
            _fail(f"cannot drop {amount} of {count} dice at position {start} "
                  f"(drop between 0 and {count - 1})", start)
        return mode, amount


def parse(notation: str) -> DiceExpression:
    """Validate without rolling, so bad input is refused before any randomness or storage is involved."""
    if not isinstance(notation, str):
        _fail("dice notation must be a string")
    if len(notation) > NOTATION_MAX_CHARS:
        _fail(f"dice notation too long: {len(notation)} characters (at most {NOTATION_MAX_CHARS})")
    if not notation.strip():
        _fail("dice notation is empty; try something like 1d20+5")
    return _Parser(notation).expression()


def roll(notation: str, rng: Rng | None = None) -> DiceRoll:
    """Parse and roll in one step; ``rng`` is only for tests, real rolls come from :mod:`secrets`."""
    return parse(notation).roll(rng)
