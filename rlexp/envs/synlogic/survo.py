"""survo: fill a matrix's hidden cells with the candidate numbers so that every row and column adds up to its last
cell; an answer is the full matrix."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Optional

from rlexp.envs.synlogic.common import (
    CORRECT,
    NODE_BUDGET,
    OutOfBudget,
    Task,
    Verdict,
    as_grid,
    as_int,
    grid_json,
    grid_text,
    int_cell,
    parse_grid,
    require,
    short,
    times,
    wrong,
)

# (matrix size n with the sums row/column, hidden cells x with n <= x <= 2(n-1))
LEVELS = [(4, 4), (4, 5), (4, 6), (5, 6), (5, 8), (6, 8), (6, 10), (7, 10), (7, 12), (8, 14)]
THINK = "I place the candidates so that every row and column adds up to its sum."


def generate(rng: random.Random, difficulty: int) -> Task:
    n, hidden = LEVELS[difficulty - 1]
    full = [[rng.randint(1, 9) for _ in range(n - 1)] for _ in range(n - 1)]
    for row in full:
        row.append(sum(row))
    full.append([sum(full[i][j] for i in range(n - 1)) for j in range(n)])
    cells = rng.sample([(i, j) for i in range(n - 1) for j in range(n - 1)], hidden)
    grid = [list(row) for row in full]
    for i, j in cells:
        grid[i][j] = 0
    candidates = sorted(full[i][j] for i, j in cells)  # sorted: the order must not tell where they go
    return Task({"size": n, "grid": grid, "candidates": candidates}, grid_json(full))


def prompt(p: dict) -> tuple[str, str]:
    n = p["size"]
    task = (
        f"Complete this {n}x{n} Survo matrix. The last number of each row is the sum of the other numbers in that "
        f"row, and the last number of each column is the sum of the other numbers in that column. Fill the empty "
        f"cells (0) using each candidate number exactly once (as many times as it is listed); keep every other cell."
        f"\n\nMatrix:\n{grid_text(p['grid'])}\n\nCandidates: {', '.join(map(str, p['candidates']))}"
    )
    fmt = f"the full matrix as a JSON list of {n} rows, each a list of {n} integers, e.g. <answer>[[...], ...]</answer>"
    return task, fmt


def verify(p: dict, answer: str) -> Verdict:
    n = int(p["size"])
    given = p["grid"]
    grid = parse_grid(answer, n, n, int_cell, "an integer")
    filled = []
    for i in range(n):
        for j in range(n):
            if given[i][j]:
                if grid[i][j] != given[i][j]:
                    return wrong(f"given cell ({i + 1},{j + 1}) was changed")
            else:
                filled.append(grid[i][j])
    have, used = Counter(p["candidates"]), Counter(filled)
    for v, k in used.items():
        if v not in have:
            return wrong(f"{short(v)} is not a candidate number")
        if k > have[v]:
            return wrong(f"you used {v} {times(k)}, but it is a candidate {times(have[v])}")
    for i in range(n):
        if sum(grid[i][: n - 1]) != grid[i][n - 1]:
            return wrong(f"row {i + 1} adds up to {sum(grid[i][: n - 1])}, not {grid[i][n - 1]}")
    for j in range(n):
        col = sum(grid[i][j] for i in range(n - 1))
        if col != grid[n - 1][j]:
            return wrong(f"column {j + 1} adds up to {col}, not {grid[n - 1][j]}")
    return CORRECT


def solve(p: dict) -> Optional[str]:
    """The matrix (as JSON) with its empty cells filled by the candidates so that every sum holds; None when there is
    none (or the search runs out of budget). The last empty cell of a row or column takes the value that line needs."""
    n = int(p["size"])
    grid = [[int(v) for v in row] for row in p["grid"]]
    empty = [(i, j) for i in range(n) for j in range(n) if not grid[i][j]]
    left = Counter(int(v) for v in p["candidates"])
    if len(empty) != sum(left.values()):
        return None
    lines = {("row", i): [(i, j) for j in range(n)] for i in range(n)}
    lines.update({("col", j): [(i, j) for i in range(n)] for j in range(n)})
    open_cells = Counter(key for key, cells in lines.items() for c in cells if c in empty)
    nodes = [NODE_BUDGET]

    def holds(key) -> bool:
        *body, (si, sj) = lines[key]
        return sum(grid[i][j] for i, j in body) == grid[si][sj]

    def needed(i: int, j: int) -> Optional[int]:
        for key in (("row", i), ("col", j)):
            if open_cells[key] == 1:  # (i, j) is the line's last empty cell
                *body, total = lines[key]
                others = sum(grid[a][b] for a, b in body if (a, b) != (i, j))
                return others if total == (i, j) else grid[total[0]][total[1]] - others
        return None

    def search(k: int) -> bool:
        if k == len(empty):
            return True
        nodes[0] -= 1
        if nodes[0] < 0:
            raise OutOfBudget
        i, j = empty[k]
        need = needed(i, j)
        for v in [need] if need is not None else list(left):
            if not left[v]:
                continue
            grid[i][j] = v
            left[v] -= 1
            keys = (("row", i), ("col", j))
            for key in keys:
                open_cells[key] -= 1
            if all(open_cells[key] or holds(key) for key in keys) and search(k + 1):
                return True
            grid[i][j] = 0
            left[v] += 1
            for key in keys:
                open_cells[key] += 1
        return False

    try:
        return grid_json(grid) if search(0) else None
    except OutOfBudget:
        return None


def from_hub(md: dict, data: dict) -> tuple[dict, Optional[str]]:
    grid = as_grid(md["original_matrix"])
    n = len(grid)
    require(3 <= n <= 12, "unsupported survo size")
    candidates = sorted(as_int(v) for v in md["candidate_numbers"])
    solution = md.get("filled_matrix")
    puzzle = {"size": n, "grid": grid, "candidates": candidates}
    return puzzle, None if solution is None else json.dumps(as_grid(solution, n))
