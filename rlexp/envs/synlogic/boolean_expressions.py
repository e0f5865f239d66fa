"""boolean_expressions: find every true option among boolean expressions; an answer is their labels.

No solver: a row's truth comes with it (our generator knows it; a hub row's is SynLogic's answer, its options being
Python expressions we never evaluate).
"""

from __future__ import annotations

import json
import random
import re
from typing import Optional

from rlexp.envs.synlogic.common import CORRECT, Task, Verdict, malformed, require, short, strip_fence, wrong

# (options, expression depth)
LEVELS = [(3, 2), (4, 2), (5, 2), (3, 3), (4, 3), (5, 3), (6, 3), (4, 4), (5, 4), (6, 4)]
THINK = "I evaluate each expression from the innermost parentheses out."

_TRUE_FACTS = (
    "A week has seven days.",
    "Water is made of hydrogen and oxygen.",
    "Paris is the capital of France.",
    "A triangle has three sides.",
    "There are twelve months in a year.",
    "Ice is frozen water.",
    "The Pacific is an ocean.",
    "A spider has eight legs.",
)
_FALSE_FACTS = (
    "A square has five corners.",
    "The Sun rises in the west.",
    "Rome is the capital of Spain.",
    "A year has ten months.",
    "Fish breathe through lungs.",
    "A hexagon has four sides.",
    "Penguins can fly.",
    "Snow is usually black.",
)
_COMPARE = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
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


def generate(rng: random.Random, difficulty: int) -> Task:
    n_options, depth = LEVELS[difficulty - 1]
    options = [_bool_expr(rng, depth) for _ in range(n_options)]
    while not any(v for v, _, _ in options):  # at least one option is true
        options[rng.randrange(n_options)] = _bool_expr(rng, depth)
    labels = LABELS[:n_options]
    true = [label for label, (v, _, _) in zip(labels, options) if v]
    puzzle = {"labels": list(labels), "options": [t for _, t, _ in options], "true_labels": true}
    return Task(puzzle, ",".join(true))


def prompt(p: dict) -> tuple[str, str]:
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


def verify(p: dict, answer: str) -> Verdict:
    text = strip_fence(answer)
    boxed = _BOXED.fullmatch(text)  # SynLogic's prompt asks for \boxed{B,D}
    text = (boxed.group(1) if boxed else text).upper()
    if len(text) > 200:
        return malformed("answer is too long; list only the option labels")
    text = text.strip(" \t\n.[](){}\"'")
    parts = [part.strip(" .()\"'") for part in re.split(r"[\s,;]+", text)]
    parts = [part for part in parts if part]
    if parts == ["NONE"]:
        parts = []
    for part in parts:
        if part not in p["labels"]:
            return malformed(f"{short(part, 8)} is not an option label")
    if not parts:
        return malformed("no option labels in the answer")
    n_wrong = len(set(parts) ^ set(p["true_labels"]))
    if n_wrong:
        return wrong(f"{n_wrong} label{'s are' if n_wrong > 1 else ' is'} wrong")
    return CORRECT


_OPTION = re.compile(r"^\s*([A-H])\.\s*(.+?)\s*$", re.MULTILINE)


def from_hub(md: dict, data: dict) -> tuple[dict, Optional[str]]:
    options = dict(_OPTION.findall(str(data.get("question", ""))))
    labels = [label for label in LABELS if label in options]
    require(2 <= len(labels) <= 8 and labels == list(LABELS[: len(labels)]), "options not found in the question")
    answer = "".join(str(data.get("answer", "")).split()).upper()
    require(re.fullmatch(r"[A-H](,[A-H])*", answer) is not None, "answer is not a label list")
    true = sorted(set(answer.split(",")))
    require(set(true) <= set(labels), "answer names a missing option")
    # the truth of each option is SynLogic's (its question text is what the model sees): Python's eval of its
    # options, where numbers are truth values, comparisons may be worded (also in Chinese) and / is true division
    puzzle = {"labels": labels, "options": [options[label] for label in labels], "true_labels": true}
    return puzzle, ",".join(true)
