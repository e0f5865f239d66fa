"""The eight SynLogic task families of `env=synlogic` (shared/specs/synlogic.md section 5.1).

Each family has:
- a generator `generate(family, seed, difficulty) -> Task`, a pure function of its arguments (one
  `random.Random(seed)`, never the global RNG or `hash()` of a string), with difficulty 1..10 mapped to the knob
  tuples in `LEVELS`;
- a prompt rendered from the puzzle alone (`render_prompt`), so hub rows mapped onto our puzzles get the same
  answer contract;
- a reference answer (for SFT demonstrations);
- a verifier `verify(family, puzzle, answer) -> Verdict` that checks the puzzle's constraints (any valid answer
  passes), never evaluates model text with Python, and explains a failure in one line that never shows the
  solution.

Everything here is written from the spec; SynLogic's own code is not used (spec section 7 lists its bugs).
"""

from __future__ import annotations

import itertools
import json
import random
import re
import string
from collections import Counter
from fractions import Fraction
from typing import Any, Callable, NamedTuple, Optional

from rlexp.envs.generalpoints import _exact_value, _FormulaError, normalize_formula, solvable

FAMILIES = (
    "game_of_24",
    "cryptarithm",
    "sudoku",
    "futoshiki",
    "kukurasu",
    "survo",
    "dyck_language",
    "boolean_expressions",
)
MAX_DIFFICULTY = 10
MAX_ANSWER_CHARS = 64 * 1024  # longer answers are refused before any parsing (spec 7)
MAX_JSON_DEPTH = 8  # bracket nesting allowed before json.loads (spec 7)


class Verdict(NamedTuple):
    ok: bool
    category: str  # correct | wrong (parsed, breaks a rule) | malformed (cannot be read as an answer)
    reason: str  # "" when correct; one line that never contains the solution


class Task(NamedTuple):
    puzzle: dict  # JSON-serialisable; everything the prompt and the verifier need
    reference: str  # one correct answer, in the format the prompt asks for


CORRECT = Verdict(True, "correct", "")


def _wrong(reason: str) -> Verdict:
    return Verdict(False, "wrong", reason)


def _malformed(reason: str) -> Verdict:
    return Verdict(False, "malformed", reason)


class _Reject(Exception):
    """Raised inside a verifier to return a Verdict from deep in a parser."""

    def __init__(self, verdict: Verdict):
        super().__init__(verdict.reason)
        self.verdict = verdict


def _short(text: Any, limit: int = 12) -> str:
    """A piece of the model's own text, safe to echo in feedback."""
    text = str(text)
    text = text if len(text) <= limit else text[:limit] + "..."
    return text.encode("utf-8", "replace").decode("utf-8")


def _times(k: int) -> str:
    return {1: "once", 2: "twice"}.get(k, f"{k} times")


# -------------------------------------------------------------------------------------------------------------
# Difficulty levels: difficulty d in 1..10 -> the knob tuple LEVELS[family][d - 1]

LEVELS: dict[str, list[tuple]] = {
    # (how many numbers, number pool, target low, target high); pool "cd" = countdown cards 1..10 x2 + 25/50/75/100
    "game_of_24": [
        (4, (1, 9), 24, 24), (4, (1, 10), 24, 24), (4, (1, 13), 24, 24), (5, (1, 9), 24, 24), (5, (1, 13), 24, 24),
        (4, "cd", 100, 999), (5, "cd", 100, 999), (6, "cd", 100, 999), (6, (1, 50), 100, 999), (6, (1, 100), 500, 999),
    ],
    # (distinct letters, operators, shortest operand, longest operand)
    "cryptarithm": [
        (3, 1, 2, 3), (4, 1, 2, 3), (4, 1, 3, 4), (5, 1, 3, 4), (5, 1, 3, 5),
        (6, 1, 3, 5), (5, 2, 3, 4), (6, 2, 3, 5), (7, 2, 3, 5), (8, 2, 4, 6),
    ],
    # (size, blanks): 4x4 (2x2 boxes), 6x6 (2x3 boxes), 9x9 (3x3 boxes); blanks as far as uniqueness allows
    "sudoku": [(4, 6), (4, 8), (4, 10), (6, 14), (6, 18), (6, 22), (9, 36), (9, 44), (9, 50), (9, 55)],
    # (size, prefilled cells, inequality signs): the starting hints; more are added until the solution is unique
    "futoshiki": [
        (4, 4, 4), (4, 3, 3), (4, 2, 2), (5, 5, 5), (5, 3, 4), (5, 2, 3), (6, 6, 6), (6, 4, 5), (6, 3, 4), (6, 2, 3),
    ],
    # (rows, columns, probability of a black cell)
    "kukurasu": [
        (3, 3, 0.4), (3, 4, 0.4), (4, 4, 0.3), (4, 5, 0.3), (5, 5, 0.3),
        (5, 5, 0.4), (5, 6, 0.3), (6, 6, 0.2), (6, 6, 0.3), (6, 6, 0.4),
    ],
    # (matrix size n with the sums row/column, hidden cells x with n <= x <= 2(n-1))
    "survo": [(4, 4), (4, 5), (4, 6), (5, 6), (5, 8), (6, 8), (6, 10), (7, 10), (7, 12), (8, 14)],
    # (bracket types, total length, characters to fill)
    "dyck_language": [
        (2, 10, 1), (2, 10, 2), (3, 12, 2), (3, 14, 3), (3, 16, 3), (4, 16, 4), (4, 18, 4), (4, 20, 5), (4, 24, 6),
        (4, 30, 8),
    ],
    # (options, expression depth)
    "boolean_expressions": [(3, 2), (4, 2), (5, 2), (3, 3), (4, 3), (5, 3), (6, 3), (4, 4), (5, 4), (6, 4)],
}


def level(family: str, difficulty: int) -> tuple:
    return LEVELS[family][difficulty - 1]


# -------------------------------------------------------------------------------------------------------------
# Answer parsing shared by the grid families


