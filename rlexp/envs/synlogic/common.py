"""What the SynLogic families share: the Task and Verdict types, readers for answer text and for the metadata of
SynLogic's hub rows, and the node budget of the bounded searches."""

from __future__ import annotations

import json
import re
from typing import Any, Callable, NamedTuple, Optional

from rlexp.envs.text import printable

MAX_ANSWER_CHARS = 64 * 1024  # longer answers are refused before any parsing
MAX_JSON_DEPTH = 8  # bracket nesting allowed before json.loads
NODE_BUDGET = 50_000  # search nodes a solver may visit before it gives up


class Verdict(NamedTuple):
    ok: bool
    category: str  # correct | wrong (parsed, breaks a rule) | malformed (cannot be read as an answer)
    reason: str  # "" when correct; one line that never contains the solution


class Task(NamedTuple):
    puzzle: dict  # JSON-serialisable; everything the prompt and the verifier need
    reference: str  # one correct answer, in the format the prompt asks for


CORRECT = Verdict(True, "correct", "")


def wrong(reason: str) -> Verdict:
    return Verdict(False, "wrong", reason)


def malformed(reason: str) -> Verdict:
    return Verdict(False, "malformed", reason)


class Reject(Exception):
    """Raised inside a verifier to return a Verdict from deep in a parser."""

    def __init__(self, verdict: Verdict):
        super().__init__(verdict.reason)
        self.verdict = verdict


def short(text: Any, limit: int = 12) -> str:
    """A piece of the model's own text, safe to echo in feedback."""
    text = str(text)
    return printable(text, limit) + ("..." if len(text) > limit else "")


def times(k: int) -> str:
    return {1: "once", 2: "twice"}.get(k, f"{k} times")


class OutOfBudget(Exception):
    """A bounded search ran out of nodes: whether there is a solution is unknown."""


# -------------------------------------------------------------------------------------------------------------
# Answer text


def strip_fence(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else text[3:]  # drop the fence and its language tag
        text = text.rstrip()
        if text.endswith("```"):
            text = text[:-3]
    return text.strip()


def nesting(text: str) -> int:
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
    """json.loads with guards: a size cap, a nesting cap, no NaN/Infinity; Reject when unreadable."""
    if len(text) > MAX_ANSWER_CHARS:
        raise Reject(malformed("answer is too long"))
    if nesting(text) > MAX_JSON_DEPTH:
        raise Reject(malformed("answer is nested too deeply"))
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError, MemoryError):
        raise Reject(malformed("answer is not valid JSON")) from None


_INT_TOKEN = re.compile(r"[+-]?[0-9]{1,18}")
# SynLogic's futoshiki format `[[1 2 3,2 3 1,3 1 2]]`: rows split by commas, cells by spaces
_SPACED_ROW = r"\s*-?[0-9]{1,18}(?:[ \t]+-?[0-9]{1,18})*\s*"
_SPACED_GRID = re.compile(rf"\[\[{_SPACED_ROW}(?:,{_SPACED_ROW})*\]\]")


def _load_grid(text: str) -> Any:
    """The answer as a JSON value; also reads Python tuples `((1, 2), (3, 4))`, SynLogic's `[[1 2,2 1]]` and plain
    rows of numbers."""
    text = strip_fence(text).rstrip(".")
    if not text:
        raise Reject(malformed("empty answer"))
    if text[0] in "[(":
        try:
            return load_json(text)
        except Reject as first:
            if _SPACED_GRID.fullmatch(text):
                return [[int(c) for c in row.split()] for row in text[2:-2].split(",")]
            if "(" not in text:
                raise
            try:
                return load_json(text.replace("(", "[").replace(")", "]"))
            except Reject:
                raise first from None
    if len(text) > MAX_ANSWER_CHARS:
        raise Reject(malformed("answer is too long"))
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
        raise Reject(malformed("answer is not a list of rows"))
    if len(value) != n_rows:
        raise Reject(malformed(f"answer grid has {len(value)} rows, expected {n_rows}"))
    grid = []
    for i, row in enumerate(value, 1):
        if not isinstance(row, list):
            raise Reject(malformed(f"row {i} is not a list"))
        if len(row) != n_cols:
            raise Reject(malformed(f"row {i} has {len(row)} cells, expected {n_cols}"))
        out = []
        for j, v in enumerate(row, 1):
            c = cell(v)
            if c is None:
                raise Reject(malformed(f"cell ({i},{j}) is not {what}"))
            out.append(c)
        grid.append(out)
    return grid


def int_cell(v: Any) -> Optional[int]:
    return v if type(v) is int else None  # bool, float, str, list ... are refused


def grid_json(grid: list[list[int]]) -> str:
    return "[" + ", ".join("[" + ", ".join(str(v) for v in row) + "]" for row in grid) + "]"


def grid_text(grid: list[list[int]]) -> str:
    """A grid for prompts: one JSON row per line."""
    return "[\n" + ",\n".join("  [" + ", ".join(str(v) for v in row) + "]" for row in grid) + "\n]"


# -------------------------------------------------------------------------------------------------------------
# Hub rows' metadata: each family's from_hub reads SynLogic's fields with these


class Unmappable(Exception):
    """A hub row that does not fit our puzzle format: it is skipped, never guessed."""


def require(cond: bool, why: str) -> None:
    if not cond:
        raise Unmappable(why)


def as_obj(value: Any) -> Any:
    """A dict/list field that may arrive as JSON text (or a Python repr of tuples)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return json.loads(text)
        except ValueError:
            return json.loads(text.replace("(", "[").replace(")", "]").replace("'", '"'))
    return value


def as_int(v: Any) -> int:
    """A number of the metadata: an int, an integral float or a string of digits."""
    if isinstance(v, bool):
        raise Unmappable("boolean where a number belongs")
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and re.fullmatch(r"-?[0-9]{1,9}", v.strip()):
        return int(v)
    require(isinstance(v, int), "not an integer")
    return v


def as_grid(grid: Any, n: Optional[int] = None, blank=("X", "x", "_", ".", "", None)) -> list[list[int]]:
    """A square grid of numbers (n x n when n is given), its blank cells as 0."""
    grid = as_obj(grid)
    require(isinstance(grid, list) and grid and all(isinstance(r, list) for r in grid), "grid is not a list of rows")
    n = n or len(grid)
    require(len(grid) == n and all(len(r) == n for r in grid), "grid is not square")
    return [[0 if v in blank else as_int(v) for v in row] for row in grid]
