"""Dice: ``/roll 3#4d6!kh3+2 stats``, ``6d6>=5``, ``10d10cs>=7f1``, ``4dF+1``, ``d%``: parse, check, roll.

Parsing is separate from rolling so that a bad notation is refused (with a message that points at
the offending character) before anything is rolled or stored. Everything here is pure apart from
the default random source, which is :mod:`secrets` because players must not predict rolls.

Two entry points:
- `parse` / `roll`: one dice *expression* (``1d20+5``), what an initiative formula or a preset is;
- `parse_command` / `roll_command`: what a player types after ``/roll``: an optional repeat
  (``3#``), the expression, and an optional label (``stealth``).
The grammar is in dice_parser.py, the terms and their rolling in dice_terms.py, the limits there too.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tableforge.domain.dice_parser import Parser
from tableforge.domain.dice_terms import (
    ERROR_CODE,
    FUDGE_SIDES,
    MAX_CONSTANT,
    MAX_DICE,
    MAX_EXTRA_DICE,
    MAX_LABEL_CHARS,
    MAX_REPEAT,
    MAX_SIDES,
    MAX_TERMS,
    MIN_SIDES,
    Compare,
    ConstantTerm,
    DiceTerm,
    Die,
    ExtraBudget,
    KeepMode,
    Rng,
    Term,
    TermRoll,
    checked,
    fail,
    roll_term,
)
from tableforge.domain.limits import NOTATION_MAX_CHARS

__all__ = [
    "ERROR_CODE", "FUDGE_SIDES", "MAX_CONSTANT", "MAX_DICE", "MAX_EXTRA_DICE", "MAX_LABEL_CHARS", "MAX_REPEAT",
    "MAX_SIDES", "MAX_TERMS", "MIN_SIDES", "CommandRoll", "Compare", "ConstantTerm", "DiceCommand", "DiceExpression",
    "DiceRoll", "DiceTerm", "Die", "KeepMode", "Rng", "Term", "TermRoll", "parse", "parse_command", "roll",
    "roll_command",
]


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
    """A validated expression, ready to roll any number of times without parsing again."""

    terms: tuple[Term, ...]

    @property
    def notation(self) -> str:
        """Canonical spelling (``D20 + 5`` -> ``1d20+5``), so equal rolls look equal in logs and chat."""
        return _join(self.terms)

    @property
    def dice_count(self) -> int:
        """Dice before explosions."""
        return sum(term.count for term in self.terms if isinstance(term, DiceTerm))

    @property
    def modifier(self) -> int:
        return sum(term.sign * term.value for term in self.terms if isinstance(term, ConstantTerm))

    @property
    def counts_successes(self) -> bool:
        return any(isinstance(term, DiceTerm) and term.success is not None for term in self.terms)

    def __str__(self) -> str:
        return self.notation

    def roll(self, rng: Rng | None = None, budget: ExtraBudget | None = None) -> DiceRoll:
        """Roll every dice term; ``rng(sides)`` must return 1..sides and exists so tests can be exact.
        Dice are asked for in reading order, each die's explosion extras right after it."""
        source = _default_rng if rng is None else checked(rng)
        extra = ExtraBudget() if budget is None else budget
        results: list[TermRoll | ConstantTerm] = []
        total = 0
        for term in self.terms:
            if isinstance(term, ConstantTerm):
                results.append(term)
                total += term.sign * term.value
            else:
                rolled = roll_term(term, source, extra)
                results.append(rolled)
                total += term.sign * rolled.value
        return DiceRoll(expression=self, results=tuple(results), total=total)


@dataclass(frozen=True, slots=True)
class DiceRoll:
    """The outcome of rolling one expression once."""

    expression: DiceExpression
    results: tuple[TermRoll | ConstantTerm, ...]
    total: int

    @property
    def notation(self) -> str:
        return self.expression.notation

    @property
    def modifier(self) -> int:
        return self.expression.modifier

    @property
    def dice(self) -> list[TermRoll]:
        return [r for r in self.results if isinstance(r, TermRoll)]

    @property
    def rolls(self) -> list[list[int]]:
        """Every die of each dice term, extras included, in roll order (the v1 field)."""
        return [r.rolls for r in self.dice]

    @property
    def kept(self) -> list[list[int]]:
        """The dice of each dice term that were not dropped (the v1 field)."""
        return [r.kept for r in self.dice]

    def term_dicts(self, set_index: int) -> list[dict[str, Any]]:
        return [{"set": set_index, "constant": r.value, "sign": r.sign} if isinstance(r, ConstantTerm)
                else r.to_dict(set_index) for r in self.results]

    def to_dict(self) -> dict[str, Any]:
        """What gets stored and broadcast: see CommandRoll.to_dict (this is a command of one set)."""
        return CommandRoll(DiceCommand(self.expression), (self,)).to_dict()


