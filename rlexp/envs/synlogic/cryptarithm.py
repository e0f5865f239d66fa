"""cryptarithm: letters stand for distinct digits; find the digits that make the equation hold.

An answer is the equation with digits (or a letter-to-digit map as JSON or `A=1, B=2` pairs). Our solver and the
uniqueness check of the generator handle + and - only; SynLogic's rows with * are verified but not solved.
"""

from __future__ import annotations

import random
import re
import string
from typing import Optional

from rlexp.envs.synlogic.common import (
    CORRECT,
    Reject,
    Task,
    Verdict,
    as_int,
    load_json,
    malformed,
    require,
    short,
    strip_fence,
    wrong,
)

# (distinct letters, operators, shortest operand, longest operand)
LEVELS = [
    (3, 1, 2, 3),
    (4, 1, 2, 3),
    (4, 1, 3, 4),
    (5, 1, 3, 4),
    (5, 1, 3, 5),
    (6, 1, 3, 5),
    (5, 2, 3, 4),
    (6, 2, 3, 5),
    (7, 2, 3, 5),
    (8, 2, 4, 6),
]
THINK = "I work through the columns from the right, tracking carries and keeping digits distinct."


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


def generate(rng: random.Random, difficulty: int) -> Task:
    num_letters, num_ops, lo, hi = LEVELS[difficulty - 1]
    while True:
        digits = rng.sample(range(10), num_letters)
        nonzero = [d for d in digits if d]
        for _ in range(200):
            ops = [rng.choice("+-") for _ in range(num_ops)]
            operands = []
            for _ in range(num_ops + 1):
                length = rng.randint(lo, hi)
                operands.append(
                    int("".join(str(d) for d in [rng.choice(nonzero)] + [rng.choice(digits) for _ in range(length - 1)]))
                )
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


def prompt(p: dict) -> tuple[str, str]:
    task = (
        f"Solve this cryptarithm:\n\n    {_crypt_text(p)}\n\n"
        "Each letter stands for one digit 0-9; different letters stand for different digits, and a number with "
        "more than one digit does not start with 0. Replace the letters so that the equation holds"
        + (" (* is done before + and -)." if "*" in p["operators"] else ".")
    )
    fmt = "the equation with digits in place of the letters, written like the puzzle, e.g. <answer>123 + 456 = 579</answer>"
    return task, fmt


def _crypt_mapping(text: str, p: dict, letters: list[str]) -> dict:
    """The answer as a letter -> digit map, from a JSON object, `A=1, B=2` pairs, or a digit equation."""
    words = list(p["words"]) + [p["result"]]
    if text.startswith("{"):
        obj = load_json(text)
        if not isinstance(obj, dict):
            raise Reject(malformed("answer is not a letter-to-digit map"))
        mapping = {}
        for key, value in obj.items():
            if isinstance(value, str) and len(value) == 1 and value.isdigit():
                value = int(value)
            if type(value) is not int or not 0 <= value <= 9:
                raise Reject(malformed(f"the value of {short(key)} is not a digit 0-9"))
            mapping[str(key).strip().upper()] = value
        return mapping
    if re.match(r"[A-Za-z]\s*[=:]", text):
        pairs = re.findall(r"([A-Za-z])\s*[=:]\s*([0-9]+)", text)
        rest = re.sub(r"([A-Za-z])\s*[=:]\s*([0-9]+)", "", text)
        if not pairs or rest.strip(" ,;\n\t"):
            raise Reject(malformed("answer is not a list of letter=digit pairs"))
        mapping = {}
        for letter, digit in pairs:
            if len(digit) != 1:
                raise Reject(malformed(f"the value of {letter.upper()} is not a digit 0-9"))
            mapping[letter.upper()] = int(digit)
        return mapping
    compact = "".join(text.split()).replace("×", "*").replace("−", "-")
    tokens = re.findall(r"[0-9]+|[-+*=]", compact)
    if "".join(tokens) != compact:
        raise Reject(malformed("answer is not a digit equation like 123 + 456 = 579"))
    expected = []
    for i, w in enumerate(p["words"]):
        if i:
            expected.append(p["operators"][i - 1])
        expected.append(w)
    expected += ["=", p["result"]]
    if len(tokens) != len(expected):
        count = sum(t[0].isdigit() for t in tokens)
        raise Reject(
            malformed(
                f"the equation has {count} numbers and {len(tokens) - count} signs, "
                f"expected {len(words)} and {len(expected) - len(words)}"
            )
        )
    mapping: dict[str, int] = {}
    k = 0
    for tok, want in zip(tokens, expected):
        if not want[0].isalpha():
            if tok != want:
                raise Reject(malformed(f"the equation should have {want} where it has {tok}"))
            continue
        k += 1
        if not tok[0].isdigit():
            raise Reject(malformed("answer is not a digit equation like 123 + 456 = 579"))
        if len(tok) != len(want):
            raise Reject(wrong(f"number {k} has {len(tok)} digits, but {want} has {len(want)} letters"))
        for letter, ch in zip(want, tok):
            if mapping.setdefault(letter, int(ch)) != int(ch):
                raise Reject(wrong(f"letter {letter} stands for both {mapping[letter]} and {ch}"))
    return mapping


