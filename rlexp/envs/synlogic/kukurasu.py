"""kukurasu: mark cells black so that each row's and each column's clue is the sum of its black cells' positions;
an answer is the 0/1 grid."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any, Optional

from rlexp.envs.synlogic.common import (
    CORRECT,
    NODE_BUDGET,
    OutOfBudget,
    Task,
    Verdict,
    as_int,
    as_obj,
    grid_json,
    parse_grid,
    require,
    wrong,
)

# (rows, columns, probability of a black cell)
LEVELS = [
    (3, 3, 0.4),
    (3, 4, 0.4),
    (4, 4, 0.3),
    (4, 5, 0.3),
    (5, 5, 0.3),
    (5, 5, 0.4),
    (5, 6, 0.3),
    (6, 6, 0.2),
    (6, 6, 0.3),
    (6, 6, 0.4),
]
THINK = "I choose black cells whose positions add up to every row clue and every column clue."


def _kukurasu_sums(grid: list[list[int]]) -> tuple[list[int], list[int]]:
    rows = [sum(j + 1 for j, v in enumerate(row) if v) for row in grid]
    cols = [sum(i + 1 for i, row in enumerate(grid) if row[j]) for j in range(len(grid[0]))]
    return rows, cols


def generate(rng: random.Random, difficulty: int) -> Task:
    n, m, prob = LEVELS[difficulty - 1]
    for attempt in range(1000):
        grid = [[1 if rng.random() < prob else 0 for _ in range(m)] for _ in range(n)]
        rows, cols = _kukurasu_sums(grid)
        if all(rows) and all(cols) or attempt == 999:  # empty rows and columns make easy clues: avoid them
            break
    return Task({"rows": n, "cols": m, "row_sums": rows, "col_sums": cols}, grid_json(grid))


def prompt(p: dict) -> tuple[str, str]:
    n, m = p["rows"], p["cols"]
    task = (
        f"Solve this {n}x{m} Kukurasu puzzle. Mark each cell black (1) or leave it white (0). In each row, the "
        f"column numbers (1 to {m}, left to right) of its black cells must add up to that row's clue; in each "
        f"column, the row numbers (1 to {n}, top to bottom) of its black cells must add up to that column's clue.\n\n"
        f"Row clues (top to bottom): {', '.join(map(str, p['row_sums']))}\n"
        f"Column clues (left to right): {', '.join(map(str, p['col_sums']))}"
    )
    fmt = f"the grid as a JSON list of {n} rows, each a list of {m} values 0 or 1, e.g. <answer>[[0, 1, ...], ...]</answer>"
    return task, fmt


def _kukurasu_cell(v: Any) -> Optional[int]:
    if type(v) is int and v in (0, 1):
        return v
    if isinstance(v, str) and v.strip() in ("0", "1", "X", "x"):  # SynLogic writes black as "1", white as "X"
        return 1 if v.strip() == "1" else 0
    return None


def verify(p: dict, answer: str) -> Verdict:
    n, m = int(p["rows"]), int(p["cols"])
    grid = parse_grid(answer, n, m, _kukurasu_cell, "0 or 1")
    rows, cols = _kukurasu_sums(grid)
    for i, (got, want) in enumerate(zip(rows, p["row_sums"]), 1):
        if got != want:
            return wrong(f"row {i} adds up to {got}, expected {want}")
    for j, (got, want) in enumerate(zip(cols, p["col_sums"]), 1):
        if got != want:
            return wrong(f"column {j} adds up to {got}, expected {want}")
    return CORRECT


def solve(p: dict) -> Optional[str]:
    """A grid meeting every clue (as JSON), found row by row; None when there is none (or the search runs out of
    budget)."""
    n, m = int(p["rows"]), int(p["cols"])
    col_sums = [int(v) for v in p["col_sums"]]
    if not (1 <= n <= 12 and 1 <= m <= 12):
        return None
    # each row's choices: the 0/1 rows whose black cells' column numbers add up to the row's clue
    choices = [
        [bits for bits in itertools.product((0, 1), repeat=m) if sum(j + 1 for j in range(m) if bits[j]) == want]
        for want in p["row_sums"]
    ]
    nodes = [NODE_BUDGET]

    def place(i: int, cols: tuple) -> Optional[list]:
        if i == n:
            return [] if list(cols) == col_sums else None
        nodes[0] -= 1
        if nodes[0] < 0:
            raise OutOfBudget
        below = sum(range(i + 2, n + 1))  # the most the rows below can still add to a column
        for bits in choices[i]:
            new = tuple(c + (i + 1) * b for c, b in zip(cols, bits))
            if all(v <= want <= v + below for v, want in zip(new, col_sums)):
                rest = place(i + 1, new)
                if rest is not None:
                    return [list(bits)] + rest
        return None

    try:
        grid = place(0, (0,) * m)
    except OutOfBudget:
        return None
    return None if grid is None else grid_json(grid)


def from_hub(md: dict, data: dict) -> tuple[dict, Optional[str]]:
    rows = [as_int(v) for v in md["row_sums"]]
    cols = [as_int(v) for v in md["col_sums"]]
    require(1 <= len(rows) <= 12 and 1 <= len(cols) <= 12, "unsupported kukurasu size")
    puzzle = {"rows": len(rows), "cols": len(cols), "row_sums": rows, "col_sums": cols}
    solution = as_obj(md.get("solution"))  # SynLogic writes black cells "1" and white cells "X"
    if not isinstance(solution, list) or not all(isinstance(row, list) for row in solution):
        return puzzle, None
    return puzzle, json.dumps([[1 if str(v).strip() == "1" else 0 for v in row] for row in solution])
