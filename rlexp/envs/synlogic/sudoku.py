"""sudoku: 4x4, 6x6 and 9x9 grids with a unique solution; an answer is the completed grid."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Optional

from rlexp.envs.synlogic.common import (
    CORRECT,
    Task,
    Verdict,
    as_grid,
    grid_json,
    grid_text,
    int_cell,
    parse_grid,
    require,
    wrong,
)
from rlexp.envs.synlogic.latin import latin_checks, latin_search, to_rows

# (size, blanks): 4x4 (2x2 boxes), 6x6 (2x3 boxes), 9x9 (3x3 boxes); blanks as far as uniqueness allows
LEVELS = [(4, 6), (4, 8), (4, 10), (6, 14), (6, 18), (6, 22), (9, 36), (9, 44), (9, 50), (9, 55)]
THINK = "I fill cells where only one number fits its row, column and box, and repeat."

_BOXES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}


def generate(rng: random.Random, difficulty: int) -> Task:
    n, blanks = LEVELS[difficulty - 1]
    box = _BOXES[n]
    solution = latin_search([0] * (n * n), n, box, limit=1, rng=rng, budget=10**6)[0]
    puzzle = list(solution)
    cells = list(range(n * n))
    rng.shuffle(cells)
    removed = 0
    for c in cells:
        if removed >= blanks:
            break
        v = puzzle[c]
        puzzle[c] = 0
        # the puzzle stays unique iff no solution puts another value in the freed cell
        other = latin_search(puzzle, n, box, limit=1, forbid=(c, v), budget=20_000)
        if other != []:
            puzzle[c] = v
        else:
            removed += 1
    return Task({"size": n, "box": list(box), "grid": to_rows(puzzle, n)}, grid_json(to_rows(solution, n)))


def prompt(p: dict) -> tuple[str, str]:
    n = p["size"]
    br, bc = p["box"]
    task = (
        f"Solve this {n}x{n} sudoku. Fill every empty cell (0) with a number from 1 to {n} so that every row, every "
        f"column and every {br}x{bc} box (boxes are {br} rows tall and {bc} columns wide) contains each number "
        f"from 1 to {n} exactly once. Keep the given numbers.\n\n{grid_text(p['grid'])}"
    )
    fmt = f"the completed grid as a JSON list of {n} rows, each a list of {n} integers, e.g. <answer>[[...], ...]</answer>"
    return task, fmt


def verify(p: dict, answer: str) -> Verdict:
    n = int(p["size"])
    br, bc = p["box"]
    grid = parse_grid(answer, n, n, int_cell, "an integer")
    bad = latin_checks(grid, n, p["grid"])
    if bad:
        return bad
    per_row = n // bc
    for b in range(n):
        r0, c0 = (b // per_row) * br, (b % per_row) * bc
        values = [grid[r][c] for r in range(r0, r0 + br) for c in range(c0, c0 + bc)]
        dup = next((v for v, k in Counter(values).items() if k > 1), None)
        if dup is not None:
            return wrong(f"box {b + 1} has duplicate {dup}")
    return CORRECT


def solve(p: dict) -> Optional[str]:
    n = int(p["size"])
    found = latin_search([int(v) for row in p["grid"] for v in row], n, tuple(p["box"]), limit=1)
    return grid_json(to_rows(found[0], n)) if found else None


def from_hub(md: dict, data: dict) -> tuple[dict, Optional[str]]:
    grid = as_grid(md["original_sudoku"])
    n = len(grid)
    require(n in (4, 6, 9), "unsupported sudoku size")
    box = {4: [2, 2], 6: [2, 3], 9: [3, 3]}[n]
    solution = md.get("complete_sudoku")
    return {"size": n, "box": box, "grid": grid}, None if solution is None else json.dumps(as_grid(solution, n))
