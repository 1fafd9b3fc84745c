"""The dice grammar: one pass over the text, errors that name the offending character's position.

Grammar (case-insensitive; whitespace around ``#``, ``+`` and ``-``, never inside a term)::

    command    := [repeat "#"] expression [label]
    repeat     := INT                                  1..MAX_REPEAT
    expression := [sign] term (sign term)*
    sign       := "+" | "-"
    term       := INT | [INT] "d" sides [explode] [keep] [success [failure]]
    sides      := INT | "%" | "F"                      d% is d100; dF is a Fudge die (-1, 0, +1)
    explode    := "!" [compare]                        bare "!" explodes on the highest face
    keep       := ("kh" | "k" | "kl" | "dh" | "dl" | "d") INT
    success    := "cs" (compare | INT) | compare       count dice instead of adding them
    failure    := "f" (compare | INT)                  ... minus the dice that fail
    compare    := (">=" | "<=" | ">" | "<" | "=") INT  a bare INT means "="
    label      := whitespace, then free text that does not start like dice or a modifier

``k`` alone means ``kh`` and ``d`` alone (after the sides) means ``dl``; the count after a suffix
is required. A comparison right after ``!`` belongs to the explosion: ``10d10!>=9`` explodes on 9
and 10; to count successes after an explosion write ``cs``: ``10d10!cs>=8``.
"""

from __future__ import annotations

import re
from typing import NoReturn

from tableforge.domain.dice_terms import (
    FUDGE_SIDES,
    MAX_CONSTANT,
    MAX_DICE,
    MAX_LABEL_CHARS,
    MAX_REPEAT,
    MAX_SIDES,
    MAX_TERMS,
    MIN_SIDES,
    Compare,
    CompareOp,
    ConstantTerm,
    DiceTerm,
    KeepMode,
    Term,
    fail,
)

_DIGITS = "0123456789"  # str.isdigit() would also accept "²" or Arabic-Indic digits
_DIGIT_SET = frozenset(_DIGITS)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_MODES: dict[str, KeepMode] = {"kh": "kh", "kl": "kl", "dh": "dh", "dl": "dl"}
_SINGLE: dict[str, CompareOp] = {">": ">", "<": "<", "=": "="}
_ZWJ = "\u200d"  # joins emoji (a family, a flag): invisible but harmless
# A label's first word that reads like part of a roll is a mistake (`4d6 kh3`, `1d20 + 2 d4`),
# not a label: refusing it is better than rolling something else than what was meant.
_LOOKS_LIKE_DICE = re.compile(r"\d*d(?:\d|%|f(?![a-z]))|(?:k[hl]?|d[hl]?)\d|(?:cs|f)[\d<>=]", re.IGNORECASE)


class Parsed:
    """What the parser read: the repeat count, the terms and the label (None without one)."""

    __slots__ = ("label", "repeat", "terms")

    def __init__(self, repeat: int, terms: tuple[Term, ...], label: str | None) -> None:
        self.repeat = repeat
        self.terms = terms
        self.label = label


