"""domain/grid.py and web/js/grid.js give the same answers: the shared table of cases
(grid_cases.json, with the expected answers worked out by hand) and a few thousand generated
ones, including points exactly on lines, centres and corners where rounding ties, run through
both (the JavaScript with node). Floats must agree to the bit, not within a tolerance."""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import tableforge
from tableforge.domain import grid
from tableforge.domain.grid_settings import GridSettings

HERE = Path(__file__).parent
GRID_JS = Path(tableforge.__file__).parent / "web" / "js" / "grid.js"
CASES = json.loads((HERE / "grid_cases.json").read_text())["cases"]
NODE = shutil.which("node")


def python(case: dict[str, Any]) -> Any:
    g = GridSettings.from_dict(case["grid"])
    fn, args = case["fn"], case["args"]
    if fn == "hex_distance":
        value: Any = grid.hex_distance(*args)
    else:
        value = getattr(grid, fn)(g, *args)
    if isinstance(value, grid.Measurement):
        return {"cells": value.cells, "units": value.units, "text": value.text}
    return json.loads(json.dumps(value))  # tuples as lists, as JSON carries them


def javascript(cases: list[dict[str, Any]]) -> list[Any]:
    if NODE is None:
        pytest.fail("node is needed to check web/js/grid.js (install nodejs)")
    done = subprocess.run([NODE, str(HERE / "grid_runner.mjs"), str(GRID_JS)], check=True, capture_output=True,
                          input=json.dumps([{k: c[k] for k in ("fn", "grid", "args")} for c in cases]).encode(),
                          timeout=60)
    results = json.loads(done.stdout)
    assert all("error" not in r for r in results), [r for r in results if "error" in r][:3]
    return [r["value"] for r in results]


def close(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
    return bool(a == b)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_python_gives_the_expected_answer(case: dict[str, Any]) -> None:
    assert close(python(case), case["expect"]), (python(case), case["expect"])


def test_javascript_gives_the_expected_answers() -> None:
    got = javascript(CASES)
    wrong = [(c["name"], value, c["expect"]) for c, value in zip(CASES, got, strict=True)
             if not close(value, c["expect"])]
    assert wrong == []


def _point(rnd: random.Random, g: GridSettings) -> list[float]:
    """Half the points sit exactly on lines, centres or (hex) corners, where rounding ties."""
    if rnd.random() < 0.5:
        return [rnd.uniform(-3000, 3000), rnd.uniform(-3000, 3000)]
    cell = (rnd.randint(-20, 20), rnd.randint(-20, 20))
    if g.is_hex and rnd.random() < 0.5:
        return list(rnd.choice(grid.hex_corners(g, cell)))
    x, y = grid.cell_center(g, cell)
    half = g.size / 2
    return [x + rnd.choice([0, half, -half]), y + rnd.choice([0, half, -half])]


def _cell(rnd: random.Random) -> list[int]:
    return [rnd.randint(-50, 50), rnd.randint(-50, 50)]


def _generated(seed: int, count: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    cases: list[dict[str, Any]] = []
    for _ in range(count):
        settings = {"type": rnd.choice(["square", "hex_flat", "hex_pointy", "none"]),
                    "size": rnd.choice([8, 50, 60, 70, 72.5, rnd.uniform(8, 1000)]),
                    "offset_x": rnd.choice([0, 13.25, rnd.uniform(-500, 500)]),
                    "offset_y": rnd.choice([0, -7, rnd.uniform(-500, 500)]),
                    "diagonal": rnd.choice(["5-5-5", "5-10-5", "euclidean"]),
                    "units_per_cell": rnd.choice([5, 1, 1.5, 2, 0.3])}
        fn = rnd.choice(["cell_at", "cell_center", "snap", "snap", "hex_distance", "cell_distance",
                         "path_distance", "measure", "hex_corners", "to_units"])
        if fn == "hex_corners" and settings["type"] in ("square", "none"):
            settings["type"] = "hex_pointy"
        g = GridSettings.from_dict(settings)
        if fn == "cell_at":
            args: list[Any] = _point(rnd, g)
        elif fn in ("cell_center", "hex_corners"):
            args = [_cell(rnd)]
        elif fn == "snap":
            args = [*_point(rnd, g), rnd.choice([0.25, 0.5, 1, 1, 2, 3, 4, 5, 1.5, 20])]
        elif fn in ("hex_distance", "cell_distance"):
            args = [_cell(rnd), _cell(rnd)]
        elif fn == "path_distance":
            args = [[_cell(rnd) for _ in range(rnd.randint(2, 6))]]
        elif fn == "measure":
            args = [[_point(rnd, g) for _ in range(rnd.randint(2, 6))]]
        else:
            args = [rnd.uniform(0, 500)]
        cases.append({"fn": fn, "grid": settings, "args": args})
    return cases


def test_python_and_javascript_agree_to_the_bit_on_generated_cases() -> None:
    cases = _generated(seed=13, count=4000)
    expected = [python(c) for c in cases]
    got = javascript(cases)
    differ = [(c, e, j) for c, e, j in zip(cases, expected, got, strict=True) if e != j]
    assert differ == [], f"{len(differ)} of {len(cases)} differ, e.g. {differ[:3]}"
