"""Offline programming problems in the row format of LiveCodeBench (`livecodebench/code_generation_lite`).

Each family below is a problem statement, a trusted reference solution (Python source, also used as the SFT
demonstration) and a seeded generator of inputs. `lcb_rows(seed)` turns every family into one LiveCodeBench row:
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
import textwrap
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

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


def _code(source: str) -> str:
    return textwrap.dedent(source).strip() + "\n"


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


_STDIN_PROBLEMS = [
    Problem(
        question_id="rlexp-sum-array",
        question_title="Sum of a Sequence",
        difficulty="easy",
        description="You are given a sequence of N integers A_1, A_2, ..., A_N.\nPrint the sum of the sequence.",
        input_format="N\nA_1 A_2 ... A_N",
        output_format="Print the sum of A_1, A_2, ..., A_N. The sum of an empty sequence is 0.",
        constraints=("0 <= N <= 100", "-10^9 <= A_i <= 10^9", "All input values are integers."),
        reference=_code("""
            import sys

            data = sys.stdin.read().split()
            n = int(data[0])
            print(sum(map(int, data[1 : 1 + n])))
        """),
        samples=(_text(3, [1, 2, 3]), _text(5, [-4, 10, 0, 7, -2])),
        edge_cases=(_text(0, []), _text(1, [-(10**9)]), _text(100, [10**9] * 100), _text(6, [5, 5, 5, -5, -5, -5])),
        random_case=_sum_array_case,
    ),
    Problem(
        question_id="rlexp-array-average",
        question_title="Average Score",
        difficulty="easy",
        description=("N students took a test, and student i scored A_i points.\nFind the average score of the N students."),
        input_format="N\nA_1 A_2 ... A_N",
        output_format=(
            "Print the average score with exactly 6 digits after the decimal point.\n"
            "Your answer is considered correct if its absolute or relative error from the true value "
            "is at most 10^{-6}."
        ),
        constraints=("1 <= N <= 100", "0 <= A_i <= 100", "All input values are integers."),
        reference=_code("""
            n = int(input())
            scores = list(map(int, input().split()))
            print(f"{sum(scores) / n:.6f}")
        """),
        samples=(_text(3, [70, 80, 95]), _text(4, [100, 100, 100, 99])),
        edge_cases=(_text(1, [0]), _text(1, [100]), _text(100, [100] * 100), _text(3, [0, 0, 1])),
        random_case=_average_case,
    ),
    Problem(
        question_id="rlexp-count-primes",
        question_title="Counting Primes",
        difficulty="medium",
        description="You are given a positive integer N.\nPrint how many prime numbers are less than or equal to N.",
        input_format="N",
        output_format="Print the number of primes p with p <= N.",
        constraints=("1 <= N <= 2 \\times 10^5", "N is an integer."),
        reference=_code("""
            import math

            n = int(input())
            is_prime = bytearray([1]) * (n + 1)
            is_prime[0] = is_prime[1] = 0
            for p in range(2, math.isqrt(n) + 1):
                if is_prime[p]:
                    is_prime[p * p :: p] = bytes(len(range(p * p, n + 1, p)))
            print(sum(is_prime))
        """),
        samples=(_text(10), _text(2)),
        edge_cases=(_text(1), _text(3), _text(97), _text(200000)),
        random_case=lambda rng: _text(rng.choice([rng.randint(1, 100), rng.randint(1, 200000)])),
    ),
    Problem(
        question_id="rlexp-reverse-words",
        question_title="Reverse the Words",
        difficulty="easy",
        description=(
            "You are given a string S made of words separated by single spaces. "
            "Each word is a non-empty string of lowercase English letters.\n"
            "Print the words of S in reverse order, separated by single spaces."
        ),
        input_format="S",
        output_format="Print the words of S in reverse order, separated by single spaces.",
        constraints=("S has between 1 and 12 words.", "Each word has between 1 and 8 lowercase English letters."),
        reference=_code("""
            print(" ".join(input().split()[::-1]))
        """),
        samples=(_text("the quick brown fox"), _text("hello")),
        edge_cases=(_text("a"), _text("go go go"), _text("abcdefgh z")),
        random_case=_reverse_words_case,
    ),
    Problem(
        question_id="rlexp-balanced-brackets",
        question_title="Balanced Brackets",
        difficulty="medium",
        description=(
            "You are given a string S consisting of the characters (, ), [, ], { and }.\n"
            "S is balanced if every opening bracket is closed by a bracket of the same kind, "
            "and brackets close in the reverse order of opening.\n"
            "Determine whether S is balanced."
        ),
        input_format="S",
        output_format="Print Yes if S is balanced, and No otherwise.",
        constraints=("1 <= |S| <= 100", "S consists of (, ), [, ], { and }."),
        reference=_code("""
            s = input().strip()
            opening_of = {")": "(", "]": "[", "}": "{"}
            stack = []
            for ch in s:
                if ch in opening_of:
                    if not stack or stack.pop() != opening_of[ch]:
                        print("No")
                        break
                else:
                    stack.append(ch)
            else:
                print("No" if stack else "Yes")
        """),
        samples=(_text("([]{})"), _text("([)]")),
        edge_cases=(_text("("), _text(")"), _text("()" * 50), _text("(" * 50 + ")" * 50), _text("{[}]")),
        random_case=_brackets_case,
    ),
    Problem(
        question_id="rlexp-gcd-lcm",
        question_title="GCD and LCM",
        difficulty="easy",
        description=(
            "You are given N positive integers A_1, A_2, ..., A_N.\n"
            "Find their greatest common divisor and their least common multiple."
        ),
        input_format="N\nA_1 A_2 ... A_N",
        output_format=("Print two lines: the greatest common divisor on the first, the least common multiple on the second."),
        constraints=("1 <= N <= 10", "1 <= A_i <= 1000", "All input values are integers."),
        reference=_code("""
            import math

            n = int(input())
            values = list(map(int, input().split()))
            print(math.gcd(*values))
            print(math.lcm(*values))
        """),
        samples=(_text(3, [4, 6, 8]), _text(2, [7, 13])),
        edge_cases=(
            _text(1, [1]),
            _text(1, [1000]),
            _text(10, [1000] * 10),
            _text(10, [991, 997, 983, 977, 971, 967, 953, 947, 941, 937]),  # primes: a 30-digit least common multiple
        ),
        random_case=_gcd_lcm_case,
    ),
    Problem(
        question_id="rlexp-run-length",
        question_title="Run-Length Encoding",
        difficulty="easy",
        description=(
            "You are given a string S of lowercase English letters.\n"
            "Split S into maximal runs of the same letter, and write each run as its letter followed by its length "
            "in decimal. Print the concatenation of these encodings, from left to right."
        ),
        input_format="S",
        output_format="Print the run-length encoding of S.",
        constraints=("1 <= |S| <= 300", "S consists of lowercase English letters."),
        reference=_code("""
            from itertools import groupby

            s = input().strip()
            print("".join(f"{letter}{len(list(run))}" for letter, run in groupby(s)))
        """),
        samples=(_text("aaabccdddd"), _text("abc")),
        edge_cases=(_text("z"), _text("a" * 300), _text("abababab")),
        random_case=lambda rng: _text(
            _runs(rng, rng.randint(1, 25), rng.choice(["a", "ab", "abc", "xyz"]), rng.choice([1, 3, 12]))
        ),
    ),
    Problem(
        question_id="rlexp-matrix-transpose",
        question_title="Transpose a Matrix",
        difficulty="easy",
        description=(
            "You are given a matrix with H rows and W columns; the element in row i and column j is A_{i,j}.\n"
            "Print its transpose, the matrix with W rows and H columns whose element in row j and column i is A_{i,j}."
        ),
        input_format="H W\nA_{1,1} A_{1,2} ... A_{1,W}\n...\nA_{H,1} A_{H,2} ... A_{H,W}",
        output_format="Print W lines. Line j holds A_{1,j}, A_{2,j}, ..., A_{H,j}, separated by spaces.",
        constraints=("1 <= H, W <= 10", "-1000 <= A_{i,j} <= 1000", "All input values are integers."),
        reference=_code("""
            h, w = map(int, input().split())
            rows = [input().split() for _ in range(h)]
            for column in zip(*rows):
                print(" ".join(column))
        """),
        samples=(_text("2 3", [1, 2, 3], [4, 5, 6]), _text("1 1", [7])),
        edge_cases=(_text("1 4", [-1000, 0, 5, 1000]), _text("3 1", [9], [8], [7]), _text("2 2", [1, 1], [1, 1])),
        random_case=_transpose_case,
    ),
    Problem(
        question_id="rlexp-fizzbuzz-range",
        question_title="FizzBuzz on a Range",
        difficulty="easy",
        description=(
            "For each integer i from L to R inclusive, in increasing order, print one line:\n"
            "FizzBuzz if i is a multiple of 15, otherwise Fizz if i is a multiple of 3, "
            "otherwise Buzz if i is a multiple of 5, and otherwise i itself."
        ),
        input_format="L R",
        output_format="Print R - L + 1 lines as described.",
        constraints=("1 <= L <= R <= 10^9", "R - L < 100", "All input values are integers."),
        reference=_code("""
            left, right = map(int, input().split())
            for i in range(left, right + 1):
                if i % 15 == 0:
                    print("FizzBuzz")
                elif i % 3 == 0:
                    print("Fizz")
                elif i % 5 == 0:
                    print("Buzz")
                else:
                    print(i)
        """),
        samples=(_text("1 5"), _text("14 16")),
        edge_cases=(_text("1 1"), _text("15 15"), _text(f"{10**9 - 99} {10**9}")),
        random_case=_fizzbuzz_case,
    ),
    Problem(
        question_id="rlexp-grid-paths",
        question_title="Paths in a Grid",
        difficulty="medium",
        description=(
            "There is a grid with H rows and W columns. The square in row i and column j is "
            "empty if S_{i,j} is . (a period) and a wall if S_{i,j} is #.\n"
            "Starting from the top-left square, you repeatedly move one square right or one square down, never "
            "entering a wall, until you reach the bottom-right square.\n"
            "Find the number of such paths, modulo 10^9 + 7."
        ),
        input_format="H W\nS_{1,1}S_{1,2}...S_{1,W}\n...\nS_{H,1}S_{H,2}...S_{H,W}",
        output_format="Print the number of paths modulo 10^9 + 7.",
        constraints=(
            "1 <= H, W <= 50",
            "Each S_{i,j} is . (a period) or #.",
            "The top-left and bottom-right squares are empty.",
        ),
        reference=_code("""
            MOD = 10**9 + 7

            h, w = map(int, input().split())
            grid = [input() for _ in range(h)]
            ways = [0] * w  # ways[c]: paths reaching column c of the current row
            ways[0] = 1
            for r in range(h):
                for c in range(w):
                    if grid[r][c] == "#":
                        ways[c] = 0
                    elif c > 0:
                        ways[c] = (ways[c] + ways[c - 1]) % MOD
            print(ways[w - 1])
        """),
        samples=(_grid_text(["...", ".#.", "..."]), _grid_text(["....", ".#..", "..#."])),
        edge_cases=(_grid_text(["."]), _grid_text(["." * 50] * 50), _grid_text(["." * 50]), _grid_text([".#", "#."])),
        random_case=_grid_paths_case,
    ),
    Problem(
        question_id="rlexp-fibonacci-mod",
        question_title="Fibonacci Modulo",
        difficulty="medium",
        description=(
            "The Fibonacci numbers are defined by F_0 = 0, F_1 = 1 and F_n = F_{n-1} + F_{n-2} for n >= 2.\n"
            "Given N and M, find F_N modulo M."
        ),
        input_format="N M",
        output_format="Print F_N modulo M.",
        constraints=("0 <= N <= 10^{18}", "1 <= M <= 10^9", "All input values are integers."),
        reference=_code("""
            def fibonacci_pair(n, m):
                \"\"\"(F(n), F(n + 1)) modulo m, by fast doubling.\"\"\"
                if n == 0:
                    return 0, 1 % m
                a, b = fibonacci_pair(n // 2, m)
                even = a * (2 * b - a) % m
                odd = (a * a + b * b) % m
                return (odd, (even + odd) % m) if n % 2 else (even, odd)


            n, m = map(int, input().split())
            print(fibonacci_pair(n, m)[0])
        """),
        samples=(_text("10 1000"), _text("100 1000000007")),
        edge_cases=(_text("0 1"), _text("1 1"), _text("1 5"), _text(f"{10**18} {10**9}")),
        random_case=_fibonacci_case,
    ),
    Problem(
        question_id="rlexp-range-sum-queries",
        question_title="Range Sum Queries",
        difficulty="medium",
        description=(
            "You are given a sequence A = (A_1, A_2, ..., A_N) and Q queries.\n"
            "The i-th query gives integers l_i and r_i; answer it with A_{l_i} + A_{l_i + 1} + ... + A_{r_i}."
        ),
        input_format="N Q\nA_1 A_2 ... A_N\nl_1 r_1\nl_2 r_2\n...\nl_Q r_Q",
        output_format="Print Q lines. Line i is the answer to the i-th query.",
        constraints=(
            "1 <= N, Q <= 100",
            "-10^6 <= A_i <= 10^6",
            "1 <= l_i <= r_i <= N",
            "All input values are integers.",
        ),
        reference=_code("""
            import sys
            from itertools import accumulate

            data = sys.stdin.read().split()
            n, q = int(data[0]), int(data[1])
            prefix = [0, *accumulate(map(int, data[2 : 2 + n]))]  # prefix[i]: sum of the first i values
            queries = data[2 + n :]
            for i in range(q):
                left, right = int(queries[2 * i]), int(queries[2 * i + 1])
                print(prefix[right] - prefix[left - 1])
        """),
        samples=(_text("5 3", [1, 2, 3, 4, 5], [1, 5], [2, 3], [4, 4]), _text("3 2", [-5, 8, -1], [1, 2], [2, 3])),
        edge_cases=(_text("1 1", [-1000000], [1, 1]), _text("4 2", [10**6] * 4, [1, 4], [3, 3])),
        random_case=_range_sum_case,
    ),
    Problem(
        question_id="rlexp-merge-intervals",
        question_title="Merge Intervals",
        difficulty="medium",
        description=(
            "You are given N closed intervals [L_i, R_i] on the number line.\n"
            "Repeatedly merge any two intervals that share at least one point (touching at an endpoint counts), "
            "until no two intervals share a point. Print the resulting intervals."
        ),
        input_format="N\nL_1 R_1\nL_2 R_2\n...\nL_N R_N",
        output_format=(
            "Print the number K of intervals after merging on the first line. "
            "Then print K lines, the i-th holding the endpoints of the i-th interval from the left, "
            "separated by a space."
        ),
        constraints=("1 <= N <= 100", "0 <= L_i <= R_i <= 10^9", "All input values are integers."),
        reference=_code("""
            n = int(input())
            intervals = sorted(tuple(map(int, input().split())) for _ in range(n))
            merged = []
            for left, right in intervals:
                if merged and left <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], right)
                else:
                    merged.append([left, right])
            print(len(merged))
            for left, right in merged:
                print(left, right)
        """),
        samples=(_text(4, [1, 3], [8, 10], [2, 6], [15, 18]), _text(2, [1, 4], [4, 5])),
        edge_cases=(
            _text(1, [0, 0]),
            _text(3, [5, 5], [5, 5], [5, 5]),
            _text(3, [0, 10**9], [3, 4], [7, 8]),
            _text(2, [1, 2], [3, 4]),
        ),
        random_case=_merge_intervals_case,
    ),
    Problem(
        question_id="rlexp-number-of-islands",
        question_title="Counting Islands",
        difficulty="medium",
        description=(
            "You are given a map with H rows and W columns. The square in row i and column j is "
            "land if S_{i,j} is # and water if S_{i,j} is . (a period).\n"
            "Two land squares belong to the same island if you can walk from one to the other through land squares, "
            "moving up, down, left or right. Count the islands."
        ),
        input_format="H W\nS_{1,1}S_{1,2}...S_{1,W}\n...\nS_{H,1}S_{H,2}...S_{H,W}",
        output_format="Print the number of islands.",
        constraints=("1 <= H, W <= 50", "Each S_{i,j} is # or . (a period)."),
        reference=_code("""
            h, w = map(int, input().split())
            grid = [list(input()) for _ in range(h)]
            islands = 0
            for r in range(h):
                for c in range(w):
                    if grid[r][c] != "#":
                        continue
                    islands += 1
                    grid[r][c] = "."  # sink the island as we walk it, so it is counted once
                    stack = [(r, c)]
                    while stack:
                        y, x = stack.pop()
                        for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                            if 0 <= ny < h and 0 <= nx < w and grid[ny][nx] == "#":
                                grid[ny][nx] = "."
                                stack.append((ny, nx))
            print(islands)
        """),
        samples=(_grid_text(["##..", "#..#", "..##"]), _grid_text(["#.#", ".#.", "#.#"])),
        edge_cases=(
            _grid_text(["."]),
            _grid_text(["#"]),
            _grid_text(["#" * 50] * 50),
            _grid_text([("#." * 25) if r % 2 == 0 else (".#" * 25) for r in range(50)]),
        ),
        random_case=_islands_case,
    ),
    Problem(
        question_id="rlexp-sort-by-frequency",
        question_title="Sort by Frequency",
        difficulty="medium",
        description=(
            "You are given a sequence of N integers A_1, A_2, ..., A_N.\n"
            "Rearrange it so that values that occur more often come first; among values that occur equally often, "
            "the smaller value comes first. Equal values stay next to each other."
        ),
        input_format="N\nA_1 A_2 ... A_N",
        output_format="Print the rearranged sequence on one line, separated by spaces.",
        constraints=("1 <= N <= 100", "1 <= A_i <= 100", "All input values are integers."),
        reference=_code("""
            from collections import Counter

            n = int(input())
            values = list(map(int, input().split()))
            count = Counter(values)
            print(*sorted(values, key=lambda value: (-count[value], value)))
        """),
        samples=(_text(6, [4, 6, 2, 6, 4, 6]), _text(4, [3, 1, 2, 1])),
        edge_cases=(_text(1, [100]), _text(5, [7, 7, 7, 7, 7]), _text(5, [5, 4, 3, 2, 1])),
        random_case=_frequency_case,
    ),
    Problem(
        question_id="rlexp-edit-distance",
        question_title="Edit Distance",
        difficulty="hard",
        description=(
            "You are given two strings S and T of lowercase English letters.\n"
            "In one operation you may insert a letter anywhere in S, delete a letter of S, or replace a letter of S "
            "with another letter. Find the minimum number of operations that turn S into T."
        ),
        input_format="S\nT",
        output_format="Print the minimum number of operations.",
        constraints=("1 <= |S|, |T| <= 100", "S and T consist of lowercase English letters."),
        reference=_code("""
            s = input().strip()
            t = input().strip()
            previous = list(range(len(t) + 1))  # distances from the first i - 1 letters of s to each prefix of t
            for i, a in enumerate(s, 1):
                current = [i]
                for j, b in enumerate(t, 1):
                    current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
                previous = current
            print(previous[-1])
        """),
        samples=(_text("sunday", "saturday"), _text("abc", "abc")),
        edge_cases=(_text("a", "b"), _text("a", "a" * 100), _text("a" * 100, "b" * 100), _text("abcdef", "fedcba")),
        random_case=_edit_distance_case,
    ),
    Problem(
        question_id="rlexp-shortest-paths",
        question_title="Shortest Paths",
        difficulty="hard",
        description=(
            "You are given an undirected graph with N vertices numbered 1 to N and M edges. "
            "Edge i connects vertices U_i and V_i and has length W_i.\n"
            "For every vertex v, find the length of a shortest path from vertex 1 to vertex v."
        ),
        input_format="N M\nU_1 V_1 W_1\nU_2 V_2 W_2\n...\nU_M V_M W_M",
        output_format=(
            "Print N lines. Line v is the length of a shortest path from vertex 1 to vertex v, "
            "or -1 if vertex v cannot be reached."
        ),
        constraints=(
            "1 <= N <= 100",
            "0 <= M <= 500",
            "1 <= U_i, V_i <= N and U_i != V_i",
            "1 <= W_i <= 10^9",
            "All input values are integers.",
        ),
        reference=_code("""
            import heapq
            import sys

            data = sys.stdin.read().split()
            n, m = int(data[0]), int(data[1])
            neighbours = [[] for _ in range(n + 1)]
            for i in range(m):
                u, v, w = (int(x) for x in data[2 + 3 * i : 5 + 3 * i])
                neighbours[u].append((v, w))
                neighbours[v].append((u, w))
            distance = [-1] * (n + 1)
            heap = [(0, 1)]
            while heap:
                d, u = heapq.heappop(heap)
                if distance[u] != -1:
                    continue  # already settled by a shorter path
                distance[u] = d
                for v, w in neighbours[u]:
                    if distance[v] == -1:
                        heapq.heappush(heap, (d + w, v))
            print("\\n".join(map(str, distance[1:])))
        """),
        samples=(_text("4 4", [1, 2, 5], [1, 3, 2], [3, 2, 1], [2, 4, 7]), _text("3 1", [2, 3, 4])),
        edge_cases=(_text("1 0"), _text("3 0"), _text("2 1", [1, 2, 10**9]), _text("2 2", [1, 2, 5], [2, 1, 3])),
        random_case=_shortest_paths_case,
    ),
    Problem(
        question_id="rlexp-dice-sum-probability",
        question_title="Probability of a Dice Sum",
        difficulty="hard",
        description=(
            "You roll N fair dice. Each die shows an integer from 1 to K, each with probability 1/K, "
            "independently of the others.\nFind the probability that the numbers shown add up to exactly S."
        ),
        input_format="N K S",
        output_format=(
            "Print the probability with exactly 10 digits after the decimal point.\n"
            "Your answer is considered correct if its absolute or relative error from the true value "
            "is at most 10^{-9}."
        ),
        constraints=("1 <= N <= 20", "2 <= K <= 12", "1 <= S <= 1000", "All input values are integers."),
        reference=_code("""
            n, k, s = map(int, input().split())
            highest = n * k
            ways = [1] + [0] * highest  # ways[t]: outcomes of the dice rolled so far that total t
            for _ in range(n):
                new_ways = [0] * (highest + 1)
                for total, count in enumerate(ways):
                    if count:
                        for face in range(1, k + 1):
                            if total + face <= highest:
                                new_ways[total + face] += count
                ways = new_ways
            probability = ways[s] / k**n if s <= highest else 0.0
            print(f"{probability:.10f}")
        """),
        samples=(_text("2 6 7"), _text("3 2 4")),
        edge_cases=(_text("1 6 3"), _text("2 6 1"), _text("20 12 130"), _text("20 12 240"), _text("1 2 1000")),
        random_case=_dice_case,
    ),
]


# ---------------------------------------------------------------------------------------------------------------
# Functional (LeetCode-style) families


_FUNCTIONAL_PROBLEMS = [
    Problem(
        question_id="rlexp-two-sum",
        question_title="Two Sum",
        difficulty="easy",
        description=(
            "You are given an integer array nums and an integer target.\n"
            "Exactly one pair of indices i < j has nums[i] + nums[j] == target. Return [i, j]."
        ),
        constraints=("2 <= nums.length <= 30", "-10^9 <= nums[i] <= 10^9", "Exactly one valid pair exists."),
        reference=_code("""
            class Solution:
                def twoSum(self, nums: List[int], target: int) -> List[int]:
                    index_of = {}
                    for j, value in enumerate(nums):
                        if target - value in index_of:
                            return [index_of[target - value], j]
                        index_of[value] = j
                    return []
        """),
        func_name="twoSum",
        samples=(([4, 9, 1, 7], 8), ([5, -2, 5], 10)),
        edge_cases=(([3, 3], 6), ([-(10**9), 10**9], 0), ([1, 2, 4, 8, 16], 24)),
        random_case=_two_sum_case,
    ),
    Problem(
        question_id="rlexp-valid-palindrome",
        question_title="Palindrome After Cleaning",
        difficulty="easy",
        description=(
            "You are given a string s of printable ASCII characters.\n"
            "Lowercase every letter of s and drop every character that is not a letter or a digit. "
            "Return true if what remains reads the same forwards and backwards, and false otherwise."
        ),
        constraints=("1 <= s.length <= 100", "s consists of printable ASCII characters."),
        reference=_code("""
            class Solution:
                def isPalindrome(self, s: str) -> bool:
                    kept = [ch.lower() for ch in s if ch.isalnum()]
                    return kept == kept[::-1]
        """),
        func_name="isPalindrome",
        samples=(("Never odd, or even!",), ("race a car",)),
        edge_cases=((" ",), ("a",), ("0P",), ("Aa1:1aA",)),
        random_case=_palindrome_case,
    ),
    Problem(
        question_id="rlexp-count-vowels",
        question_title="Count the Vowels",
        difficulty="easy",
        description=(
            "You are given a string s of English letters and spaces.\n"
            "Return the number of vowels in s. The vowels are a, e, i, o and u, in lowercase or uppercase."
        ),
        constraints=("1 <= s.length <= 100", "s consists of English letters and spaces."),
        reference=_code("""
            class Solution:
                def countVowels(self, s: str) -> int:
                    return sum(ch in "aeiouAEIOU" for ch in s)
        """),
        func_name="countVowels",
        samples=(("Hello World",), ("rhythm",)),
        edge_cases=(("a",), ("AEIOU aeiou",), ("y",), (" ",)),
        random_case=lambda rng: (_word(rng, rng.randint(1, 100), rng.choice(["aeioubcd ", string.ascii_letters + " "])),),
    ),
    Problem(
        question_id="rlexp-search-insert",
        question_title="Search Insert Position",
        difficulty="easy",
        description=(
            "You are given an array nums of distinct integers sorted in increasing order, and an integer target.\n"
            "Return the index of target if it is in nums; otherwise return the index where it would have to be "
            "inserted to keep nums sorted."
        ),
        constraints=(
            "1 <= nums.length <= 100",
            "-10^4 <= nums[i], target <= 10^4",
            "nums is sorted in strictly increasing order.",
        ),
        reference=_code("""
            import bisect


            class Solution:
                def searchInsert(self, nums: List[int], target: int) -> int:
                    return bisect.bisect_left(nums, target)
        """),
        func_name="searchInsert",
        samples=(([2, 4, 7, 9], 7), ([2, 4, 7, 9], 5)),
        edge_cases=(([1], 0), ([1], 1), ([1], 2), ([-10000, 10000], 10000)),
        random_case=_search_insert_case,
    ),
    Problem(
        question_id="rlexp-second-largest",
        question_title="Second Largest Distinct Value",
        difficulty="easy",
        description=(
            "You are given an array nums of non-negative integers.\n"
            "Return the second largest distinct value in nums, or -1 if nums has fewer than two distinct values."
        ),
        constraints=("1 <= nums.length <= 100", "0 <= nums[i] <= 10^9"),
        reference=_code("""
            class Solution:
                def secondLargest(self, nums: List[int]) -> int:
                    distinct = sorted(set(nums), reverse=True)
                    return distinct[1] if len(distinct) > 1 else -1
        """),
        func_name="secondLargest",
        samples=(([3, 8, 8, 5],), ([4, 4],)),
        edge_cases=(([7],), ([0, 1000000000],), ([5, 5, 3, 3],), ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10],)),
        random_case=_second_largest_case,
    ),
    Problem(
        question_id="rlexp-compress-string",
        question_title="Compress a String",
        difficulty="easy",
        description=(
            "You are given a string s of lowercase English letters.\n"
            "Compress s by replacing every maximal run of one letter with the letter followed by the run's length, "
            'so "aabccc" becomes "a2b1c3". Return the compressed string if it is strictly shorter than s, '
            "and s itself otherwise."
        ),
        constraints=("1 <= s.length <= 300", "s consists of lowercase English letters."),
        reference=_code("""
            from itertools import groupby


            class Solution:
                def compressString(self, s: str) -> str:
                    compressed = "".join(f"{letter}{len(list(run))}" for letter, run in groupby(s))
                    return compressed if len(compressed) < len(s) else s
        """),
        func_name="compressString",
        samples=(("aaabbbbcdd",), ("abcd",)),
        edge_cases=(("a",), ("aa",), ("aaa",), ("z" * 300,)),
        random_case=lambda rng: (_runs(rng, rng.randint(1, 20), rng.choice(["ab", "abc", "pqrs"]), rng.choice([2, 6, 15])),),
    ),
    Problem(
        question_id="rlexp-roman-to-integer",
        question_title="Roman Numeral to Integer",
        difficulty="easy",
        description=(
            "Roman numerals use the symbols I = 1, V = 5, X = 10, L = 50, C = 100, D = 500 and M = 1000. "
            "Symbols are written from largest to smallest and added, except that a smaller symbol placed directly "
            "before a larger one is subtracted: IV = 4, IX = 9, XL = 40, XC = 90, CD = 400 and CM = 900.\n"
            "Given a valid Roman numeral s, return the integer it represents."
        ),
        constraints=("1 <= s.length <= 15", "s is a valid Roman numeral for an integer between 1 and 3999."),
        reference=_code("""
            class Solution:
                def romanToInt(self, s: str) -> int:
                    values = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
                    total = 0
                    for i, symbol in enumerate(s):
                        # a symbol smaller than the next one is subtracted
                        if i + 1 < len(s) and values[symbol] < values[s[i + 1]]:
                            total -= values[symbol]
                        else:
                            total += values[symbol]
                    return total
        """),
        func_name="romanToInt",
        samples=(("XXVII",), ("MCMXCIV",)),
        edge_cases=(("I",), ("IV",), ("MMMCMXCIX",), ("MMMDCCCLXXXVIII",)),
        random_case=lambda rng: (_to_roman(rng.randint(1, 3999)),),
    ),
    Problem(
        question_id="rlexp-max-subarray",
        question_title="Maximum Subarray Sum",
        difficulty="medium",
        description=("You are given an integer array nums.\nReturn the largest sum of a non-empty contiguous subarray of nums."),
        constraints=("1 <= nums.length <= 1000", "-10^4 <= nums[i] <= 10^4"),
        reference=_code("""
            class Solution:
                def maxSubArray(self, nums: List[int]) -> int:
                    best = current = nums[0]
                    for value in nums[1:]:
                        # either extend the best subarray ending just before, or start afresh here
                        current = max(value, current + value)
                        best = max(best, current)
                    return best
        """),
        func_name="maxSubArray",
        samples=(([-3, 4, -1, 2, -6, 5],), ([-8, -2, -5],)),
        edge_cases=(([-1],), ([10000],), ([0, 0, 0],), ([10000] * 100,)),
        random_case=_max_subarray_case,
    ),
    Problem(
        question_id="rlexp-longest-increasing-subsequence",
        question_title="Longest Increasing Subsequence",
        difficulty="medium",
        description=(
            "You are given an integer array nums.\n"
            "Return the length of the longest strictly increasing subsequence of nums. A subsequence keeps the order "
            "of the elements it takes and may skip any of them."
        ),
        constraints=("1 <= nums.length <= 2500", "-10^4 <= nums[i] <= 10^4"),
        reference=_code("""
            import bisect


            class Solution:
                def lengthOfLIS(self, nums: List[int]) -> int:
                    tails = []  # tails[k]: smallest last element of an increasing subsequence of length k + 1
                    for value in nums:
                        k = bisect.bisect_left(tails, value)
                        if k == len(tails):
                            tails.append(value)
                        else:
                            tails[k] = value
                    return len(tails)
        """),
        func_name="lengthOfLIS",
        samples=(([3, 1, 4, 1, 5, 9, 2, 6],), ([2, 2, 2],)),
        edge_cases=(([7],), (list(range(100, 0, -1)),), (list(range(100)),), ([-10000, 10000],)),
        random_case=_lis_case,
    ),
    Problem(
        question_id="rlexp-count-anagram-groups",
        question_title="Count Anagram Groups",
        difficulty="medium",
        description=(
            "You are given an array of strings words.\n"
            "Two strings are anagrams if one is a rearrangement of the letters of the other. Split words into groups "
            "so that two words are in the same group exactly when they are anagrams, and return the number of groups."
        ),
        constraints=(
            "1 <= words.length <= 100",
            "0 <= words[i].length <= 10",
            "words[i] consists of lowercase English letters.",
        ),
        reference=_code("""
            class Solution:
                def countAnagramGroups(self, words: List[str]) -> int:
                    return len({"".join(sorted(word)) for word in words})
        """),
        func_name="countAnagramGroups",
        samples=((["listen", "silent", "enlist", "google", "gogole", "cat"],), (["a", "b", "a"],)),
        edge_cases=(([""],), (["", "", "x"],), (["ab", "ba", "ab"],), (["abc", "abd"],)),
        random_case=_anagram_groups_case,
    ),
    Problem(
        question_id="rlexp-coin-change-ways",
        question_title="Coin Change Combinations",
        difficulty="medium",
        description=(
            "You are given an integer amount and an array coins of distinct coin values. "
            "You have an unlimited number of coins of each value.\n"
            "Return the number of different multisets of coins whose values add up to amount, modulo 10^9 + 7. "
            "The order of the coins does not matter, and the empty multiset makes the amount 0."
        ),
        constraints=(
            "0 <= amount <= 1000",
            "1 <= coins.length <= 10",
            "1 <= coins[i] <= 1000",
            "All values in coins are distinct.",
        ),
        reference=_code("""
            class Solution:
                def change(self, amount: int, coins: List[int]) -> int:
                    mod = 10**9 + 7
                    ways = [1] + [0] * amount  # ways[t]: multisets of the coins seen so far that total t
                    for coin in coins:
                        for total in range(coin, amount + 1):
                            ways[total] = (ways[total] + ways[total - coin]) % mod
                    return ways[amount]
        """),
        func_name="change",
        samples=((6, [1, 2, 5]), (3, [2])),
        edge_cases=((0, [7]), (10, [10]), (1000, [1, 2, 5, 10, 20, 50, 100, 200]), (999, [2, 4, 6])),
        random_case=_coin_change_case,
    ),
    Problem(
        question_id="rlexp-kth-largest",
        question_title="K-th Largest Element",
        difficulty="medium",
        description=(
            "You are given an integer array nums and an integer k.\n"
            "Return the k-th largest element of nums in sorted order (counting repeated values separately)."
        ),
        constraints=("1 <= k <= nums.length <= 1000", "-10^4 <= nums[i] <= 10^4"),
        reference=_code("""
            import heapq


            class Solution:
                def findKthLargest(self, nums: List[int], k: int) -> int:
                    return heapq.nlargest(k, nums)[-1]
        """),
        func_name="findKthLargest",
        samples=(([5, 1, 9, 3, 7], 2), ([4, 4, 2, 4, 1], 3)),
        edge_cases=(([1], 1), ([2, 2, 2], 2), ([-1, -2], 2), (list(range(100)), 100)),
        random_case=_kth_largest_case,
    ),
    Problem(
        question_id="rlexp-house-robber",
        question_title="Non-Adjacent Maximum Sum",
        difficulty="medium",
        description=(
            "Houses stand in a row, and house i holds nums[i] coins. You may take the coins of any set of houses, "
            "as long as no two of the houses you choose are next to each other.\n"
            "Return the largest number of coins you can take."
        ),
        constraints=("1 <= nums.length <= 100", "0 <= nums[i] <= 400"),
        reference=_code("""
            class Solution:
                def rob(self, nums: List[int]) -> int:
                    skip, take = 0, 0  # best totals so far with the previous house left or taken
                    for coins in nums:
                        skip, take = max(skip, take), skip + coins
                    return max(skip, take)
        """),
        func_name="rob",
        samples=(([2, 7, 9, 3, 1],), ([5, 1, 1, 5],)),
        edge_cases=(([0],), ([400],), ([400] * 100,), ([1, 400, 1, 1, 400],)),
        random_case=lambda rng: (_ints(rng, rng.randint(1, 100), 0, rng.choice([10, 400])),),
    ),
    Problem(
        question_id="rlexp-spiral-order",
        question_title="Spiral Order",
        difficulty="medium",
        description=(
            "You are given an m x n matrix.\n"
            "Return all of its elements in spiral order: start at the top-left corner, go right along the top row, "
            "down the right column, left along the bottom row, up the left column, and continue inwards clockwise."
        ),
        constraints=("1 <= m, n <= 10", "-100 <= matrix[i][j] <= 100"),
        reference=_code("""
            class Solution:
                def spiralOrder(self, matrix: List[List[int]]) -> List[int]:
                    order = []
                    while matrix:
                        order.extend(matrix[0])
                        # turn what is left counter-clockwise, so the next side to walk becomes the top row
                        matrix = [list(column) for column in zip(*matrix[1:])][::-1]
                    return order
        """),
        func_name="spiralOrder",
        samples=(([[1, 2, 3], [4, 5, 6], [7, 8, 9]],), ([[1, 2, 3, 4], [5, 6, 7, 8]],)),
        edge_cases=(([[1]],), ([[1, 2, 3]],), ([[1], [2], [3]],), ([[-100, 100], [100, -100]],)),
        random_case=_spiral_case,
    ),
    Problem(
        question_id="rlexp-trapping-rain-water",
        question_title="Trapped Rain Water",
        difficulty="hard",
        description=(
            "An elevation map is given as n non-negative integers height, "
            "where bar i has width 1 and height height[i].\n"
            "Return how many units of water the map holds after it rains."
        ),
        constraints=("1 <= n <= 2 * 10^4", "0 <= height[i] <= 10^5"),
        reference=_code("""
            class Solution:
                def trap(self, height: List[int]) -> int:
                    left, right = 0, len(height) - 1
                    left_max = right_max = water = 0
                    while left < right:
                        # the lower side bounds the water level there, whatever lies between
                        if height[left] < height[right]:
                            left_max = max(left_max, height[left])
                            water += left_max - height[left]
                            left += 1
                        else:
                            right_max = max(right_max, height[right])
                            water += right_max - height[right]
                            right -= 1
                    return water
        """),
        func_name="trap",
        samples=(([3, 0, 1, 0, 2, 0, 4],), ([1, 2, 3],)),
        edge_cases=(([0],), ([5],), ([3, 0, 3],), ([100000, 0, 0, 0, 100000],)),
        random_case=_trap_case,
    ),
    Problem(
        question_id="rlexp-largest-rectangle",
        question_title="Largest Rectangle in a Histogram",
        difficulty="hard",
        description=(
            "A histogram has n bars of width 1; bar i has height heights[i].\n"
            "Return the area of the largest rectangle that fits inside the histogram."
        ),
        constraints=("1 <= heights.length <= 10^5", "0 <= heights[i] <= 10^4"),
        reference=_code("""
            class Solution:
                def largestRectangleArea(self, heights: List[int]) -> int:
                    best = 0
                    stack = []  # (start, height) of bars in increasing height whose rectangles may still grow right
                    for i, h in enumerate(heights + [0]):  # the final 0 closes every rectangle still open
                        start = i
                        while stack and stack[-1][1] >= h:
                            start, top = stack.pop()
                            best = max(best, top * (i - start))
                        # a lower bar extends left over the taller bars it closed
                        stack.append((start, h))
                    return best
        """),
        func_name="largestRectangleArea",
        samples=(([2, 1, 5, 6, 2, 3],), ([4, 4],)),
        edge_cases=(([0],), ([5],), ([1, 2, 3, 4, 5],), ([10000] * 100,)),
        random_case=_histogram_case,
    ),
    Problem(
        question_id="rlexp-count-inversions",
        question_title="Count Inversions",
        difficulty="hard",
        description=(
            "You are given an integer array nums of length n.\n"
            "Return the number of pairs of indices (i, j) with 0 <= i < j < n and nums[i] > nums[j]."
        ),
        constraints=("1 <= nums.length <= 10^5", "-10^9 <= nums[i] <= 10^9"),
        reference=_code("""
            class Solution:
                def countInversions(self, nums: List[int]) -> int:
                    rank = {value: r for r, value in enumerate(sorted(set(nums)), 1)}
                    tree = [0] * (len(rank) + 1)  # Fenwick tree: how many earlier values have each rank
                    inversions = 0
                    for seen, value in enumerate(nums):
                        # earlier values not greater than this one; every other earlier value is an inversion
                        i, not_greater = rank[value], 0
                        while i > 0:
                            not_greater += tree[i]
                            i -= i & -i
                        inversions += seen - not_greater
                        i = rank[value]
                        while i < len(tree):
                            tree[i] += 1
                            i += i & -i
                    return inversions
        """),
        func_name="countInversions",
        samples=(([3, 1, 2],), ([5, 4, 4, 1],)),
        edge_cases=(([1],), ([2, 2],), (list(range(100, 0, -1)),), ([-(10**9), 10**9, -(10**9)],)),
        random_case=_inversions_case,
    ),
    Problem(
        question_id="rlexp-longest-valid-parentheses",
        question_title="Longest Valid Parentheses",
        difficulty="hard",
        description=(
            "You are given a string s made of the characters ( and ).\n"
            "Return the length of the longest substring of s that is a well-formed parentheses string."
        ),
        constraints=("0 <= s.length <= 3 * 10^4", "s[i] is ( or )."),
        reference=_code("""
            class Solution:
                def longestValidParentheses(self, s: str) -> int:
                    best = 0
                    stack = [-1]  # bottom: the index just before the current well-formed stretch
                    for i, ch in enumerate(s):
                        if ch == "(":
                            stack.append(i)
                            continue
                        stack.pop()
                        if stack:
                            best = max(best, i - stack[-1])
                        else:
                            stack.append(i)  # an unmatched ) starts a new stretch after it
                    return best
        """),
        func_name="longestValidParentheses",
        samples=(("(()())(",), (")()())()",)),
        edge_cases=(("",), ("(",), (")(",), ("()" * 50,)),
        random_case=_parentheses_case,
    ),
]


def _spread_difficulties(problems: list[Problem]) -> list[Problem]:
    """The problems reordered so that each difficulty is spread through the list instead of bunched together."""
    position = {}
    for difficulty in ("easy", "medium", "hard"):
        group = [problem for problem in problems if problem.difficulty == difficulty]
        for i, problem in enumerate(group):
            position[problem.question_id] = (i + 0.5) / len(group)
    return sorted(problems, key=lambda problem: position[problem.question_id])


# contest dates follow this order: the styles alternate and the difficulties are spread out, so that any window
# of dates holds a mix
PROBLEMS: list[Problem] = [
    problem
    for pair in itertools.zip_longest(_spread_difficulties(_STDIN_PROBLEMS), _spread_difficulties(_FUNCTIONAL_PROBLEMS))
    for problem in pair
    if problem is not None
]


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
    for index, problem in enumerate(PROBLEMS):
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
                "contest_date": _contest_date(index, len(PROBLEMS)),
                "starter_code": problem.starter_code,
                "difficulty": problem.difficulty,
                "public_test_cases": json.dumps(public),
                "private_test_cases": json.dumps(private),
                "metadata": json.dumps({"func_name": problem.func_name} if problem.func_name else {}),
                "reference": problem.reference,
            }
        )
    return rows
