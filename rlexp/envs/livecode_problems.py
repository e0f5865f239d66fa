"""Offline programming problems in the row format of LiveCodeBench (`livecodebench/code_generation_lite`).

Each family is a problem statement, a trusted reference solution (Python source, also used as the SFT
demonstration), its sample and edge-case inputs, and a seeded generator of random inputs. All but the generator
are data, one YAML file per family in rlexp/envs/data/livecode/ (`<style>-<nn>-<name>.yaml`; the number orders the
families); the generators are the functions below, found by question_id in RANDOM_CASES. A new family is one file
plus one entry there. `lcb_rows(seed)` turns every family into one LiveCodeBench row:
the expected outputs come from running the reference in this process, which is safe only because the reference
is our own code; model code is never run here.

Two styles, as in LiveCodeBench:
  stdin       AtCoder/Codeforces style: a full program reads standard input and prints; a test is the text fed
              to stdin and the exact text printed.
  functional  LeetCode style: `class Solution` with one method; a test input is the arguments as JSON values,
              one per line, and the output is the JSON of the return value.
"""

from __future__ import annotations

import ast
import bisect
import collections
import contextlib
import datetime
import functools
import heapq
import io
import itertools
import json
import math
import random
import string
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import yaml

PLATFORM = "rlexp"
CONTEST_ID = "rlexp-procedural"
# the contest dates of the families are spread evenly over this window, so date filters have something to select
FIRST_DATE = datetime.date(2023, 5, 1)
LAST_DATE = datetime.date(2025, 4, 30)


@dataclass(frozen=True)
class Problem:
    """One problem family: its statement, its trusted reference and how to draw test inputs."""

    question_id: str
    question_title: str
    difficulty: str  # "easy", "medium" or "hard"
    description: str
    constraints: tuple[str, ...]
    reference: str
    # stdin problems: input texts; functional problems: tuples of arguments
    samples: tuple  # the public tests, shown in the statement
    edge_cases: tuple  # always among the private tests
    random_case: Callable[[random.Random], Any]
    func_name: Optional[str] = None  # None for stdin problems
    input_format: str = ""  # stdin problems only
    output_format: str = ""  # stdin problems only

    @property
    def testtype(self) -> str:
        return "functional" if self.func_name else "stdin"

    @property
    def starter_code(self) -> str:
        """LeetCode's starter code: the class line and the method's signature, taken from the reference."""
        if not self.func_name:
            return ""
        signature = next(line for line in self.reference.splitlines() if line.startswith(f"    def {self.func_name}("))
        return f"class Solution:\n{signature}\n        "

    @property
    def parameters(self) -> list[str]:
        """The method's parameter names after `self`, in order."""
        tree = ast.parse(self.starter_code + "pass")
        method = tree.body[0].body[0]
        return [arg.arg for arg in method.args.args[1:]]

    def encode_input(self, case) -> str:
        if self.func_name:
            return "\n".join(json.dumps(arg) for arg in case)
        return case


# ---------------------------------------------------------------------------------------------------------------
# Running a reference in this process


# the names LiveCodeBench's preamble makes available to a solution
_PREAMBLE = {
    "List": List,
    "Optional": Optional,
    "Dict": Dict,
    "Tuple": Tuple,
    "collections": collections,
    "heapq": heapq,
    "math": math,
    "bisect": bisect,
    "itertools": itertools,
    "functools": functools,
}


@functools.lru_cache(maxsize=256)
def _compile(source: str):
    return compile(source, "<reference>", "exec")


def run_reference(problem_or_row: Problem | dict, input_text: str) -> str:
    """The output the trusted reference gives for one test input, in LiveCodeBench's encoding.

    Takes a `Problem` or a row with a `reference` column. Never call this with model code: it runs in-process.
    """
    if isinstance(problem_or_row, Problem):
        source, func_name = problem_or_row.reference, problem_or_row.func_name
    else:
        source = problem_or_row["reference"]
        func_name = json.loads(problem_or_row["metadata"] or "{}").get("func_name")
    namespace = {"__name__": "__main__", **_PREAMBLE}
    if func_name:
        exec(_compile(source), namespace)
        args = [json.loads(line) for line in input_text.split("\n")]
        return json.dumps(getattr(namespace["Solution"](), func_name)(*args))
    printed = io.StringIO()
    real_stdin = sys.stdin
    sys.stdin = io.StringIO(input_text)
    try:
        with contextlib.redirect_stdout(printed):
            exec(_compile(source), namespace)
    finally:
        sys.stdin = real_stdin
    return printed.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# Helpers for writing inputs


