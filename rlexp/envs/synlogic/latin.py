"""Latin squares (sudoku, futoshiki): the bounded search behind their generators and solvers, and the checks their
verifiers share. The search keeps bitmask candidates and fills the cell with the fewest first."""

from __future__ import annotations

import random
from collections import Counter
from typing import Optional

from rlexp.envs.synlogic.common import NODE_BUDGET, OutOfBudget, Verdict, short, wrong


def latin_search(
    grid: list[int],
    n: int,
    box: Optional[tuple[int, int]] = None,
    constraints: tuple = (),
    limit: int = 2,
    rng: Optional[random.Random] = None,
    forbid: Optional[tuple[int, int]] = None,
    budget: int = NODE_BUDGET,
) -> Optional[list[list[int]]]:
    """Solutions (flat lists) of a partly filled n x n Latin square, up to `limit`.

    `box`: sudoku box (rows, cols); `constraints`: (cell a, cell b) pairs meaning value(a) < value(b);
    `forbid`: (cell, value) that cell may not take; `rng` shuffles the value order (used to make full grids).
    Returns None when the node budget runs out (the answer is unknown)."""
    full = (1 << n) - 1
    rows, cols, boxes = [0] * n, [0] * n, [0] * n
    br, bc = box if box else (n, n)
    per_row = n // bc if box else 1
    box_of = [((c // n) // br) * per_row + (c % n) // bc if box else 0 for c in range(n * n)]
    g = list(grid)
    for c, v in enumerate(g):
        if v:
            bit = 1 << (v - 1)
            r, k = divmod(c, n)
            if rows[r] & bit or cols[k] & bit or (box and boxes[box_of[c]] & bit):
                return []
            rows[r] |= bit
            cols[k] |= bit
            if box:
                boxes[box_of[c]] |= bit
    less: dict[int, list[int]] = {}  # cell -> cells that must be smaller
    more: dict[int, list[int]] = {}  # cell -> cells that must be larger
    for a, b in constraints:
        if g[a] and g[b] and g[a] >= g[b]:  # two given cells that break their sign (hub rows can have them)
            return []
        less.setdefault(b, []).append(a)
        more.setdefault(a, []).append(b)
    empties = [c for c in range(n * n) if not g[c]]
    found: list[list[int]] = []
    nodes = [budget]

    def candidates(c: int) -> int:
        r, k = divmod(c, n)
        m = full & ~(rows[r] | cols[k] | (boxes[box_of[c]] if box else 0))
        for a in less.get(c, ()):  # value(c) > value(a)
            m &= ~((1 << g[a]) - 1) if g[a] else ~1
        for b in more.get(c, ()):  # value(c) < value(b)
            m &= ((1 << (g[b] - 1)) - 1) if g[b] else ~(1 << (n - 1))
        if forbid is not None and forbid[0] == c:
            m &= ~(1 << (forbid[1] - 1))
        return m

    def search() -> None:
        nodes[0] -= 1
        if nodes[0] < 0:
            raise OutOfBudget
        best, best_m, best_count = -1, 0, n + 1
        for c in empties:
            if not g[c]:
                m = candidates(c)
                count = m.bit_count()
                if count < best_count:
                    best, best_m, best_count = c, m, count
                    if count <= 1:
                        break
        if best < 0:
            found.append(list(g))
            return
        if best_count == 0:
            return
        values = [v + 1 for v in range(n) if best_m >> v & 1]
        if rng is not None:
            rng.shuffle(values)
        r, k = divmod(best, n)
        bx = box_of[best]
        for v in values:
            bit = 1 << (v - 1)
            g[best] = v
            rows[r] |= bit
            cols[k] |= bit
            if box:
                boxes[bx] |= bit
            search()
            g[best] = 0
            rows[r] &= ~bit
            cols[k] &= ~bit
            if box:
                boxes[bx] &= ~bit
            if len(found) >= limit:
                return

    try:
        search()
    except OutOfBudget:
        return None
    return found


def to_rows(flat: list[int], n: int) -> list[list[int]]:
    return [list(flat[i * n : (i + 1) * n]) for i in range(n)]


def latin_checks(grid: list[list[int]], n: int, givens: list[list[int]]) -> Optional[Verdict]:
    for i in range(n):
        for j in range(n):
            if not 1 <= grid[i][j] <= n:
                return wrong(f"cell ({i + 1},{j + 1}) holds {short(grid[i][j])}, not a number from 1 to {n}")
    for i in range(n):
        for j in range(n):
            if givens[i][j] and grid[i][j] != givens[i][j]:
                return wrong(f"given cell ({i + 1},{j + 1}) was changed")
    for name, lines in (("row", grid), ("column", [list(col) for col in zip(*grid)])):
        for i, line in enumerate(lines, 1):
            dup = next((v for v, k in Counter(line).items() if k > 1), None)
            if dup is not None:
                return wrong(f"{name} {i} has duplicate {dup}")
    return None