class Parser:
    """Positions in messages are 1-based because people read them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.low = text.translate(_ASCII_LOWER)  # same length as text, unlike str.lower()
        self.pos = 0

    # --- reading --------------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> str:
        """The character there, ASCII lower-cased (one character, or "" past the end)."""
        at = self.pos + ahead
        return self.low[at] if at < len(self.low) else ""

    def skip_spaces(self) -> bool:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.pos > start

    def digits(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _DIGITS:
            self.pos += 1
        return self.text[start : self.pos]

    def unexpected(self, expected: str) -> NoReturn:
        if self.pos >= len(self.text):
            fail(f"unexpected end of notation at position {self.pos + 1}; expected {expected}", self.pos + 1)
        fail(f"unexpected {self.text[self.pos]!r} at position {self.pos + 1}; expected {expected}", self.pos + 1)

    # --- the grammar ----------------------------------------------------------------------------

    def command(self, *, allow_repeat: bool = True, allow_label: bool = True) -> Parsed:
        self.skip_spaces()
        repeat = self.repeat() if allow_repeat else 1
        terms = self.expression(allow_label)
        label = self.label() if allow_label else None
        return Parsed(repeat, terms, label)

    def repeat(self) -> int:
        """``N#`` in front, or 1; anything else leaves the position where it was."""
        start = self.pos
        count_text = self.digits()
        self.skip_spaces()
        if not count_text or self.peek() != "#":
            self.pos = start
            return 1
        count = int(count_text)
        if not 1 <= count <= MAX_REPEAT:
            fail(f"cannot repeat a roll {count} times at position {start + 1} (between 1 and {MAX_REPEAT})",
                 start + 1)
        self.pos += 1
        self.skip_spaces()
        return count

    def expression(self, allow_label: bool) -> tuple[Term, ...]:
        terms: list[Term] = []
        sign = 1
        if self.peek() in ("+", "-"):
            sign = -1 if self.peek() == "-" else 1
            self.pos += 1
            self.skip_spaces()
        while True:
            if len(terms) == MAX_TERMS:
                fail(f"too many terms: more than {MAX_TERMS} (term {MAX_TERMS + 1} starts at position "
                     f"{self.pos + 1})", self.pos + 1)
            terms.append(self.term(sign))
            spaced = self.skip_spaces()
            if self.pos >= len(self.text):
                break
            if self.peek() not in ("+", "-"):
                if allow_label and spaced and self.label_may_start():
                    break
                self.unexpected("'+' or '-'" + (", or a label after a space" if allow_label else ""))
            sign = -1 if self.peek() == "-" else 1
            self.pos += 1
            self.skip_spaces()
        return tuple(terms)

    def label_may_start(self) -> bool:
        first = self.text[self.pos]
        # ASCII letters, or anything printable beyond ASCII (accents, scripts, emoji); ASCII digits
        # and punctuation are notation, and a typo there must not silently become a label.
        if not first.isprintable() or (first.isascii() and not first.isalpha()):
            return False
        word = self.text[self.pos :].split(None, 1)[0]
        if _LOOKS_LIKE_DICE.match(word):
            fail(f"unexpected {first!r} at position {self.pos + 1}: modifiers follow the dice without a space "
                 f"(4d6kh3, 6d6>=5), terms are joined with + or -, and a label may not start like dice",
                 self.pos + 1)
        return True

    def label(self) -> str | None:
        if self.pos >= len(self.text):
            return None
        start = self.pos
        label = " ".join(self.text[start:].split())  # one line, single spaces
        for offset, char in enumerate(self.text[start:]):
            if not char.isspace() and not char.isprintable() and char != _ZWJ:
                fail(f"the label may not hold control characters (position {start + offset + 1})",
                     start + offset + 1)
        if len(label) > MAX_LABEL_CHARS:
            fail(f"label too long: {len(label)} characters at position {start + 1} (at most {MAX_LABEL_CHARS})",
                 start + 1)
        self.pos = len(self.text)
        return label

    def term(self, sign: int) -> Term:
        start = self.pos + 1
        count_text = self.digits()
        if self.peek() != "d":
            if not count_text:
                self.unexpected("a number or a dice group like 1d20")
            value = int(count_text)
            if value > MAX_CONSTANT:
                fail(f"number too large: {value} at position {start} (at most {MAX_CONSTANT})", start)
            if self.peek() in _SINGLE or self.peek() == "!":
                fail(f"unexpected {self.text[self.pos]!r} at position {self.pos + 1}: explosions and success "
                     f"counts apply to a dice group, like 6d6>=5", self.pos + 1)
            return ConstantTerm(value, sign)
        self.pos += 1
        count = int(count_text) if count_text else 1
        if count < 1:
            fail(f"a dice group needs at least 1 die, got {count} at position {start}", start)
        if count > MAX_DICE:
            fail(f"too many dice: {count} at position {start} (at most {MAX_DICE})", start)
        sides, fudge = self.sides()
        explode = self.explode(sides, fudge)
        mode, amount = self.keep(count)
        success, failure = self.counting()
        return DiceTerm(count, sides, sign, mode, amount, explode, success, failure, fudge)

    def sides(self) -> tuple[int, bool]:
        sides_at = self.pos + 1
        if self.peek() == "%":
            self.pos += 1
            return 100, False
        if self.peek() == "f":
            self.pos += 1
            return FUDGE_SIDES, True
        sides_text = self.digits()
        if not sides_text:
            self.unexpected("the number of sides, like the 6 in 1d6, or % or F")
        sides = int(sides_text)
        if sides < MIN_SIDES:
            fail(f"a die needs at least {MIN_SIDES} sides, got d{sides} at position {sides_at}", sides_at)
        if sides > MAX_SIDES:
            fail(f"too many sides: d{sides} at position {sides_at} (at most {MAX_SIDES})", sides_at)
        return sides, False

    def compare(self, what: str, *, bare: bool) -> Compare | None:
        """`op INT`, or (when `bare`) a plain INT meaning `=`; None when neither is here."""
        start = self.pos + 1
        op: CompareOp
        two = self.peek() + self.peek(1)
        if two in (">=", "<="):
            op = ">=" if two == ">=" else "<="
            self.pos += 2
        elif self.peek() in _SINGLE:
            op = _SINGLE[self.peek()]
            self.pos += 1
        elif bare and self.peek() in _DIGIT_SET:
            op = "="
        else:
            return None
        value_text = self.digits()
        if not value_text:
            self.unexpected(f"a number after {op!r} for {what}, like the 5 in 6d6>=5")
        value = int(value_text)
        if value > MAX_SIDES:
            fail(f"number too large in {what}: {value} at position {start} (at most {MAX_SIDES})", start)
        return Compare(op, value)

    def explode(self, sides: int, fudge: bool) -> Compare | None:
        if self.peek() != "!":
            return None
        start = self.pos + 1
        self.pos += 1
        if fudge:
            fail(f"Fudge dice cannot explode (position {start})", start)
        if self.peek() in ("!", "p"):
            kind = "compounding (!!)" if self.peek() == "!" else "penetrating (!p)"
            fail(f"{kind} explosions are not supported, at position {self.pos + 1}; use ! (3d6!)", self.pos + 1)
        condition = self.compare("an explosion", bare=False) or Compare("=", sides)
        if all(condition.matches(face) for face in range(1, sides + 1)):
            fail(f"'!{condition.notation}' at position {start} would make every d{sides} explode, forever; "
                 f"explode on some faces only, like 1d{sides}! (on a {sides})", start)
        return condition

    def keep(self, count: int) -> tuple[KeepMode | None, int]:
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
            fail(f"cannot keep {amount} of {count} dice at position {start} (keep between 1 and {count})", start)
        if letter == "d" and not 0 <= amount <= count - 1:
            fail(f"cannot drop {amount} of {count} dice at position {start} (drop between 0 and {count - 1})", start)
        return mode, amount

    def counting(self) -> tuple[Compare | None, Compare | None]:
        if self.peek() == "c":
            if self.peek(1) != "s":
                self.pos += 1
                self.unexpected("'cs' and a comparison, like 10d10cs>=7")
            self.pos += 2
            success = self.compare("a success count", bare=True)
            if success is None:
                self.unexpected("a comparison after 'cs', like the >=7 in 10d10cs>=7")
        else:
            success = self.compare("a success count", bare=False)
        if success is None:
            if self.peek() == "f":
                fail(f"unexpected 'f' at position {self.pos + 1}: failures are counted after successes, "
                     f"like 10d10>=8f1", self.pos + 1)
            return None, None
        failure = None
        if self.peek() == "f":
            self.pos += 1
            failure = self.compare("a failure count", bare=True)
            if failure is None:
                self.unexpected("a number or a comparison after 'f', like the 1 in 10d10>=8f1")
        return success, failure