def _text(*lines) -> str:
    """Stdin text with one line per argument; a list or tuple is written space-separated."""
    written = (" ".join(map(str, line)) if isinstance(line, (list, tuple)) else str(line) for line in lines)
    return "".join(f"{line}\n" for line in written)


def _ints(rng: random.Random, n: int, low: int, high: int) -> list[int]:
    return [rng.randint(low, high) for _ in range(n)]


def _word(rng: random.Random, length: int, alphabet: str = string.ascii_lowercase) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def _runs(rng: random.Random, count: int, alphabet: str, longest: int) -> str:
    """A string made of `count` runs of repeated letters, so run-length problems have real runs."""
    return "".join(rng.choice(alphabet) * rng.randint(1, longest) for _ in range(count))


def _grid(rng: random.Random, height: int, width: int, density: float) -> list[str]:
    return ["".join("#" if rng.random() < density else "." for _ in range(width)) for _ in range(height)]


def _grid_text(rows: list[str]) -> str:
    return _text(f"{len(rows)} {len(rows[0])}", *rows)


def _balanced(rng: random.Random, pairs: int, kinds: str = "([{") -> str:
    """A random well-nested bracket string with `pairs` pairs."""
    closing = {"(": ")", "[": "]", "{": "}"}
    out, stack, opened = [], [], 0
    while opened < pairs or stack:
        if opened < pairs and (not stack or rng.random() < 0.5):
            stack.append(rng.choice(kinds))
            out.append(stack[-1])
            opened += 1
        else:
            out.append(closing[stack.pop()])
    return "".join(out)


def _to_roman(number: int) -> str:
    symbols = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
               (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]  # fmt: skip
    out = []
    for value, symbol in symbols:
        count, number = divmod(number, value)
        out.append(symbol * count)
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------------
# Random inputs, one function per family that needs more than a line


def _sum_array_case(rng):
    n = rng.randint(1, 100)
    bound = rng.choice([10, 1000, 10**9])
    return _text(n, _ints(rng, n, -bound, bound))


def _average_case(rng):
    n = rng.randint(1, 100)
    low = rng.choice([0, 50, 90])
    return _text(n, _ints(rng, n, low, 100))


def _reverse_words_case(rng):
    alphabet = rng.choice(["ab", "abcde", string.ascii_lowercase])
    words = [_word(rng, rng.randint(1, 8), alphabet) for _ in range(rng.randint(1, 12))]
    return _text(" ".join(words))


