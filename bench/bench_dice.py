"""The Python cost of one `dice.roll` before it reaches the event log: parse, roll (secrets), the
stored/broadcast dict. Pure domain code, so any branch can be measured the same way.

Run: .venv/bin/python bench/bench_dice.py [--src path/to/other/tree/src] [--blocks 15]

CPU time (`time.process_time`, so a busy shared machine's preemption is not counted), best of
`--blocks` blocks of 2,000 rolls, per roll, for the v1 notations every branch knows (averaged over
them), and, where the tree has them, the play-tools forms one by one.
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from pathlib import Path

V1 = ["1d20+5", "4d6kh3+2", "2d20kh1+3", "3d6 + 1d4 - 2", "10d6"]
NEW = ["1d20+5 stealth", "3d6!", "6d6>=5", "10d10cs>=7", "4dF", "1d20+1d4+3", "3#1d20", "100d1000!>1"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    parser.add_argument("--blocks", type=int, default=15)
    args = parser.parse_args()
    sys.path.insert(0, args.src)
    from tableforge.domain import dice

    command = getattr(dice, "roll_command", None)
    parse = getattr(dice, "parse_command", dice.parse)

    def best(fn, count: int) -> float:  # type: ignore[no-untyped-def]
        number = 2000
        runs = timeit.Timer(fn, timer=time.process_time).repeat(number=number, repeat=args.blocks)
        return min(runs) / (number * count) * 1e6

    def parse_v1() -> None:
        for text in V1:
            parse(text)

    def roll_v1() -> None:
        for text in V1:
            (command(text) if command else dice.roll(text)).to_dict()

    print(f"tree {args.src}")
    print(f"v1 notations: parse {best(parse_v1, len(V1)):.1f} us, parse+roll+dict {best(roll_v1, len(V1)):.1f} us")
    if command is not None:
        for text in NEW:
            print(f"  {text:16} parse+roll+dict {best(lambda t=text: command(t).to_dict(), 1):7.1f} us")


if __name__ == "__main__":
    main()
