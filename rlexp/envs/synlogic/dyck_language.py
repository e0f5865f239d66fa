"""dyck_language: complete a bracket sequence with as few brackets as possible; an answer is the full sequence
(or the added part alone)."""

from __future__ import annotations

import random
from typing import Optional

from rlexp.envs.synlogic.common import CORRECT, Task, Verdict, malformed, require, strip_fence, wrong

# (bracket types, total length, characters to fill)
LEVELS = [
    (2, 10, 1),
    (2, 10, 2),
    (3, 12, 2),
    (3, 14, 3),
    (3, 16, 3),
    (4, 16, 4),
    (4, 18, 4),
    (4, 20, 5),
    (4, 24, 6),
    (4, 30, 8),
]
THINK = "I keep a stack of the open brackets and close them from the innermost out."

_BRACKETS = "()[]{}<>"
_OPENERS = {"(": ")", "[": "]", "{": "}", "<": ">"}


def generate(rng: random.Random, difficulty: int) -> Task:
    n_types, total, fill = LEVELS[difficulty - 1]
    pairs = [_BRACKETS[2 * i : 2 * i + 2] for i in range(n_types)]
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


def prompt(p: dict) -> tuple[str, str]:
    task = (
        "Complete the following sequence of brackets so that every opening bracket is closed by the matching "
        "closing bracket in the right order, adding as few brackets as possible:\n\n" + p["prefix"]
    )
    fmt = "the full completed sequence without spaces (the given part followed by what you add), e.g. <answer>([]{})</answer>"
    return task, fmt


def verify(p: dict, answer: str) -> Verdict:
    prefix = p["prefix"]
    text = "".join(strip_fence(answer).split()).strip("\"'`")
    if not text:
        return malformed("empty answer")
    if len(text) > 4096:
        return malformed("answer is too long")
    if any(ch not in _BRACKETS for ch in text):
        return malformed("answer contains characters other than brackets")
    if text.startswith(prefix):
        full = text
    elif len(text) > len(prefix):  # longer than any shortest completion: a full sequence with a changed prefix
        return wrong("the answer does not start with the given sequence")
    else:
        full = prefix + text  # the added part alone
    stack: list[str] = []
    for i, ch in enumerate(full, 1):
        if ch in _OPENERS:
            stack.append(_OPENERS[ch])
        elif not stack:
            return wrong(f"closing bracket {i} has nothing to close")
        elif stack.pop() != ch:
            return wrong(f"closing bracket {i} does not match its opening bracket")
    if stack:
        return wrong(f"the sequence leaves {len(stack)} bracket{'s' if len(stack) > 1 else ''} open")
    depth = 0
    for ch in prefix:
        depth += 1 if ch in _OPENERS else -1
    extra = len(full) - len(prefix) - depth
    if extra:
        return wrong(f"the completion is not the shortest: it adds {extra} more brackets than needed")
    return CORRECT


def solve(p: dict) -> Optional[str]:
    stack: list[str] = []
    for ch in p["prefix"]:
        if ch in _OPENERS:
            stack.append(_OPENERS[ch])
        elif not stack or stack.pop() != ch:
            return None
    return p["prefix"] + "".join(reversed(stack))


def from_hub(md: dict, data: dict) -> tuple[dict, Optional[str]]:
    prefix = "".join(str(md["question_sequence"]).split())
    full = "".join(str(md.get("full_sequence") or data.get("answer") or "").split())
    require(bool(prefix) and all(ch in "()[]{}<>" for ch in prefix), "prefix is not brackets")
    n_types = max(i + 1 for i, pair in enumerate(("()", "[]", "{}", "<>")) if set(pair) & set(prefix + full))
    return {"prefix": prefix, "n_types": n_types}, full or None
