"""The eight SynLogic task families of `env=synlogic`, one module each, and the functions that act on a family by
its name.

A family module defines
- `LEVELS`: difficulty d in 1..10 -> its knob tuple `LEVELS[d - 1]`;
- `THINK`: the short reasoning of its SFT demonstrations;
- `generate(rng, difficulty) -> Task`: a puzzle and one correct answer, drawn from `rng` alone (never the global
  RNG or `hash()` of a string), so that `generate(family, seed, difficulty)` below is a pure function;
- `prompt(puzzle) -> (task, answer format)`: from the puzzle alone, so that hub rows mapped onto our puzzles get
  the same answer contract;
- `verify(puzzle, answer) -> Verdict`: checks the puzzle's constraints (any valid answer passes), never evaluates
  model text with Python, and explains a failure in one line that never shows the solution; it may raise Reject
  from deep in a parser;
- `from_hub(metadata, game_data) -> (puzzle, stored answer or None)`: a SynLogic hub row in our puzzle format,
  raising Unmappable when the row does not fit;
- `solve(puzzle) -> answer or None`, if it can: our own bounded search, for hub rows whose stored answer is missing
  or breaks its puzzle.

A new family is one such module, named in `MODULES` below. Everything here is rlexp's own; SynLogic's code is
not used, because its verifiers have bugs (game_of_24's compares its result with itself, several eval or
literal_eval model text, and its reference reward's regexes lack re.DOTALL).
"""

from __future__ import annotations

import random
from types import ModuleType
from typing import Optional

from rlexp.envs.synlogic import (
    boolean_expressions,
    cryptarithm,
    dyck_language,
    futoshiki,
    game_of_24,
    kukurasu,
    sudoku,
    survo,
)
from rlexp.envs.synlogic.common import MAX_ANSWER_CHARS, Reject, Task, Verdict, malformed

# family name (its module's name) -> module, in the order rows take the families: a new order changes every
# seeded dataset
MODULES: dict[str, ModuleType] = {
    module.__name__.rsplit(".", 1)[1]: module
    for module in (game_of_24, cryptarithm, sudoku, futoshiki, kukurasu, survo, dyck_language, boolean_expressions)
}
FAMILIES = tuple(MODULES)
MAX_DIFFICULTY = 10
LEVELS: dict[str, list[tuple]] = {name: module.LEVELS for name, module in MODULES.items()}
THINK: dict[str, str] = {name: module.THINK for name, module in MODULES.items()}


def level(family: str, difficulty: int) -> tuple:
    return LEVELS[family][difficulty - 1]


def generate(family: str, seed: int, difficulty: int) -> Task:
    """The puzzle and a reference answer; a pure function of (family, seed, difficulty)."""
    if family not in MODULES:
        raise ValueError(f"unknown task family {family!r}; valid: {', '.join(FAMILIES)}")
    if not (type(difficulty) is int and 1 <= difficulty <= MAX_DIFFICULTY):
        raise ValueError(f"difficulty must be an integer from 1 to {MAX_DIFFICULTY}; got {difficulty!r}")
    return MODULES[family].generate(random.Random(seed), difficulty)


def solve(family: str, puzzle: dict) -> Optional[str]:
    """One answer to the puzzle in our answer format, found by our own search (any solution, not a stored one);
    None when the puzzle has none, when the bounded search gives up, or for what we do not search
    (boolean_expressions, and cryptarithms with *)."""
    solver = getattr(MODULES.get(family), "solve", None)
    return None if solver is None else solver(puzzle)


_ANSWER_LINE = "First think step by step inside <think>...</think>. Then give only the final answer inside <answer>...</answer>"


def render_prompt(family: str, puzzle: dict) -> str:
    task, fmt = MODULES[family].prompt(puzzle)
    return f"{task}\n\n{_ANSWER_LINE}: {fmt}."


def render_hub_prompt(family: str, puzzle: dict, question: str) -> str:
    """A SynLogic row's own question text (the rules its content follows, e.g. boolean options with arithmetic
    truth values, worded comparisons and true division), then our answer line. The question's own answer format
    (a ```python block, [[1 2,2 1]], \\boxed{A,C} ...) is accepted too."""
    _, fmt = MODULES[family].prompt(puzzle)
    return f"{question.strip()}\n\n{_ANSWER_LINE}, written as the question asks or as {fmt}."


def verify(family: str, puzzle: dict, answer: str) -> Verdict:
    """Check an answer (the text inside <answer>) against the puzzle's rules; never raises on answer text."""
    if len(answer) > MAX_ANSWER_CHARS:
        return malformed("answer is too long")
    try:
        return MODULES[family].verify(puzzle, answer)
    except Reject as rejected:
        return rejected.verdict