def _gcd_lcm_case(rng):
    n = rng.randint(1, 10)
    if rng.random() < 0.5:
        factor = rng.randint(1, 100)
        return _text(n, [factor * rng.randint(1, 1000 // factor) for _ in range(n)])
    return _text(n, _ints(rng, n, 1, 1000))


def _transpose_case(rng):
    height, width = rng.randint(1, 10), rng.randint(1, 10)
    return _text(f"{height} {width}", *(_ints(rng, width, -1000, 1000) for _ in range(height)))


def _fizzbuzz_case(rng):
    left = rng.choice([rng.randint(1, 100), rng.randint(1, 10**9 - 99)])
    return _text(f"{left} {left + rng.randint(0, 99)}")


def _brackets_case(rng):
    if rng.random() < 0.6:
        s = list(_balanced(rng, rng.randint(1, 20), rng.choice(["(", "([", "([{"])))
        if rng.random() < 0.5:  # break it in one place
            s[rng.randrange(len(s))] = rng.choice("()[]{}")
        return _text("".join(s))
    return _text(_word(rng, rng.randint(1, 30), "()[]{}"))


def _grid_paths_case(rng):
    rows = _grid(rng, rng.randint(1, 15), rng.randint(1, 15), rng.choice([0.0, 0.1, 0.2, 0.3]))
    rows[0] = "." + rows[0][1:]
    rows[-1] = rows[-1][:-1] + "."
    return _grid_text(rows)


def _fibonacci_case(rng):
    n = rng.choice([rng.randint(0, 90), rng.randint(0, 10**6), rng.randint(0, 10**18)])
    return _text(f"{n} {rng.choice([rng.randint(1, 100), rng.randint(1, 10**9)])}")


def _range_sum_case(rng):
    n, q = rng.randint(1, 50), rng.randint(1, 30)
    values = _ints(rng, n, -(10**6), 10**6)
    queries = [sorted((rng.randint(1, n), rng.randint(1, n))) for _ in range(q)]
    return _text(f"{n} {q}", values, *queries)


def _merge_intervals_case(rng):
    n = rng.randint(1, 30)
    top = rng.choice([50, 1000, 10**9])
    intervals = []
    for _ in range(n):
        left = rng.randint(0, top)
        intervals.append((left, min(top, left + rng.randint(0, max(1, top // 10)))))
    return _text(n, *intervals)


def _islands_case(rng):
    return _grid_text(_grid(rng, rng.randint(1, 20), rng.randint(1, 20), rng.choice([0.2, 0.4, 0.5, 0.7])))


def _frequency_case(rng):
    n = rng.randint(1, 100)
    return _text(n, _ints(rng, n, 1, rng.choice([5, 20, 100])))


def _edit_distance_case(rng):
    alphabet = rng.choice(["ab", "abc", "acgt", string.ascii_lowercase])
    s = _word(rng, rng.randint(1, 60), alphabet)
    if rng.random() < 0.5:  # a few edits away from s, so the answer is small
        t = list(s)
        for _ in range(rng.randint(1, 5)):
            t.insert(rng.randint(0, len(t)), rng.choice(alphabet))
            del t[rng.randrange(len(t))]
        t = "".join(t) or "a"
    else:
        t = _word(rng, rng.randint(1, 60), alphabet)
    return _text(s, t)


def _shortest_paths_case(rng):
    n = rng.randint(1, 30)
    m = 0 if n == 1 else rng.randint(0, 60)
    top = rng.choice([10, 10**9])
    edges = [(*rng.sample(range(1, n + 1), 2), rng.randint(1, top)) for _ in range(m)]
    return _text(f"{n} {m}", *edges)


def _dice_case(rng):
    n, faces = rng.randint(1, 20), rng.randint(2, 12)
    if rng.random() < 0.1:  # any total, often one that cannot be rolled
        return _text(f"{n} {faces} {rng.randint(1, 1000)}")
    # totals near the mean, where the probability is not too small to print
    mean, spread = n * (faces + 1) / 2, math.sqrt(n * (faces * faces - 1) / 12)
    total = min(max(round(rng.gauss(mean, spread)), n), n * faces)
    return _text(f"{n} {faces} {total}")


def _two_sum_case(rng):
    """An array with exactly one pair of indices summing to the target, as the statement promises."""
    while True:
        nums = _ints(rng, rng.randint(2, 30), -(10**4), 10**4)
        i, j = rng.sample(range(len(nums)), 2)
        target = nums[i] + nums[j]
        pairs = sum(nums[a] + nums[b] == target for a, b in itertools.combinations(range(len(nums)), 2))
        if pairs == 1:
            return nums, target


def _palindrome_case(rng):
    if rng.random() < 0.5:
        half = _word(rng, rng.randint(0, 15), "abcxyz019")
        core = half + _word(rng, rng.randint(0, 1), "abc") + half[::-1]
        # case changes and punctuation, which the check ignores
        chars = []
        for ch in core:
            chars.append(ch.upper() if rng.random() < 0.3 else ch)
            if rng.random() < 0.2:
                chars.append(rng.choice(" ,.:!?'"))
        s = "".join(chars)
    else:
        s = _word(rng, rng.randint(1, 30), string.ascii_letters + string.digits + " ,.:!?'")
    return (s or " ",)


def _search_insert_case(rng):
    nums = sorted(rng.sample(range(-1000, 1001), rng.randint(1, 50)))
    target = rng.choice(nums) if rng.random() < 0.4 else rng.randint(-1100, 1100)
    return nums, target


def _second_largest_case(rng):
    top = rng.choice([3, 100, 10**9])
    return (_ints(rng, rng.randint(1, 50), 0, top),)


def _max_subarray_case(rng):
    bound = rng.choice([10, 10**4])
    low = -bound if rng.random() < 0.8 else -bound // 2 - 1
    high = bound if rng.random() < 0.8 else -1  # sometimes every value is negative
    return (_ints(rng, rng.randint(1, 100), low, high),)


def _lis_case(rng):
    top = rng.choice([5, 100, 10**4])
    return (_ints(rng, rng.randint(1, 200), -top, top),)


def _anagram_groups_case(rng):
    alphabet = rng.choice(["ab", "abc", "eat"])
    bases = [_word(rng, rng.randint(0, 5), alphabet) for _ in range(rng.randint(1, 6))]
    words = ["".join(rng.sample(base, len(base))) for base in rng.choices(bases, k=rng.randint(1, 30))]
    return (words,)


def _coin_change_case(rng):
    amount = rng.randint(0, 1000)
    coins = rng.sample(range(1, rng.choice([10, 30, 200]) + 1), rng.randint(1, 10))
    return amount, coins


def _kth_largest_case(rng):
    nums = _ints(rng, rng.randint(1, 100), -(10**4), rng.choice([5, 10**4]))
    return nums, rng.randint(1, len(nums))


def _spiral_case(rng):
    rows, cols = rng.randint(1, 10), rng.randint(1, 10)
    return ([_ints(rng, cols, -100, 100) for _ in range(rows)],)


def _trap_case(rng):
    n = rng.randint(1, 200)
    if rng.random() < 0.5:
        return (_ints(rng, n, 0, rng.choice([3, 10, 10**5])),)
    # a valley between two walls, with bumps, so plenty of water is held
    return ([min(abs(i - n // 2) + rng.randint(0, 3), 10**5) for i in range(n)],)


def _histogram_case(rng):
    return (_ints(rng, rng.randint(1, 200), 0, rng.choice([5, 100, 10**4])),)


def _inversions_case(rng):
    n = rng.randint(1, 300)
    if rng.random() < 0.3:  # nearly sorted
        nums = sorted(_ints(rng, n, -(10**9), 10**9))
        for _ in range(rng.randint(0, 5)):
            i, j = rng.randrange(n), rng.randrange(n)
            nums[i], nums[j] = nums[j], nums[i]
        return (nums,)
    return (_ints(rng, n, -rng.choice([3, 10**9]), 10**9),)


def _parentheses_case(rng):
    if rng.random() < 0.5:
        s = list(_balanced(rng, rng.randint(1, 40), "("))
        for _ in range(rng.randint(1, 4)):
            s.insert(rng.randint(0, len(s)), rng.choice("()"))
        return ("".join(s),)
    return (_word(rng, rng.randint(0, 100), "()"),)


# ---------------------------------------------------------------------------------------------------------------
# Stdin families


# how each family draws a random test input, by question_id (the statements, references, samples and edge cases
# are data: rlexp/envs/data/livecode/<style>-<nn>-<name>.yaml, one file per family)
RANDOM_CASES: dict[str, Callable[[random.Random], Any]] = {
    "rlexp-sum-array": _sum_array_case,
    "rlexp-array-average": _average_case,
    "rlexp-count-primes": lambda rng: _text(rng.choice([rng.randint(1, 100), rng.randint(1, 200000)])),
    "rlexp-reverse-words": _reverse_words_case,
    "rlexp-balanced-brackets": _brackets_case,
    "rlexp-gcd-lcm": _gcd_lcm_case,
    "rlexp-run-length": lambda rng: _text(
        _runs(rng, rng.randint(1, 25), rng.choice(["a", "ab", "abc", "xyz"]), rng.choice([1, 3, 12]))
    ),
    "rlexp-matrix-transpose": _transpose_case,
    "rlexp-fizzbuzz-range": _fizzbuzz_case,
    "rlexp-grid-paths": _grid_paths_case,
    "rlexp-fibonacci-mod": _fibonacci_case,
    "rlexp-range-sum-queries": _range_sum_case,
    "rlexp-merge-intervals": _merge_intervals_case,
    "rlexp-number-of-islands": _islands_case,
    "rlexp-sort-by-frequency": _frequency_case,
    "rlexp-edit-distance": _edit_distance_case,
    "rlexp-shortest-paths": _shortest_paths_case,
    "rlexp-dice-sum-probability": _dice_case,
    "rlexp-two-sum": _two_sum_case,
    "rlexp-valid-palindrome": _palindrome_case,
    "rlexp-count-vowels": lambda rng: (_word(rng, rng.randint(1, 100), rng.choice(["aeioubcd ", string.ascii_letters + " "])),),
    "rlexp-search-insert": _search_insert_case,
    "rlexp-second-largest": _second_largest_case,
    "rlexp-compress-string": lambda rng: (
        _runs(rng, rng.randint(1, 20), rng.choice(["ab", "abc", "pqrs"]), rng.choice([2, 6, 15])),
    ),
    "rlexp-roman-to-integer": lambda rng: (_to_roman(rng.randint(1, 3999)),),
    "rlexp-max-subarray": _max_subarray_case,
    "rlexp-longest-increasing-subsequence": _lis_case,
    "rlexp-count-anagram-groups": _anagram_groups_case,
    "rlexp-coin-change-ways": _coin_change_case,
    "rlexp-kth-largest": _kth_largest_case,
    "rlexp-house-robber": lambda rng: (_ints(rng, rng.randint(1, 100), 0, rng.choice([10, 400])),),
    "rlexp-spiral-order": _spiral_case,
    "rlexp-trapping-rain-water": _trap_case,
    "rlexp-largest-rectangle": _histogram_case,
    "rlexp-count-inversions": _inversions_case,
    "rlexp-longest-valid-parentheses": _parentheses_case,
}

DATA_DIR = Path(__file__).parent / "data" / "livecode"


def load_problems(style: str) -> list[Problem]:
    """The families of one style ("stdin" or "functional"), in the order of their files' numbers."""
    problems = []
    for path in sorted(DATA_DIR.glob(f"{style}-*.yaml")):
        fields = yaml.safe_load(path.read_text())
        qid = fields["question_id"]
        if qid not in RANDOM_CASES:
            raise KeyError(f"{path.name}: no random-case generator for {qid} in RANDOM_CASES")
        cases = {key: fields.pop(key) for key in ("samples", "edge_cases")}
        if style == "functional":  # a case is the method's arguments
            cases = {key: [tuple(case) for case in value] for key, value in cases.items()}
        constraints = tuple(fields.pop("constraints"))
        problems.append(
            Problem(**fields, **{k: tuple(v) for k, v in cases.items()}, constraints=constraints, random_case=RANDOM_CASES[qid])
        )
    return problems


def _spread_difficulties(problems: list[Problem]) -> list[Problem]:
    """The problems reordered so that each difficulty is spread through the list instead of bunched together."""
    position = {}
    for difficulty in ("easy", "medium", "hard"):
        group = [problem for problem in problems if problem.difficulty == difficulty]
        for i, problem in enumerate(group):
            position[problem.question_id] = (i + 0.5) / len(group)
    return sorted(problems, key=lambda problem: position[problem.question_id])


@functools.cache
def problems() -> list[Problem]:
    """Every family, read from its file on first use (the environments' registry imports this module whenever the
    command line starts). Contest dates follow this order: the styles alternate and the difficulties are spread
    out, so that any window of dates holds a mix."""
    stdin, functional = _spread_difficulties(load_problems("stdin")), _spread_difficulties(load_problems("functional"))
    return [problem for pair in itertools.zip_longest(stdin, functional) for problem in pair if problem is not None]


# ---------------------------------------------------------------------------------------------------------------
# LiveCodeBench rows


def _compact(value) -> str:
    """A value as LeetCode shows it in examples: JSON without spaces."""
    return json.dumps(value, separators=(",", ":"))


def _statement(problem: Problem, public: list[dict]) -> str:
    """The question_content: the problem's text with its public tests shown as the samples."""
    if problem.func_name:
        examples = []
        for number, (case, test) in enumerate(zip(problem.samples, public), 1):
            shown = ", ".join(f"{name} = {_compact(arg)}" for name, arg in zip(problem.parameters, case))
            examples.append(f"Example {number}:\n\nInput: {shown}\nOutput: {_compact(json.loads(test['output']))}\n")
        constraints = "\n".join(problem.constraints)
        return f"{problem.description}\n \n" + "\n".join(examples) + f"\n \nConstraints:\n\n{constraints}\n"
    constraints = "".join(f"- {line}\n" for line in problem.constraints)
    samples = "".join(
        f"Sample Input {number}\n\n{test['input']}\nSample Output {number}\n\n{test['output']}\n"
        for number, test in enumerate(public, 1)
    )
    return (
        f"{problem.description}\n\n"
        f"Input\n\nThe input is given from Standard Input in the following format:\n{problem.input_format}\n\n"
        f"Output\n\n{problem.output_format}\n\n"
        f"Constraints\n\n\n{constraints}\n{samples}"
    )


def _contest_date(index: int, count: int) -> str:
    span = (LAST_DATE - FIRST_DATE).days
    day = FIRST_DATE + datetime.timedelta(days=round(index * span / max(count - 1, 1)))
    return datetime.datetime.combine(day, datetime.time()).isoformat()


def _tests(problem: Problem, rng: random.Random, min_tests: int, max_tests: int) -> tuple[list[dict], list[dict]]:
    """Public tests (the samples) and private tests (the edge cases, then distinct random cases up to the total)."""
    total = rng.randint(min_tests, max_tests)
    inputs = [problem.encode_input(case) for case in (*problem.samples, *problem.edge_cases)]
    seen = set(inputs)
    attempts = 0
    while len(inputs) < total and attempts < 100 * total:  # bounded, in case a generator keeps repeating itself
        attempts += 1
        text = problem.encode_input(problem.random_case(rng))
        if text not in seen:
            seen.add(text)
            inputs.append(text)
    tests = [{"input": text, "output": run_reference(problem, text), "testtype": problem.testtype} for text in inputs]
    return tests[: len(problem.samples)], tests[len(problem.samples) :]


def lcb_rows(seed: int = 0, min_tests: int = 10, max_tests: int = 30) -> list[dict]:
    """One LiveCodeBench row per family, every value a string, plus a `reference` column with the solution.

    Each problem gets between min_tests and max_tests tests (its samples and edge cases are always kept).
    The same seed always gives the same rows; another seed draws other random tests.
    """
    if not 1 <= min_tests <= max_tests:
        raise ValueError(f"need 1 <= min_tests <= max_tests, got {min_tests} and {max_tests}")
    rows = []
    for index, problem in enumerate(problems()):
        # crc32 rather than hash(): str hashes differ from one process to the next
        rng = random.Random(seed + zlib.crc32(problem.question_id.encode()))
        public, private = _tests(problem, rng, min_tests, max_tests)
        rows.append(
            {
                "question_title": problem.question_title,
                "question_content": _statement(problem, public),
                "platform": PLATFORM,
                "question_id": problem.question_id,
                "contest_id": CONTEST_ID,
                "contest_date": _contest_date(index, len(problems())),
                "starter_code": problem.starter_code,
                "difficulty": problem.difficulty,
                "public_test_cases": json.dumps(public),
                "private_test_cases": json.dumps(private),
                "metadata": json.dumps({"func_name": problem.func_name} if problem.func_name else {}),
                "reference": problem.reference,
            }
        )
    return rows