@dataclass(frozen=True, slots=True)
class DiceCommand:
    """What follows ``/roll``: the expression, how many times to roll it, and an optional label."""

    expression: DiceExpression
    repeat: int = 1
    label: str | None = None

    @property
    def notation(self) -> str:
        """Canonical, without the label (which travels in its own field)."""
        body = self.expression.notation
        return body if self.repeat == 1 else f"{self.repeat}#{body}"

    def roll(self, rng: Rng | None = None) -> CommandRoll:
        budget = ExtraBudget()  # one budget for the whole command bounds the size of its event
        return CommandRoll(self, tuple(self.expression.roll(rng, budget) for _ in range(self.repeat)))


@dataclass(frozen=True, slots=True)
class CommandRoll:
    command: DiceCommand
    sets: tuple[DiceRoll, ...]

    @property
    def totals(self) -> list[int]:
        return [s.total for s in self.sets]

    @property
    def total(self) -> int:
        return sum(self.totals)

    def text(self) -> str:
        """The chat line stored with the roll: ``stealth: 1d20+5 = 18``, ``3#1d20 = 4, 17, 9``."""
        counted = ""
        if self.command.expression.counts_successes:
            counted = " success" if self.totals == [1] else " successes"
        line = f"{self.command.notation} = {', '.join(str(t) for t in self.totals)}{counted}"
        return f"{self.command.label}: {line}" if self.command.label else line

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready and freshly built (no list is shared with this frozen roll).

        The v1 fields describe every set together, so an old client's arithmetic still adds up:
        `rolls`/`kept` per dice term of every set in order, `modifier` the constants of every set,
        `total` the sum of the sets' totals. The extension: `label`, `repeat`, `totals` (one per
        set) and per term `set`, `count`, `sides` and `results` (each die with its flags)."""
        terms: list[dict[str, Any]] = []
        for index, one in enumerate(self.sets):
            terms.extend(one.term_dicts(index))
        return {
            "notation": self.command.notation,
            "label": self.command.label,
            "rolls": [group for one in self.sets for group in one.rolls],
            "kept": [group for one in self.sets for group in one.kept],
            "modifier": self.command.expression.modifier * len(self.sets),
            "total": self.total,
            "repeat": self.command.repeat,
            "totals": self.totals,
            "terms": terms,
        }


def _checked_text(notation: object) -> str:
    if not isinstance(notation, str):
        fail("dice notation must be a string")
    if len(notation) > NOTATION_MAX_CHARS:
        fail(f"dice notation too long: {len(notation)} characters (at most {NOTATION_MAX_CHARS})")
    if not notation.strip():
        fail("dice notation is empty; try something like 1d20+5")
    return notation


def _bounded(expression: DiceExpression, repeat: int) -> None:
    dice = expression.dice_count * repeat
    if dice > MAX_DICE:
        times = f" ({repeat} times {expression.dice_count})" if repeat > 1 else ""
        fail(f"too many dice: {dice} in total{times} (at most {MAX_DICE})")


def parse(notation: str) -> DiceExpression:
    """One expression, no repeat or label: formulas and presets. Validates without rolling."""
    parsed = Parser(_checked_text(notation)).command(allow_repeat=False, allow_label=False)
    expression = DiceExpression(parsed.terms)
    _bounded(expression, 1)
    return expression


def parse_command(text: str) -> DiceCommand:
    """What a player typed after ``/roll``: ``[N#]expression [label]``."""
    parsed = Parser(_checked_text(text)).command()
    expression = DiceExpression(parsed.terms)
    _bounded(expression, parsed.repeat)
    return DiceCommand(expression, parsed.repeat, parsed.label)


def roll(notation: str, rng: Rng | None = None) -> DiceRoll:
    """Parse and roll one expression; ``rng`` is only for tests, real rolls come from :mod:`secrets`."""
    return parse(notation).roll(rng)


def roll_command(text: str, rng: Rng | None = None, *, label: str | None = None) -> CommandRoll:
    """Parse and roll a command. `label`: one given apart from the text (the `dice.roll` message's
    own field), checked like a typed one; giving both is refused rather than guessed at."""
    command = parse_command(text)
    if label is not None:
        if command.label is not None:
            fail("the label is given twice: in the notation and in the label field")
        command = DiceCommand(command.expression, command.repeat, _checked_label(label))
    return command.roll(rng)


def _checked_label(label: str) -> str | None:
    cleaned = " ".join(label.split())
    if len(cleaned) > MAX_LABEL_CHARS:
        fail(f"label too long: {len(cleaned)} characters (at most {MAX_LABEL_CHARS})")
    if any(not c.isprintable() and c != "\u200d" for c in cleaned):
        fail("the label may not hold control characters")
    return cleaned or None