# SynLogic's cryptarithm prompt asks for "The answer is $YOUR_ANSWER." (in Chinese "答案是 $YOUR_ANSWER。")
_ANSWER_MARKER = re.compile(r"^\s*(?:the\s+(?:final\s+)?answer\s+is|答案是)\s*[:：]?", re.IGNORECASE)


def verify(p: dict, answer: str) -> Verdict:
    words = list(p["words"]) + [p["result"]]
    ops = list(p["operators"])
    letters = list(dict.fromkeys("".join(words)))
    text = _ANSWER_MARKER.sub("", strip_fence(answer))
    text = text.strip().rstrip(".。").strip().strip("$").strip()
    if not text:
        return malformed("empty answer")
    if len(text) > 4096:
        return malformed("answer is too long")
    mapping = _crypt_mapping(text, p, letters)
    for letter in mapping:
        if letter not in letters:
            return malformed(f"{short(letter)} is not a letter of the puzzle")
    for letter in letters:
        if letter not in mapping:
            return wrong(f"letter {letter} has no digit")
    owner: dict[int, str] = {}
    for letter in letters:
        d = mapping[letter]
        if d in owner:
            return wrong(f"letters {owner[d]} and {letter} both stand for {d}")
        owner[d] = letter
    for w in words:
        if len(w) > 1 and mapping[w[0]] == 0:
            return wrong(f"{w} would start with 0")
    values = [int("".join(str(mapping[ch]) for ch in w)) for w in words]
    left = _evaluate(values[:-1], ops)
    if left != values[-1]:
        return wrong(f"the equation does not hold: the left side is {left}, the right side is {values[-1]}")
    return CORRECT


def solve(p: dict) -> Optional[str]:
    words, ops, result = list(p["words"]), list(p["operators"]), p["result"]
    found = crypt_solutions(words, ops, result, limit=1) if set(ops) <= {"+", "-"} else []
    if not found:
        return None
    return _crypt_equation([int("".join(str(found[0][ch]) for ch in w)) for w in words + [result]], ops)


def from_hub(md: dict, data: dict) -> tuple[dict, Optional[str]]:
    words = [str(w) for w in md["letter_words"]]
    ops = [str(op) for op in md["operators"]]
    require(len(words) >= 3 and len(ops) == len(words) - 2, "words and operators do not fit")
    require(all(re.fullmatch(r"[A-Z]{1,12}", w) for w in words), "words are not capital letters")
    require(all(op in ("+", "-", "*") for op in ops), "unknown operator")
    puzzle = {"words": words[:-1], "operators": ops, "result": words[-1]}
    numbers = md.get("numbers")
    if isinstance(numbers, list) and len(numbers) == len(words):
        values = [str(as_int(v)) for v in numbers]
        reference = values[0] + "".join(f" {op} {v}" for op, v in zip(ops, values[1:-1])) + f" = {values[-1]}"
    else:
        reference = str(data.get("answer", ""))
    return puzzle, reference