def _strip_fence(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else text[3:]  # drop the fence and its language tag
        text = text.rstrip()
        if text.endswith("```"):
            text = text[:-3]
    return text.strip()


def _nesting(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "[{(":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif ch in "]})":
            depth -= 1
    return deepest


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


def load_json(text: str) -> Any:
    """json.loads with the spec 7 guards: a size cap, a nesting cap, no NaN/Infinity; _Reject when unreadable."""
    if len(text) > MAX_ANSWER_CHARS:
        raise _Reject(_malformed("answer is too long"))
    if _nesting(text) > MAX_JSON_DEPTH:
        raise _Reject(_malformed("answer is nested too deeply"))
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError, MemoryError):
        raise _Reject(_malformed("answer is not valid JSON")) from None


_INT_TOKEN = re.compile(r"[+-]?[0-9]{1,18}")
# SynLogic's futoshiki format `[[1 2 3,2 3 1,3 1 2]]`: rows split by commas, cells by spaces
_SPACED_ROW = r"\s*-?[0-9]{1,18}(?:[ \t]+-?[0-9]{1,18})*\s*"
_SPACED_GRID = re.compile(rf"\[\[{_SPACED_ROW}(?:,{_SPACED_ROW})*\]\]")


def _load_grid(text: str) -> Any:
    """The answer as a JSON value; also reads Python tuples `((1, 2), (3, 4))`, SynLogic's `[[1 2,2 1]]` and plain
    rows of numbers."""
    text = _strip_fence(text).rstrip(".")
    if not text:
        raise _Reject(_malformed("empty answer"))
    if text[0] in "[(":
        try:
            return load_json(text)
        except _Reject as first:
            if _SPACED_GRID.fullmatch(text):
                return [[int(c) for c in row.split()] for row in text[2:-2].split(",")]
            if "(" not in text:
                raise
            try:
                return load_json(text.replace("(", "[").replace(")", "]"))
            except _Reject:
                raise first from None
    if len(text) > MAX_ANSWER_CHARS:
        raise _Reject(_malformed("answer is too long"))
    if "[" in text or "{" in text or "\n" not in text.strip():
        return load_json(text)  # not a grid: reports "not valid JSON" or gives the non-list value
    rows = []
    for line in text.splitlines():
        if line.strip():
            cells = [c for c in re.split(r"[\s,]+", line.strip()) if c]
            rows.append([int(c) if _INT_TOKEN.fullmatch(c) else c for c in cells])
    return rows


def parse_grid(text: str, n_rows: int, n_cols: int, cell: Callable[[Any], Optional[int]], what: str) -> list[list[int]]:
    """A n_rows x n_cols grid of ints; `cell` maps one JSON value to an int or None (refused, with `what` named)."""
    value = _load_grid(text)
    if not isinstance(value, list):
        raise _Reject(_malformed("answer is not a list of rows"))
    if len(value) != n_rows:
        raise _Reject(_malformed(f"answer grid has {len(value)} rows, expected {n_rows}"))
    grid = []
    for i, row in enumerate(value, 1):
        if not isinstance(row, list):
            raise _Reject(_malformed(f"row {i} is not a list"))
        if len(row) != n_cols:
            raise _Reject(_malformed(f"row {i} has {len(row)} cells, expected {n_cols}"))
        out = []
        for j, v in enumerate(row, 1):
            c = cell(v)
            if c is None:
                raise _Reject(_malformed(f"cell ({i},{j}) is not {what}"))
            out.append(c)
        grid.append(out)
    return grid


def _int_cell(v: Any) -> Optional[int]:
    return v if type(v) is int else None  # bool, float, str, list ... are refused


def _grid_json(grid: list[list[int]]) -> str:
    return "[" + ", ".join("[" + ", ".join(str(v) for v in row) + "]" for row in grid) + "]"


def _grid_text(grid: list[list[int]]) -> str:
    """A grid for prompts: one JSON row per line."""
    return "[\n" + ",\n".join("  [" + ", ".join(str(v) for v in row) + "]" for row in grid) + "\n]"


# -------------------------------------------------------------------------------------------------------------
# 1. game_of_24 (and countdown at high difficulty)

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


def find_expression(numbers: list[int], target: int, operators: str = "+-*/",
                    rng: Optional[random.Random] = None) -> Optional[str]:
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


def _gen_game_of_24(rng: random.Random, difficulty: int) -> Task:
    count, pool, t_lo, t_hi = level("game_of_24", difficulty)
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


def _prompt_game_of_24(p: dict) -> tuple[str, str]:
    nums = ", ".join(str(n) for n in p["numbers"])
    ops = " ".join(p.get("operators", "+-*/"))
    task = (
        f"Numbers: {nums}\nTarget: {p['target']}\n\n"
        f"Write an arithmetic expression that uses each of the numbers exactly once (as many times as it is listed) "
        f"and equals {p['target']}. You may use the operators {ops} and parentheses. Intermediate results may be "
        "fractions. Do not join numbers into new numbers, and use no other operators (no unary minus, no powers)."
    )
    fmt = "the expression alone, e.g. <answer>(a - b) * c + d</answer> with the numbers in place of the letters " \
          f"(an ending \"= {p['target']}\" is allowed)"
    return task, fmt


def _verify_game_of_24(p: dict, answer: str) -> Verdict:
    numbers = [int(n) for n in p["numbers"]]
    target = int(p["target"])
    allowed = str(p.get("operators", "+-*/"))
    if len(answer) > MAX_EXPRESSION_CHARS:
        return _malformed("expression is too long")
    text = _strip_fence(answer)  # SynLogic's prompt asks for the expression in a ```python block
    for latex, op in _LATEX_OPS:
        text = text.replace(latex, op)
    text = normalize_formula(text).strip("$`").rstrip(".")
    if not text:
        return _malformed("empty answer")
    if text.count("=") > 1:
        return _malformed("expression has more than one '='")
    if "=" in text:
        left, right = text.split("=")
        if right == str(target):
            text = left
        elif left == str(target):
            text = right
        else:
            return _malformed(f"the side of '=' must be {target}")
        if not text:
            return _malformed("empty expression")
    if _nesting(text) > 50:
        return _malformed("expression is nested too deeply")
    tokens = _ARITH_TOKEN.findall(text)
    if "".join(tokens) != text:
        bad = next(ch for ch in text if not _ARITH_TOKEN.fullmatch(ch))
        return _malformed(f"expression contains {_short(repr(bad))}; use only numbers, + - * / and parentheses")
    for tok in tokens:
        if tok in _PREC and tok not in allowed:
            return _malformed(f"operator {tok} is not allowed")
        if tok[0].isdigit() and not _NUMBER.fullmatch(tok):
            return _malformed(f"invalid number {_short(tok)}")
    try:
        value = _exact_value(tokens)
    except _FormulaError:
        return _malformed("expression is not well formed")
    except ZeroDivisionError:
        value = None
    used = Counter(int(t) if len(t) <= 9 else t for t in tokens if t[0].isdigit())
    have = Counter(numbers)
    for n in used:
        if n not in have:
            return _wrong(f"{_short(n)} is not one of the given numbers")
    for n, k in used.items():
        if k > have[n]:
            given = "" if have[n] == 1 else f", but it is given {_times(have[n])}"
            return _wrong(f"you used {n} {_times(k)}{given}")
    for n in have:
        if used[n] < have[n]:
            return _wrong(f"you did not use {n}" if used[n] == 0 else f"you used {n} only {_times(used[n])}")
    if value is None:
        return _wrong("expression divides by zero")
    if value != target:
        return _wrong(f"expression evaluates to {value}, not {target}")
    return CORRECT


# -------------------------------------------------------------------------------------------------------------
# 2. cryptarithm

_MAX_CRYPT_TRIES = 20_000


def _evaluate(values: list[int], ops: list[str]) -> int:
    """`v0 op0 v1 op1 v2 ...` with * before + and -."""
    terms, signs = [values[0]], [1]
    for op, v in zip(ops, values[1:]):
        if op == "*":
            terms[-1] *= v
        else:
            terms.append(v)
            signs.append(1 if op == "+" else -1)
    return sum(s * t for s, t in zip(signs, terms))


def crypt_solutions(words: list[str], ops: list[str], result: str, limit: int = 2) -> list[dict]:
    """Letter -> digit maps solving `w0 op w1 ... = result` (only + and -), column by column; at most `limit`."""
    coefs = [1] + [1 if op == "+" else -1 for op in ops] + [-1]
    all_words = list(words) + [result]
    ncols = max(len(w) for w in all_words)
    cols = []  # per column from the right: [(letter, net coefficient)]
    for j in range(ncols):
        net: dict[str, int] = {}
        for w, c in zip(all_words, coefs):
            if len(w) > j:
                net[w[-1 - j]] = net.get(w[-1 - j], 0) + c
        cols.append(list(net.items()))
    leading = {w[0] for w in all_words if len(w) > 1}
    assign: dict[str, int] = {}
    used = [False] * 10
    found: list[dict] = []

    def column(j: int, carry: int) -> None:
        if j == ncols:
            if carry == 0:
                found.append(dict(assign))
            return
        todo = [(letter, c) for letter, c in cols[j] if letter not in assign]
        partial = carry + sum(c * assign[letter] for letter, c in cols[j] if letter in assign)
        fill(j, todo, 0, partial)

    def fill(j: int, todo: list, k: int, partial: int) -> None:
        if len(found) >= limit:
            return
        if k == len(todo):
            if partial % 10 == 0:
                column(j + 1, partial // 10)
            return
        letter, c = todo[k]
        last = k == len(todo) - 1
        for d in range(1 if letter in leading else 0, 10):
            if used[d] or (last and (partial + c * d) % 10):
                continue
            used[d] = True
            assign[letter] = d
            fill(j, todo, k + 1, partial + c * d)
            del assign[letter]
            used[d] = False

    column(0, 0)
    return found


def _crypt_equation(values: list[int], ops: list[str]) -> str:
    text = str(values[0])
    for op, v in zip(ops, values[1:-1]):
        text += f" {op} {v}"
    return f"{text} = {values[-1]}"


def _gen_cryptarithm(rng: random.Random, difficulty: int) -> Task:
    num_letters, num_ops, lo, hi = level("cryptarithm", difficulty)
    while True:
        digits = rng.sample(range(10), num_letters)
        nonzero = [d for d in digits if d]
        for _ in range(200):
            ops = [rng.choice("+-") for _ in range(num_ops)]
            operands = []
            for _ in range(num_ops + 1):
                length = rng.randint(lo, hi)
                operands.append(int("".join(str(d) for d in [rng.choice(nonzero)] +
                                            [rng.choice(digits) for _ in range(length - 1)])))
            result = _evaluate(operands, ops)
            if result < 10:
                continue
            texts = [str(v) for v in operands + [result]]
            if len(set("".join(texts))) != num_letters or not set(texts[-1]) <= {str(d) for d in digits}:
                continue
            letters = rng.sample(string.ascii_uppercase, num_letters)
            to_letter = {str(d): letter for d, letter in zip(digits, letters)}
            words = ["".join(to_letter[ch] for ch in t) for t in texts]
            if len(crypt_solutions(words[:-1], ops, words[-1])) == 1:
                puzzle = {"words": words[:-1], "operators": ops, "result": words[-1]}
                return Task(puzzle, _crypt_equation(operands + [result], ops))


def _crypt_text(p: dict) -> str:
    text = p["words"][0]
    for op, w in zip(p["operators"], p["words"][1:]):
        text += f" {op} {w}"
    return f"{text} = {p['result']}"


def _prompt_cryptarithm(p: dict) -> tuple[str, str]:
    task = (
        f"Solve this cryptarithm:\n\n    {_crypt_text(p)}\n\n"
        "Each letter stands for one digit 0-9; different letters stand for different digits, and a number with "
        "more than one digit does not start with 0. Replace the letters so that the equation holds"
        + (" (* is done before + and -)." if "*" in p["operators"] else ".")
    )
    fmt = ("the equation with digits in place of the letters, written like the puzzle, e.g. "
           "<answer>123 + 456 = 579</answer>")
    return task, fmt


def _crypt_mapping(text: str, p: dict, letters: list[str]) -> dict:
    """The answer as a letter -> digit map, from a JSON object, `A=1, B=2` pairs, or a digit equation."""
    words = list(p["words"]) + [p["result"]]
    if text.startswith("{"):
        obj = load_json(text)
        if not isinstance(obj, dict):
            raise _Reject(_malformed("answer is not a letter-to-digit map"))
        mapping = {}
        for key, value in obj.items():
            if isinstance(value, str) and len(value) == 1 and value.isdigit():
                value = int(value)
            if type(value) is not int or not 0 <= value <= 9:
                raise _Reject(_malformed(f"the value of {_short(key)} is not a digit 0-9"))
            mapping[str(key).strip().upper()] = value
        return mapping
    if re.match(r"[A-Za-z]\s*[=:]", text):
        pairs = re.findall(r"([A-Za-z])\s*[=:]\s*([0-9]+)", text)
        rest = re.sub(r"([A-Za-z])\s*[=:]\s*([0-9]+)", "", text)
        if not pairs or rest.strip(" ,;\n\t"):
            raise _Reject(_malformed("answer is not a list of letter=digit pairs"))
        mapping = {}
        for letter, digit in pairs:
            if len(digit) != 1:
                raise _Reject(_malformed(f"the value of {letter.upper()} is not a digit 0-9"))
            mapping[letter.upper()] = int(digit)
        return mapping
    compact = "".join(text.split()).replace("×", "*").replace("−", "-")
    tokens = re.findall(r"[0-9]+|[-+*=]", compact)
    if "".join(tokens) != compact:
        raise _Reject(_malformed("answer is not a digit equation like 123 + 456 = 579"))
    expected = []
    for i, w in enumerate(p["words"]):
        if i:
            expected.append(p["operators"][i - 1])
        expected.append(w)
    expected += ["=", p["result"]]
    if len(tokens) != len(expected):
        count = sum(t[0].isdigit() for t in tokens)
        raise _Reject(_malformed(f"the equation has {count} numbers and {len(tokens) - count} signs, "
                                 f"expected {len(words)} and {len(expected) - len(words)}"))
    mapping: dict[str, int] = {}
    k = 0
    for tok, want in zip(tokens, expected):
        if not want[0].isalpha():
            if tok != want:
                raise _Reject(_malformed(f"the equation should have {want} where it has {tok}"))
            continue
        k += 1
        if not tok[0].isdigit():
            raise _Reject(_malformed("answer is not a digit equation like 123 + 456 = 579"))
        if len(tok) != len(want):
            raise _Reject(_wrong(f"number {k} has {len(tok)} digits, but {want} has {len(want)} letters"))
        for letter, ch in zip(want, tok):
            if mapping.setdefault(letter, int(ch)) != int(ch):
                raise _Reject(_wrong(f"letter {letter} stands for both {mapping[letter]} and {ch}"))
    return mapping


# SynLogic's cryptarithm prompt asks for "The answer is $YOUR_ANSWER." (in Chinese "答案是 $YOUR_ANSWER。")
_ANSWER_MARKER = re.compile(r"^\s*(?:the\s+(?:final\s+)?answer\s+is|答案是)\s*[:：]?", re.IGNORECASE)


def _verify_cryptarithm(p: dict, answer: str) -> Verdict:
    words = list(p["words"]) + [p["result"]]
    ops = list(p["operators"])
    letters = list(dict.fromkeys("".join(words)))
    text = _ANSWER_MARKER.sub("", _strip_fence(answer))
    text = text.strip().rstrip(".。").strip().strip("$").strip()
    if not text:
        return _malformed("empty answer")
    if len(text) > 4096:
        return _malformed("answer is too long")
    mapping = _crypt_mapping(text, p, letters)
    for letter in mapping:
        if letter not in letters:
            return _malformed(f"{_short(letter)} is not a letter of the puzzle")
    for letter in letters:
        if letter not in mapping:
            return _wrong(f"letter {letter} has no digit")
    owner: dict[int, str] = {}
    for letter in letters:
        d = mapping[letter]
        if d in owner:
            return _wrong(f"letters {owner[d]} and {letter} both stand for {d}")
        owner[d] = letter
    for w in words:
        if len(w) > 1 and mapping[w[0]] == 0:
            return _wrong(f"{w} would start with 0")
    values = [int("".join(str(mapping[ch]) for ch in w)) for w in words]
    left = _evaluate(values[:-1], ops)
    if left != values[-1]:
        return _wrong(f"the equation does not hold: the left side is {left}, the right side is {values[-1]}")
    return CORRECT


# -------------------------------------------------------------------------------------------------------------
# Latin-square search (sudoku, futoshiki): bitmask candidates, fewest-candidates-first, bounded by a node budget

_BOXES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}
_NODE_BUDGET = 50_000


class _Budget(Exception):
    pass


def latin_search(grid: list[int], n: int, box: Optional[tuple[int, int]] = None, constraints: tuple = (),
                 limit: int = 2, rng: Optional[random.Random] = None, forbid: Optional[tuple[int, int]] = None,
                 budget: int = _NODE_BUDGET) -> Optional[list[list[int]]]:
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
            raise _Budget
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
    except _Budget:
        return None
    return found


def _to_rows(flat: list[int], n: int) -> list[list[int]]:
    return [list(flat[i * n:(i + 1) * n]) for i in range(n)]


def _latin_checks(grid: list[list[int]], n: int, givens: list[list[int]]) -> Optional[Verdict]:
    for i in range(n):
        for j in range(n):
            if not 1 <= grid[i][j] <= n:
                return _wrong(f"cell ({i + 1},{j + 1}) holds {_short(grid[i][j])}, not a number from 1 to {n}")
    for i in range(n):
        for j in range(n):
            if givens[i][j] and grid[i][j] != givens[i][j]:
                return _wrong(f"given cell ({i + 1},{j + 1}) was changed")
    for name, lines in (("row", grid), ("column", [list(col) for col in zip(*grid)])):
        for i, line in enumerate(lines, 1):
            dup = next((v for v, k in Counter(line).items() if k > 1), None)
            if dup is not None:
                return _wrong(f"{name} {i} has duplicate {dup}")
    return None


# -------------------------------------------------------------------------------------------------------------
# 3. sudoku


def _gen_sudoku(rng: random.Random, difficulty: int) -> Task:
    n, blanks = level("sudoku", difficulty)
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
    return Task({"size": n, "box": list(box), "grid": _to_rows(puzzle, n)}, _grid_json(_to_rows(solution, n)))


def _prompt_sudoku(p: dict) -> tuple[str, str]:
    n = p["size"]
    br, bc = p["box"]
    task = (
        f"Solve this {n}x{n} sudoku. Fill every empty cell (0) with a number from 1 to {n} so that every row, every "
        f"column and every {br}x{bc} box (boxes are {br} rows tall and {bc} columns wide) contains each number "
        f"from 1 to {n} exactly once. Keep the given numbers.\n\n{_grid_text(p['grid'])}"
    )
    fmt = f"the completed grid as a JSON list of {n} rows, each a list of {n} integers, e.g. <answer>[[...], ...]</answer>"
    return task, fmt


def _verify_sudoku(p: dict, answer: str) -> Verdict:
    n = int(p["size"])
    br, bc = p["box"]
    grid = parse_grid(answer, n, n, _int_cell, "an integer")
    bad = _latin_checks(grid, n, p["grid"])
    if bad:
        return bad
    per_row = n // bc
    for b in range(n):
        r0, c0 = (b // per_row) * br, (b % per_row) * bc
        values = [grid[r][c] for r in range(r0, r0 + br) for c in range(c0, c0 + bc)]
        dup = next((v for v, k in Counter(values).items() if k > 1), None)
        if dup is not None:
            return _wrong(f"box {b + 1} has duplicate {dup}")
    return CORRECT


# -------------------------------------------------------------------------------------------------------------
# 4. futoshiki

_MAX_HINT_ROUNDS = 200


def _futoshiki_pairs(constraints: list, n: int) -> tuple:
    """Constraint list [r1, c1, r2, c2, op] -> (smaller cell, larger cell) pairs for the search."""
    pairs = []
    for r1, c1, r2, c2, op in constraints:
        a, b = r1 * n + c1, r2 * n + c2
        pairs.append((a, b) if op == "<" else (b, a))
    return tuple(pairs)


def _gen_futoshiki(rng: random.Random, difficulty: int) -> Task:
    n, n_given, n_signs = level("futoshiki", difficulty)
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
            pair for pair in neighbours[n_signs:]
            if cell in pair and pair not in signs
            and (solution[pair[0]] < solution[pair[1]]) != (other[pair[0]] < other[pair[1]])
        ]
        if splitting:
            signs.append(rng.choice(splitting))
        else:
            givens.add(cell)
    grid = [solution[c] if c in givens else 0 for c in range(n * n)]
    puzzle = {"size": n, "grid": _to_rows(grid, n), "constraints": constraints()}
    return Task(puzzle, _grid_json(_to_rows(solution, n)))


def _prompt_futoshiki(p: dict) -> tuple[str, str]:
    n = p["size"]
    signs = "\n".join(f"({r1 + 1},{c1 + 1}) {op} ({r2 + 1},{c2 + 1})" for r1, c1, r2, c2, op in p["constraints"])
    task = (
        f"Solve this {n}x{n} Futoshiki puzzle. Fill every empty cell (0) with a number from 1 to {n} so that every "
        f"row and every column contains each number from 1 to {n} exactly once, the given numbers are kept, and "
        f"every inequality below holds. Cells are written (row,column), counting from 1 at the top left.\n\n"
        f"Grid:\n{_grid_text(p['grid'])}\n\nInequalities:\n{signs or '(none)'}"
    )
    fmt = f"the completed grid as a JSON list of {n} rows, each a list of {n} integers, e.g. <answer>[[...], ...]</answer>"
    return task, fmt


def _verify_futoshiki(p: dict, answer: str) -> Verdict:
    n = int(p["size"])
    grid = parse_grid(answer, n, n, _int_cell, "an integer")
    bad = _latin_checks(grid, n, p["grid"])
    if bad:
        return bad
    for r1, c1, r2, c2, op in p["constraints"]:
        a, b = grid[r1][c1], grid[r2][c2]
        if not (a < b if op == "<" else a > b):
            return _wrong(f"constraint ({r1 + 1},{c1 + 1}) {op} ({r2 + 1},{c2 + 1}) violated")
    return CORRECT


# -------------------------------------------------------------------------------------------------------------
# 5. kukurasu


def _kukurasu_sums(grid: list[list[int]]) -> tuple[list[int], list[int]]:
    rows = [sum(j + 1 for j, v in enumerate(row) if v) for row in grid]
    cols = [sum(i + 1 for i, row in enumerate(grid) if row[j]) for j in range(len(grid[0]))]
    return rows, cols


def _gen_kukurasu(rng: random.Random, difficulty: int) -> Task:
    n, m, prob = level("kukurasu", difficulty)
    for attempt in range(1000):
        grid = [[1 if rng.random() < prob else 0 for _ in range(m)] for _ in range(n)]
        rows, cols = _kukurasu_sums(grid)
        if all(rows) and all(cols) or attempt == 999:  # empty rows and columns make easy clues: avoid them
            break
    return Task({"rows": n, "cols": m, "row_sums": rows, "col_sums": cols}, _grid_json(grid))


def _prompt_kukurasu(p: dict) -> tuple[str, str]:
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


def _verify_kukurasu(p: dict, answer: str) -> Verdict:
    n, m = int(p["rows"]), int(p["cols"])
    grid = parse_grid(answer, n, m, _kukurasu_cell, "0 or 1")
    rows, cols = _kukurasu_sums(grid)
    for i, (got, want) in enumerate(zip(rows, p["row_sums"]), 1):
        if got != want:
            return _wrong(f"row {i} adds up to {got}, expected {want}")
    for j, (got, want) in enumerate(zip(cols, p["col_sums"]), 1):
        if got != want:
            return _wrong(f"column {j} adds up to {got}, expected {want}")
    return CORRECT


def _solve_kukurasu(p: dict) -> Optional[list[list[int]]]:
    """A grid meeting every clue, row by row; None when there is none (or the search runs out of budget)."""
    n, m = int(p["rows"]), int(p["cols"])
    col_sums = [int(v) for v in p["col_sums"]]
    if not (1 <= n <= 12 and 1 <= m <= 12):
        return None
    # each row's choices: the 0/1 rows whose black cells' column numbers add up to the row's clue
    choices = [[bits for bits in itertools.product((0, 1), repeat=m) if sum(j + 1 for j in range(m) if bits[j]) == want]
               for want in p["row_sums"]]
    nodes = [_NODE_BUDGET]

    def place(i: int, cols: tuple) -> Optional[list]:
        if i == n:
            return [] if list(cols) == col_sums else None
        nodes[0] -= 1
        if nodes[0] < 0:
            raise _Budget
        below = sum(range(i + 2, n + 1))  # the most the rows below can still add to a column
        for bits in choices[i]:
            new = tuple(c + (i + 1) * b for c, b in zip(cols, bits))
            if all(v <= want <= v + below for v, want in zip(new, col_sums)):
                rest = place(i + 1, new)
                if rest is not None:
                    return [list(bits)] + rest
        return None

    try:
        return place(0, (0,) * m)
    except _Budget:
        return None


# -------------------------------------------------------------------------------------------------------------
# 6. survo


def _gen_survo(rng: random.Random, difficulty: int) -> Task:
    n, hidden = level("survo", difficulty)
    full = [[rng.randint(1, 9) for _ in range(n - 1)] for _ in range(n - 1)]
    for row in full:
        row.append(sum(row))
    full.append([sum(full[i][j] for i in range(n - 1)) for j in range(n)])
    cells = rng.sample([(i, j) for i in range(n - 1) for j in range(n - 1)], hidden)
    grid = [list(row) for row in full]
    for i, j in cells:
        grid[i][j] = 0
    candidates = sorted(full[i][j] for i, j in cells)  # sorted: the order must not tell where they go
    return Task({"size": n, "grid": grid, "candidates": candidates}, _grid_json(full))


def _prompt_survo(p: dict) -> tuple[str, str]:
    n = p["size"]
    task = (
        f"Complete this {n}x{n} Survo matrix. The last number of each row is the sum of the other numbers in that "
        f"row, and the last number of each column is the sum of the other numbers in that column. Fill the empty "
        f"cells (0) using each candidate number exactly once (as many times as it is listed); keep every other cell."
        f"\n\nMatrix:\n{_grid_text(p['grid'])}\n\nCandidates: {', '.join(map(str, p['candidates']))}"
    )
    fmt = f"the full matrix as a JSON list of {n} rows, each a list of {n} integers, e.g. <answer>[[...], ...]</answer>"
    return task, fmt


def _verify_survo(p: dict, answer: str) -> Verdict:
    n = int(p["size"])
    given = p["grid"]
    grid = parse_grid(answer, n, n, _int_cell, "an integer")
    filled = []
    for i in range(n):
        for j in range(n):
            if given[i][j]:
                if grid[i][j] != given[i][j]:
                    return _wrong(f"given cell ({i + 1},{j + 1}) was changed")
            else:
                filled.append(grid[i][j])
    have, used = Counter(p["candidates"]), Counter(filled)
    for v, k in used.items():
        if v not in have:
            return _wrong(f"{_short(v)} is not a candidate number")
        if k > have[v]:
            return _wrong(f"you used {v} {_times(k)}, but it is a candidate {_times(have[v])}")
    for i in range(n):
        if sum(grid[i][:n - 1]) != grid[i][n - 1]:
            return _wrong(f"row {i + 1} adds up to {sum(grid[i][:n - 1])}, not {grid[i][n - 1]}")
    for j in range(n):
        col = sum(grid[i][j] for i in range(n - 1))
        if col != grid[n - 1][j]:
            return _wrong(f"column {j + 1} adds up to {col}, not {grid[n - 1][j]}")
    return CORRECT


def _solve_survo(p: dict) -> Optional[list[list[int]]]:
    """A filling of the empty cells with the candidates that makes every sum hold; None when there is none (or the
    search runs out of budget). The last empty cell of a row or column takes the value that line needs."""
    n = int(p["size"])
    grid = [[int(v) for v in row] for row in p["grid"]]
    empty = [(i, j) for i in range(n) for j in range(n) if not grid[i][j]]
    left = Counter(int(v) for v in p["candidates"])
    if len(empty) != sum(left.values()):
        return None
    lines = {("row", i): [(i, j) for j in range(n)] for i in range(n)}
    lines.update({("col", j): [(i, j) for i in range(n)] for j in range(n)})
    open_cells = Counter(key for key, cells in lines.items() for c in cells if c in empty)
    nodes = [_NODE_BUDGET]

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
            raise _Budget
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
        return grid if search(0) else None
    except _Budget:
        return None


# -------------------------------------------------------------------------------------------------------------
# 7. dyck_language

_BRACKETS = "()[]{}<>"
_OPENERS = {"(": ")", "[": "]", "{": "}", "<": ">"}
_CLOSERS = {v: k for k, v in _OPENERS.items()}


def _gen_dyck(rng: random.Random, difficulty: int) -> Task:
    n_types, total, fill = level("dyck_language", difficulty)
    pairs = [_BRACKETS[2 * i:2 * i + 2] for i in range(n_types)]
    steps = total - fill  # the prefix: a walk from depth 0 that never goes below 0 and ends at depth `fill`
    stack: list[str] = []
    prefix = []
    for i in range(steps):
        left = steps - i - 1
        can_open = abs(len(stack) + 1 - fill) <= left
        can_close = bool(stack) and abs(len(stack) - 1 - fill) <= left
        if can_open and (not can_close or rng.random() < 0.5):
            pair = rng.choice(pairs)
            stack.append(pair[1])
            prefix.append(pair[0])
        else:
            prefix.append(stack.pop())
    completion = "".join(reversed(stack))  # only closers: the unique shortest completion
    return Task({"prefix": "".join(prefix), "n_types": n_types}, "".join(prefix) + completion)


def _prompt_dyck(p: dict) -> tuple[str, str]:
    task = (
        "Complete the following sequence of brackets so that every opening bracket is closed by the matching "
        "closing bracket in the right order, adding as few brackets as possible:\n\n" + p["prefix"]
    )
    fmt = "the full completed sequence without spaces (the given part followed by what you add), " \
          "e.g. <answer>([]{})</answer>"
    return task, fmt


def _verify_dyck(p: dict, answer: str) -> Verdict:
    prefix = p["prefix"]
    text = "".join(_strip_fence(answer).split()).strip("\"'`")
    if not text:
        return _malformed("empty answer")
    if len(text) > 4096:
        return _malformed("answer is too long")
    if any(ch not in _BRACKETS for ch in text):
        return _malformed("answer contains characters other than brackets")
    if text.startswith(prefix):
        full = text
    elif len(text) > len(prefix):  # longer than any shortest completion: a full sequence with a changed prefix
        return _wrong("the answer does not start with the given sequence")
    else:
        full = prefix + text  # the added part alone
    stack: list[str] = []
    for i, ch in enumerate(full, 1):
        if ch in _OPENERS:
            stack.append(_OPENERS[ch])
        elif not stack:
            return _wrong(f"closing bracket {i} has nothing to close")
        elif stack.pop() != ch:
            return _wrong(f"closing bracket {i} does not match its opening bracket")
    if stack:
        return _wrong(f"the sequence leaves {len(stack)} bracket{'s' if len(stack) > 1 else ''} open")
    depth = 0
    for ch in prefix:
        depth += 1 if ch in _OPENERS else -1
    extra = len(full) - len(prefix) - depth
    if extra:
        return _wrong(f"the completion is not the shortest: it adds {extra} more brackets than needed")
    return CORRECT


# -------------------------------------------------------------------------------------------------------------
# 8. boolean_expressions

_TRUE_FACTS = (
    "A week has seven days.", "Water is made of hydrogen and oxygen.", "Paris is the capital of France.",
    "A triangle has three sides.", "There are twelve months in a year.", "Ice is frozen water.",
    "The Pacific is an ocean.", "A spider has eight legs.",
)
_FALSE_FACTS = (
    "A square has five corners.", "The Sun rises in the west.", "Rome is the capital of Spain.",
    "A year has ten months.", "Fish breathe through lungs.", "A hexagon has four sides.",
    "Penguins can fly.", "Snow is usually black.",
)
_COMPARE = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
LABELS = "ABCDEFGH"


def _arith(rng: random.Random) -> tuple[int, str]:
    a, b = rng.randint(-9, 12), rng.randint(-9, 12)
    op = rng.choice("+-*")
    value = a + b if op == "+" else a - b if op == "-" else a * b
    text = f"{a} {op} {b}" if b >= 0 else f"{a} {op} ({b})"
    if rng.random() < 0.4:
        c = rng.randint(1, 9)
        op2 = rng.choice("+-")
        value = value + c if op2 == "+" else value - c
        text = f"{text} {op2} {c}"
    return value, text


def _leaf(rng: random.Random) -> tuple[bool, str, bool]:
    """(value, text, is_atomic)."""
    kind = rng.random()
    if kind < 0.25:
        v = rng.random() < 0.5
        return v, str(v), True
    if kind < 0.45:
        v = rng.random() < 0.5
        return v, json.dumps(rng.choice(_TRUE_FACTS if v else _FALSE_FACTS)), True
    if kind < 0.6:
        k = rng.randint(2, 60)
        prop = rng.choice(("even", "odd", "prime"))
        v = k % 2 == 0 if prop == "even" else k % 2 == 1 if prop == "odd" else all(k % d for d in range(2, k))
        return v, f"{k} is {'a prime number' if prop == 'prime' else prop}", False
    (a, ta), (b, tb) = _arith(rng), _arith(rng)
    op = rng.choice(list(_COMPARE))
    return _COMPARE[op](a, b), f"{ta} {op} {tb}", False


def _bool_expr(rng: random.Random, depth: int) -> tuple[bool, str, bool]:
    if depth <= 1 or (depth == 2 and rng.random() < 0.2):
        return _leaf(rng)
    kind = rng.random()
    if kind < 0.3:
        v, t, atomic = _bool_expr(rng, depth - 1)
        return (not v), f"not {t if atomic else f'({t})'}", True
    op = "and" if kind < 0.65 else "or"
    parts = [_bool_expr(rng, depth - 1) for _ in range(3 if depth > 2 and rng.random() < 0.3 else 2)]
    value = all(v for v, _, _ in parts) if op == "and" else any(v for v, _, _ in parts)
    text = f" {op} ".join(t if atomic else f"({t})" for _, t, atomic in parts)
    return value, text, False


def _gen_boolean(rng: random.Random, difficulty: int) -> Task:
    n_options, depth = level("boolean_expressions", difficulty)
    options = [_bool_expr(rng, depth) for _ in range(n_options)]
    while not any(v for v, _, _ in options):  # at least one option is true
        options[rng.randrange(n_options)] = _bool_expr(rng, depth)
    labels = LABELS[:n_options]
    true = [label for label, (v, _, _) in zip(labels, options) if v]
    puzzle = {"labels": list(labels), "options": [t for _, t, _ in options], "true_labels": true}
    return Task(puzzle, ",".join(true))


def _prompt_boolean(p: dict) -> tuple[str, str]:
    lines = "\n".join(f"{label}. {text}" for label, text in zip(p["labels"], p["options"]))
    task = (
        "Evaluate each boolean expression below and find all the options that are true. `not`, `and` and `or` have "
        "their usual meaning; a sentence in quotes is True if the statement is true and False otherwise; "
        "`n is even`, `n is odd` and `n is a prime number` are True exactly when the property holds; * is done "
        "before + and -.\n\n" + lines
    )
    fmt = "the labels of all true options, in alphabetical order, separated by commas, e.g. <answer>A,C</answer>"
    return task, fmt


_BOXED = re.compile(r"\$?\\boxed\{([^{}]*)\}\$?")


def _verify_boolean(p: dict, answer: str) -> Verdict:
    text = _strip_fence(answer)
    boxed = _BOXED.fullmatch(text)  # SynLogic's prompt asks for \boxed{B,D}
    text = (boxed.group(1) if boxed else text).upper()
    if len(text) > 200:
        return _malformed("answer is too long; list only the option labels")
    text = text.strip(" \t\n.[](){}\"'")
    parts = [part.strip(" .()\"'") for part in re.split(r"[\s,;]+", text)]
    parts = [part for part in parts if part]
    if parts == ["NONE"]:
        parts = []
    for part in parts:
        if part not in p["labels"]:
            return _malformed(f"{_short(part, 8)} is not an option label")
    if not parts:
        return _malformed("no option labels in the answer")
    wrong = len(set(parts) ^ set(p["true_labels"]))
    if wrong:
        return _wrong(f"{wrong} label{'s are' if wrong > 1 else ' is'} wrong")
    return CORRECT


# -------------------------------------------------------------------------------------------------------------
# Registry of families

_GENERATORS = {
    "game_of_24": _gen_game_of_24, "cryptarithm": _gen_cryptarithm, "sudoku": _gen_sudoku,
    "futoshiki": _gen_futoshiki, "kukurasu": _gen_kukurasu, "survo": _gen_survo,
    "dyck_language": _gen_dyck, "boolean_expressions": _gen_boolean,
}
_PROMPTS = {
    "game_of_24": _prompt_game_of_24, "cryptarithm": _prompt_cryptarithm, "sudoku": _prompt_sudoku,
    "futoshiki": _prompt_futoshiki, "kukurasu": _prompt_kukurasu, "survo": _prompt_survo,
    "dyck_language": _prompt_dyck, "boolean_expressions": _prompt_boolean,
}
_VERIFIERS = {
    "game_of_24": _verify_game_of_24, "cryptarithm": _verify_cryptarithm, "sudoku": _verify_sudoku,
    "futoshiki": _verify_futoshiki, "kukurasu": _verify_kukurasu, "survo": _verify_survo,
    "dyck_language": _verify_dyck, "boolean_expressions": _verify_boolean,
}
# the short reasoning of an SFT demonstration
THINK = {
    "game_of_24": "I try combinations of the numbers until one reaches the target, using each number once.",
    "cryptarithm": "I work through the columns from the right, tracking carries and keeping digits distinct.",
    "sudoku": "I fill cells where only one number fits its row, column and box, and repeat.",
    "futoshiki": "I combine the row and column rules with the inequalities to narrow each cell down.",
    "kukurasu": "I choose black cells whose positions add up to every row clue and every column clue.",
    "survo": "I place the candidates so that every row and column adds up to its sum.",
    "dyck_language": "I keep a stack of the open brackets and close them from the innermost out.",
    "boolean_expressions": "I evaluate each expression from the innermost parentheses out.",
}


def generate(family: str, seed: int, difficulty: int) -> Task:
    """The puzzle and a reference answer; a pure function of (family, seed, difficulty)."""
    if family not in _GENERATORS:
        raise ValueError(f"unknown task family {family!r}; valid: {', '.join(FAMILIES)}")
    if not (type(difficulty) is int and 1 <= difficulty <= MAX_DIFFICULTY):
        raise ValueError(f"difficulty must be an integer from 1 to {MAX_DIFFICULTY}; got {difficulty!r}")
    return _GENERATORS[family](random.Random(seed), difficulty)


def solve(family: str, puzzle: dict) -> Optional[str]:
    """One answer to the puzzle in our answer format, found by our own search (any solution, not a stored one);
    None when the puzzle has none, when the bounded search gives up, or for families we do not search
    (boolean_expressions, and cryptarithms with *)."""
    if family == "game_of_24":
        return find_expression([int(v) for v in puzzle["numbers"]], int(puzzle["target"]),
                               str(puzzle.get("operators", "+-*/")))
    if family == "cryptarithm":
        words, ops, result = list(puzzle["words"]), list(puzzle["operators"]), puzzle["result"]
        found = crypt_solutions(words, ops, result, limit=1) if set(ops) <= {"+", "-"} else []
        if not found:
            return None
        return _crypt_equation([int("".join(str(found[0][ch]) for ch in w)) for w in words + [result]], ops)
    if family in ("sudoku", "futoshiki"):
        n = int(puzzle["size"])
        flat = [int(v) for row in puzzle["grid"] for v in row]
        if family == "sudoku":
            found = latin_search(flat, n, tuple(puzzle["box"]), limit=1)
        else:
            found = latin_search(flat, n, constraints=_futoshiki_pairs(puzzle["constraints"], n), limit=1)
        return _grid_json(_to_rows(found[0], n)) if found else None
    if family in ("kukurasu", "survo"):
        grid = _solve_kukurasu(puzzle) if family == "kukurasu" else _solve_survo(puzzle)
        return None if grid is None else _grid_json(grid)
    if family == "dyck_language":
        stack: list[str] = []
        for ch in puzzle["prefix"]:
            if ch in _OPENERS:
                stack.append(_OPENERS[ch])
            elif not stack or stack.pop() != ch:
                return None
        return puzzle["prefix"] + "".join(reversed(stack))
    return None


_ANSWER_LINE = ("First think step by step inside <think>...</think>. Then give only the final answer inside "
                "<answer>...</answer>")


def render_prompt(family: str, puzzle: dict) -> str:
    task, fmt = _PROMPTS[family](puzzle)
    return f"{task}\n\n{_ANSWER_LINE}: {fmt}."


def render_hub_prompt(family: str, puzzle: dict, question: str) -> str:
    """A SynLogic row's own question text (the rules its content follows, e.g. boolean options with arithmetic
    truth values, worded comparisons and true division), then our answer line. The question's own answer format
    (a ```python block, [[1 2,2 1]], \\boxed{A,C} ...) is accepted too."""
    _, fmt = _PROMPTS[family](puzzle)
    return f"{question.strip()}\n\n{_ANSWER_LINE}, written as the question asks or as {fmt}."


def verify(family: str, puzzle: dict, answer: str) -> Verdict:
    """Check an answer (the text inside <answer>) against the puzzle's rules; never raises on answer text."""
    if len(answer) > MAX_ANSWER_CHARS:
        return _malformed("answer is too long")
    try:
        return _VERIFIERS[family](puzzle, answer)
    except _Reject as rejected:
        return rejected.verdict


__all__ = [
    "FAMILIES", "LEVELS", "LABELS", "MAX_DIFFICULTY", "THINK", "Task", "Verdict", "crypt_solutions", "find_expression",
    "generate", "latin_search", "level", "load_json", "render_hub_prompt", "render_prompt", "solve", "verify",
]
