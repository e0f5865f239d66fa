"""game_of_24 (SynLogic's mathador), and countdown at high difficulty: reach the target with every number once.

An answer is an arithmetic expression (an ending "= target" is allowed); it is read with GeneralPoints' formula
normalisation and evaluated exactly by its parser, never by Python.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from fractions import Fraction
from typing import Optional

from rlexp.envs.generalpoints import _exact_value, _FormulaError, solvable
from rlexp.envs.synlogic.common import (
    CORRECT,
    Task,
    Verdict,
    as_int,
    malformed,
    nesting,
    require,
    short,
    strip_fence,
    times,
    wrong,
)
from rlexp.envs.text import normalize_formula

# (how many numbers, number pool, target low, target high); pool "cd" = countdown cards 1..10 x2 + 25/50/75/100
LEVELS = [
    (4, (1, 9), 24, 24),
    (4, (1, 10), 24, 24),
    (4, (1, 13), 24, 24),
    (5, (1, 9), 24, 24),
    (5, (1, 13), 24, 24),
    (4, "cd", 100, 999),
    (5, "cd", 100, 999),
    (6, "cd", 100, 999),
    (6, (1, 50), 100, 999),
    (6, (1, 100), 500, 999),
]
THINK = "I try combinations of the numbers until one reaches the target, using each number once."

_ARITH_TOKEN = re.compile(r"[0-9]+|[-+*/()]")
_NUMBER = re.compile(r"[1-9][0-9]*")
_COUNTDOWN = tuple(range(1, 11)) * 2 + (25, 50, 75, 100)
_LATEX_OPS = (("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"), ("\\left", ""), ("\\right", ""))
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
MAX_EXPRESSION_CHARS = 1000
_SEARCH_BUDGET = 200_000


def _combine(a: tuple, b: tuple, op: str) -> tuple:
    """(value, text, precedence) of `a op b`, with only the brackets the precedence needs."""
    p = _PREC[op]
    left = f"({a[1]})" if a[2] < p else a[1]
    right = f"({b[1]})" if b[2] < p or (b[2] == p and op in "-/") else b[1]
    value = {"+": a[0] + b[0], "-": a[0] - b[0], "*": a[0] * b[0], "/": a[0] / b[0] if b[0] else None}[op]
    return value, f"{left} {op} {right}", p


def find_expression(
    numbers: list[int], target: int, operators: str = "+-*/", rng: Optional[random.Random] = None
) -> Optional[str]:
    """One expression using every number once that equals `target` (exact), or None; bounded search."""
    failed: set = set()
    budget = [_SEARCH_BUDGET]
    goal = Fraction(target)

    def search(items: list[tuple]) -> Optional[str]:
        if len(items) == 1:
            return items[0][1] if items[0][0] == goal else None
        key = tuple(sorted(v for v, _, _ in items))
        if key in failed:
            return None
        budget[0] -= 1
        if budget[0] < 0:
            return None
        pairs = [(i, j) for i in range(len(items)) for j in range(i + 1, len(items))]
        if rng is not None:
            rng.shuffle(pairs)
        for i, j in pairs:
            rest = [items[k] for k in range(len(items)) if k not in (i, j)]
            a, b = items[i], items[j]
            for x, y, op in ((a, b, "+"), (a, b, "*"), (a, b, "-"), (b, a, "-"), (a, b, "/"), (b, a, "/")):
                if op not in operators:
                    continue
                if op == "/" and y[0] == 0:
                    continue
                found = search(rest + [_combine(x, y, op)])
                if found is not None:
                    return found
        failed.add(key)
        return None

    return search([(Fraction(n), str(n), 3) for n in numbers])


def _countdown_tree(rng: random.Random, numbers: list[int]) -> Optional[tuple]:
    """Combine every number in a random order with random operations keeping positive integer intermediates."""
    items = [(Fraction(n), str(n), 3) for n in numbers]
    while len(items) > 1:
        i, j = rng.sample(range(len(items)), 2)
        a, b = items[i], items[j]
        if a[0] < b[0]:
            a, b = b, a
        ops = ["+", "*"]
        if a[0] != b[0]:
            ops.append("-")
        if b[0] != 1 and a[0] % b[0] == 0:
            ops.append("/")
        if b[0] == 1 or a[0] == 1:
            ops.remove("*")  # multiplying by 1 makes trivial puzzles
        op = rng.choice(ops)
        items = [items[k] for k in range(len(items)) if k not in (i, j)] + [_combine(a, b, op)]
    return items[0]


def generate(rng: random.Random, difficulty: int) -> Task:
    count, pool, t_lo, t_hi = LEVELS[difficulty - 1]
    if t_lo == t_hi:  # make the target from a drawn hand; unsolvable hands are redrawn
        lo, hi = pool
        while True:
            numbers = sorted(rng.randint(lo, hi) for _ in range(count))
            if solvable(numbers, t_lo):
                expr = find_expression(numbers, t_lo, rng=rng)
                if expr is not None:
                    break
        target = t_lo
    else:  # countdown: build a random expression over the hand; its value (in range) is the target
        while True:
            numbers = rng.sample(_COUNTDOWN, count) if pool == "cd" else [rng.randint(*pool) for _ in range(count)]
            value, expr, _ = _countdown_tree(rng, numbers)
            if value.denominator == 1 and t_lo <= value <= t_hi:
                target = int(value)
                break
        numbers = sorted(numbers)
    return Task({"numbers": numbers, "target": target, "operators": "+-*/"}, expr)


def prompt(p: dict) -> tuple[str, str]:
    nums = ", ".join(str(n) for n in p["numbers"])
    ops = " ".join(p.get("operators", "+-*/"))
    task = (
        f"Numbers: {nums}\nTarget: {p['target']}\n\n"
        f"Write an arithmetic expression that uses each of the numbers exactly once (as many times as it is listed) "
        f"and equals {p['target']}. You may use the operators {ops} and parentheses. Intermediate results may be "
        "fractions. Do not join numbers into new numbers, and use no other operators (no unary minus, no powers)."
    )
    fmt = (
        "the expression alone, e.g. <answer>(a - b) * c + d</answer> with the numbers in place of the letters "
        f'(an ending "= {p["target"]}" is allowed)'
    )
    return task, fmt


def verify(p: dict, answer: str) -> Verdict:
    numbers = [int(n) for n in p["numbers"]]
    target = int(p["target"])
    allowed = str(p.get("operators", "+-*/"))
    if len(answer) > MAX_EXPRESSION_CHARS:
        return malformed("expression is too long")
    text = strip_fence(answer)  # SynLogic's prompt asks for the expression in a ```python block
    for latex, op in _LATEX_OPS:
        text = text.replace(latex, op)
    text = normalize_formula(text).strip("$`").rstrip(".")
    if not text:
        return malformed("empty answer")
    if text.count("=") > 1:
        return malformed("expression has more than one '='")
    if "=" in text:
        left, right = text.split("=")
        if right == str(target):
            text = left
        elif left == str(target):
            text = right
        else:
            return malformed(f"the side of '=' must be {target}")
        if not text:
            return malformed("empty expression")
    if nesting(text) > 50:
        return malformed("expression is nested too deeply")
    tokens = _ARITH_TOKEN.findall(text)
    if "".join(tokens) != text:
        bad = next(ch for ch in text if not _ARITH_TOKEN.fullmatch(ch))
        return malformed(f"expression contains {short(repr(bad))}; use only numbers, + - * / and parentheses")
    for tok in tokens:
        if tok in _PREC and tok not in allowed:
            return malformed(f"operator {tok} is not allowed")
        if tok[0].isdigit() and not _NUMBER.fullmatch(tok):
            return malformed(f"invalid number {short(tok)}")
    try:
        value = _exact_value(tokens)
    except _FormulaError:
        return malformed("expression is not well formed")
    except ZeroDivisionError:
        value = None
    used = Counter(int(t) if len(t) <= 9 else t for t in tokens if t[0].isdigit())
    have = Counter(numbers)
    for n in used:
        if n not in have:
            return wrong(f"{short(n)} is not one of the given numbers")
    for n, k in used.items():
        if k > have[n]:
            given = "" if have[n] == 1 else f", but it is given {times(have[n])}"
            return wrong(f"you used {n} {times(k)}{given}")
    for n in have:
        if used[n] < have[n]:
            return wrong(f"you did not use {n}" if used[n] == 0 else f"you used {n} only {times(used[n])}")
    if value is None:
        return wrong("expression divides by zero")
    if value != target:
        return wrong(f"expression evaluates to {value}, not {target}")
    return CORRECT


def solve(p: dict) -> Optional[str]:
    return find_expression([int(v) for v in p["numbers"]], int(p["target"]), str(p.get("operators", "+-*/")))


def from_hub(md: dict, data: dict) -> tuple[dict, Optional[str]]:
    numbers = sorted(as_int(v) for v in md["numbers"])
    require(2 <= len(numbers) <= 6 and all(0 < v <= 10_000 for v in numbers), "numbers out of range")
    target = as_int(md.get("result", 24))
    ops = md.get("operators") or list("+-*/")
    require(all(op in "+-*/" and len(op) == 1 for op in ops), "unknown operator")
    ops = "".join(op for op in "+-*/" if op in ops)
    return {"numbers": numbers, "target": target, "operators": ops}, None  # SynLogic stores no answer: we solve it
