"""futoshiki: a Latin square with inequality signs between neighbours and a unique solution; an answer is the
completed grid."""

from __future__ import annotations

import json
import random
from typing import Optional

from rlexp.envs.synlogic.common import (
    CORRECT,
    Task,
    Verdict,
    as_grid,
    as_int,
    as_obj,
    grid_json,
    grid_text,
    int_cell,
    parse_grid,
    require,
    wrong,
)
from rlexp.envs.synlogic.latin import latin_checks, latin_search, to_rows

# (size, prefilled cells, inequality signs): the starting hints; more are added until the solution is unique
LEVELS = [
    (4, 4, 4),
    (4, 3, 3),
    (4, 2, 2),
    (5, 5, 5),
    (5, 3, 4),
    (5, 2, 3),
    (6, 6, 6),
    (6, 4, 5),
    (6, 3, 4),
    (6, 2, 3),
]
THINK = "I combine the row and column rules with the inequalities to narrow each cell down."

_MAX_HINT_ROUNDS = 200


def _futoshiki_pairs(constraints: list, n: int) -> tuple:
    """Constraint list [r1, c1, r2, c2, op] -> (smaller cell, larger cell) pairs for the search."""
    pairs = []
    for r1, c1, r2, c2, op in constraints:
        a, b = r1 * n + c1, r2 * n + c2
        pairs.append((a, b) if op == "<" else (b, a))
    return tuple(pairs)


def generate(rng: random.Random, difficulty: int) -> Task:
    n, n_given, n_signs = LEVELS[difficulty - 1]
    solution = latin_search([0] * (n * n), n, limit=1, rng=rng, budget=10**6)[0]
    neighbours = [(c, c + 1) for c in range(n * n) if c % n < n - 1] + [(c, c + n) for c in range(n * n - n)]
    rng.shuffle(neighbours)
    signs = neighbours[:n_signs]
    givens = set(rng.sample(range(n * n), n_given))

    def constraints() -> list:
        return [[a // n, a % n, b // n, b % n, "<" if solution[a] < solution[b] else ">"] for a, b in sorted(signs)]

    for _ in range(_MAX_HINT_ROUNDS):
        grid = [solution[c] if c in givens else 0 for c in range(n * n)]
        found = latin_search(grid, n, constraints=_futoshiki_pairs(constraints(), n), limit=2)
        if found is not None and len(found) == 1:
            break
        if found is None:  # search too long: give a cell away and try again
            givens.add(rng.choice([c for c in range(n * n) if c not in givens]))
            continue
        other = found[0] if found[0] != solution else found[1]
        differ = [c for c in range(n * n) if other[c] != solution[c]]
        cell = rng.choice(differ)
        # prefer an inequality that the other solution breaks; else reveal the cell
        splitting = [
            pair
            for pair in neighbours[n_signs:]
            if cell in pair and pair not in signs and (solution[pair[0]] < solution[pair[1]]) != (other[pair[0]] < other[pair[1]])
        ]
        if splitting:
            signs.append(rng.choice(splitting))
        else:
            givens.add(cell)
    grid = [solution[c] if c in givens else 0 for c in range(n * n)]
    puzzle = {"size": n, "grid": to_rows(grid, n), "constraints": constraints()}
    return Task(puzzle, grid_json(to_rows(solution, n)))


def prompt(p: dict) -> tuple[str, str]:
    n = p["size"]
    signs = "\n".join(f"({r1 + 1},{c1 + 1}) {op} ({r2 + 1},{c2 + 1})" for r1, c1, r2, c2, op in p["constraints"])
    task = (
        f"Solve this {n}x{n} Futoshiki puzzle. Fill every empty cell (0) with a number from 1 to {n} so that every "
        f"row and every column contains each number from 1 to {n} exactly once, the given numbers are kept, and "
        f"every inequality below holds. Cells are written (row,column), counting from 1 at the top left.\n\n"
        f"Grid:\n{grid_text(p['grid'])}\n\nInequalities:\n{signs or '(none)'}"
    )
    fmt = f"the completed grid as a JSON list of {n} rows, each a list of {n} integers, e.g. <answer>[[...], ...]</answer>"
    return task, fmt


def verify(p: dict, answer: str) -> Verdict:
    n = int(p["size"])
    grid = parse_grid(answer, n, n, int_cell, "an integer")
    bad = latin_checks(grid, n, p["grid"])
    if bad:
        return bad
    for r1, c1, r2, c2, op in p["constraints"]:
        a, b = grid[r1][c1], grid[r2][c2]
        if not (a < b if op == "<" else a > b):
            return wrong(f"constraint ({r1 + 1},{c1 + 1}) {op} ({r2 + 1},{c2 + 1}) violated")
    return CORRECT


def solve(p: dict) -> Optional[str]:
    n = int(p["size"])
    flat = [int(v) for row in p["grid"] for v in row]
    found = latin_search(flat, n, constraints=_futoshiki_pairs(p["constraints"], n), limit=1)
    return grid_json(to_rows(found[0], n)) if found else None


def from_hub(md: dict, data: dict) -> tuple[dict, Optional[str]]:
    n = as_int(md["grid_size"])
    require(3 <= n <= 9, "unsupported futoshiki size")
    solution = as_grid(data.get("answer"), n)  # the prefilled numbers the question shows are read from it
    grid = [[0] * n for _ in range(n)]
    for coord in as_obj(md.get("prefilled_coords") or []):
        r, c = (as_int(v) for v in coord)
        grid[r][c] = solution[r][c]
    constraints = []
    for item in as_obj(md.get("constraints") or []):
        (r1, c1), (r2, c2), op = item
        r1, c1, r2, c2 = (as_int(v) for v in (r1, c1, r2, c2))
        require(op in ("<", ">") and all(0 <= v < n for v in (r1, c1, r2, c2)), "bad inequality")
        constraints.append([r1, c1, r2, c2, op])
    return {"size": n, "grid": grid, "constraints": constraints}, json.dumps(solution)
