"""Math word problems and competition math, scored with math-verify (huggingface/Math-Verify).

Problems come from `source=`:
- `procedural` (default, offline): arithmetic, fractions, linear equations, gcd/lcm, remainders, counting and
  GSM-style word problems, each a pure function of (seed, difficulty) with an exact answer and a worked
  solution (the SFT demonstration);
- the hub: `gsm8k` (openai/gsm8k), `math` (EleutherAI/hendrycks_math, all seven subjects), `deepscaler`
  (agentica-org/DeepScaleR-Preview-Dataset, training only), `math500` (HuggingFaceH4/MATH-500), `aime24`
  (HuggingFaceH4/aime_2024), `aime25` (math-ai/aime25), `amc` (AI-MO/aimo-validation-amc);
- a path to a `.jsonl` file of rows in MATH-500's format (`problem`, `answer`, `solution`, `level`, ...).
Evaluation reports the source's `test` split, or, named in `eval.splits`, the evaluation sets of other hub sources
(`eval.splits=[math500,aime24,amc]`), so a run trains on one set and is scored on several; a source without a test
split (`deepscaler`) is evaluated on MATH-500 unless `eval.splits` says otherwise.

Every gold answer is normalised to LaTeX and wrapped in `$...$` before parsing (a bare `10\\sqrt{2}` parses as
10). The prediction is the content of the last `\\boxed{}` after the last `</think>`, checked with TRL's own
`accuracy_reward` (math-verify with TRL's extraction settings) inside worker processes: math-verify's timeouts
use `signal.alarm`, which only works on a main thread, and a worker that still hangs is killed at `timeout_s`.
The workers are plain processes (`rlexp/envs/math_worker.py`) that never import the caller's `__main__`, so any
caller can score; when they cannot start, answers get reward `None`, never an exception.
Answers that would make sympy work for minutes (exponent towers, huge literals, deep nesting) are compared as
strings instead. A gold answer that does not parse gives reward `None` (TRL skips the sample), counted and logged.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import math as pymath
import os
import queue
import random
import re
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

from rlexp.envs import register
from rlexp.envs.base import Env, Score, as_dataset
from rlexp.errors import ConfigError

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

PROMPT = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."
FORMAT_FEEDBACK = "Your answer had the wrong format. The solution must be given in the format: \\boxed{your_answer}."
WRONG_FEEDBACK = "Your boxed final answer was parsed, but it is incorrect. Recheck the reasoning and final calculation."
UNPARSABLE_FEEDBACK = (
    "Your boxed final answer could not be read as a mathematical expression. Put only the final "
    "number or expression inside \\boxed{}, in plain LaTeX."
)
FIXTURE = Path(__file__).parent / "data" / "math500_fixture.jsonl"
KINDS = ("arithmetic", "fractions", "linear", "gcd_lcm", "remainder", "counting", "word")
MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)
# hub id, config, split for training (None: an evaluation-only set), split for evaluation (None: training only)
HUB = {
    "gsm8k": ("openai/gsm8k", "main", "train", "test"),
    "math": ("EleutherAI/hendrycks_math", MATH_SUBJECTS, "train", "test"),
    # 40k problems with `problem`, `answer`, `solution` columns and one split, train (Jackpot's RL data, arXiv 2602.06107)
    "deepscaler": ("agentica-org/DeepScaleR-Preview-Dataset", None, "train", None),
    "math500": ("HuggingFaceH4/MATH-500", None, None, "test"),
    "aime24": ("HuggingFaceH4/aime_2024", None, None, "train"),
    "aime25": ("math-ai/aime25", None, None, "test"),
    "amc": ("AI-MO/aimo-validation-amc", None, None, "train"),
}

# -- answer extraction ----------------------------------------------------------------------------------------------

MAX_TAIL = 4000
MAX_BOX_CHARS = 512
MAX_DEPTH = 20
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{|\\boxed +([^\s{}$]+)")


def extract_boxed(completion: str) -> tuple[Optional[str], str]:
    """(content of the last \\boxed{} after thinking, "") or (None, why not)."""
    if "</think>" in completion:
        text = completion.rsplit("</think>", 1)[1]
    elif "<think>" in completion:
        return None, "unclosed_think"
    else:
        text = completion
    text = text[-MAX_TAIL:]
    matches = list(_BOX.finditer(text))
    if not matches:
        return None, "no_boxed"
    last = matches[-1]
    if last.group(1) is not None:  # \boxed 5
        return last.group(1), ""
    depth, start = 1, last.end()
    for i in range(start, min(len(text), start + MAX_BOX_CHARS + 1)):
        ch = text[i]
        if ch == "{":
            depth += 1
            if depth > MAX_DEPTH:
                return None, "too_deep"
        elif ch == "}":
            depth -= 1
            if depth == 0:
                content = text[start:i].strip()
                return (content, "") if content else (None, "empty_boxed")
    return None, "unbalanced_boxed"


def last_boxed_in_solution(solution: str) -> Optional[str]:
    """MATH's gold: the last \\boxed{} of the worked solution (brace-matched, no length cap)."""
    at = max(solution.rfind("\\boxed{"), solution.rfind("\\fbox{"))
    if at < 0:
        return None
    start = solution.index("{", at) + 1
    depth = 1
    for i in range(start, len(solution)):
        depth += {"{": 1, "}": -1}.get(solution[i], 0)
        if depth == 0:
            return solution[start:i].strip()
    return None


_BIG_INT = re.compile(r"\d{201,}")
_BIG_EXPONENT = re.compile(r"\^\s*\{?\s*\d{4,}")
_NUMBER = re.compile(r"\d{4,}")


def _nested_exponent(answer: str) -> bool:
    """Whether an exponent holds another exponent: 10^{10^{10}}, 9^9^9 (math-verify would spend its whole timeout
    on such a tower)."""
    inside: list[bool] = []  # for each open brace: is it an exponent's?
    i, n = 0, len(answer)
    while i < n:
        ch = answer[i]
        if ch == "^":
            if any(inside):
                return True
            j = i + 1
            while j < n and answer[j].isspace():
                j += 1
            if j < n and answer[j] == "{":
                inside.append(True)
                i = j + 1
                continue
            k = j + 1  # a bare exponent is one token: a character or a \command
            if j < n and answer[j] == "\\":
                while k < n and answer[k].isalpha():
                    k += 1
            while k < n and answer[k].isspace():
                k += 1
            if k < n and answer[k] == "^":
                return True
            i = k
            continue
        if ch == "{":
            inside.append(False)
        elif ch == "}" and inside:
            inside.pop()
        i += 1
    return False


def too_costly(answer: str) -> bool:
    """Answers sympy could spend minutes on: exponent towers, huge powers and factorials, 200+ digit literals,
    deep bracket nesting. They are compared as strings instead."""
    if "**" in answer or _BIG_INT.search(answer) or _BIG_EXPONENT.search(answer) or _nested_exponent(answer):
        return True
    if "!" in answer and ("^" in answer or _NUMBER.search(answer)):
        return True
    depth = deepest = 0
    for ch in answer:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest > MAX_DEPTH


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text).strip("$")


# -- the verifier, in worker processes ------------------------------------------------------------------------------


def check_answer(gold: str, boxed: str) -> dict:
    """Runs in a worker's main thread: TRL's accuracy_reward on one boxed answer, with its timeouts armed."""
    import logging as worker_logging

    from trl.rewards import accuracy_reward

    worker_logging.getLogger("math_verify").setLevel(worker_logging.ERROR)
    extra: dict[str, list] = {}
    try:
        (reward,) = accuracy_reward(
            [[{"role": "assistant", "content": f"\\boxed{{{boxed}}}"}]], [gold], log_extra=extra.__setitem__
        )
    except Exception as exc:  # noqa: BLE001 - a parser crash on odd LaTeX is a wrong answer, not a dead worker
        return {"reward": 0.0, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return {"reward": reward, "answer_parsed": extra.get("answer_parsed", [""])[0][:200]}


def warm_checker() -> None:
    """A worker's start: one real check before it says it is ready, so that sympy's imports (about a second) are
    paid here, and a verifier that cannot check 1 = 1 shows as a worker that does not start."""
    result = check_answer("$1$", "1")
    if result["reward"] != 1.0:
        raise RuntimeError(f"math-verify does not check 1 = 1: {result}")


# Each worker is one single-threaded check: numeric libraries must not start a thread per core in each of them
WORKER_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _importable_name(function: Callable) -> str:
    """MODULE:QUALNAME, by which a worker imports `function` (never from the caller's __main__)."""
    if function.__module__ == "__main__":
        raise ValueError(f"{function.__qualname__} is defined in __main__; worker functions must live in a module")
    return f"{function.__module__}:{function.__qualname__}"


class Worker:
    """One `rlexp.envs.math_worker` process and the two pipes to it."""

    def __init__(self, command: list[str], environment: dict[str, str]):
        # imported here, not at the top: composing a config imports every environment for its schema
        import subprocess
        from multiprocessing.connection import Connection

        worker_stdin, requests = os.pipe()
        replies, worker_stdout = os.pipe()
        try:
            self.process = subprocess.Popen(command, stdin=worker_stdin, stdout=worker_stdout, env=environment)
        except BaseException:
            os.close(requests)
            os.close(replies)
            raise
        finally:
            os.close(worker_stdin)
            os.close(worker_stdout)
        self.requests = Connection(requests, readable=False)
        self.replies = Connection(replies, writable=False)

    def close_pipes(self) -> None:
        self.requests.close()
        self.replies.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self.close_pipes()


class BoundedPool:
    """Worker processes that run `target(*args)`, with a hard time bound per call: a worker still busy after
    `timeout_s` is killed, and a new one is started when next needed. Calls may come from any thread, and from a
    forked child, which starts workers of its own.

    A worker is a plain `python -m rlexp.envs.math_worker` process, not a multiprocessing child: it never runs
    the caller's __main__, so scripts without a main guard and interactive sessions can score. `target` and
    `warm` must therefore be importable functions of a module."""

    START_TIMEOUT_S = 120.0
    RETRY_START_AFTER_S = 30.0  # after a failed start, calls answer "unavailable" at once for this long

    def __init__(self, target: Callable, workers: int, timeout_s: float, warm: Optional[Callable] = None):
        self.timeout_s = timeout_s
        self.command = [sys.executable, "-P", "-m", "rlexp.envs.math_worker", _importable_name(target)]
        if warm is not None:
            self.command.append(_importable_name(warm))
        self.workers = workers
        self.start_failure: Optional[tuple[float, str]] = None  # (when, why) of the last failed start
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.idle: queue.Queue = queue.Queue()
        self.alive: set[Worker] = set()  # idle or busy
        self.started = 0  # workers alive or starting

    def forget_inherited_workers(self) -> None:
        """In a forked child: the workers belong to the parent. Close this copy of their pipes (so that they
        still see the parent close its own) and start afresh; a lock held at the fork is dropped too."""
        inherited = list(self.alive)
        self._reset()
        for worker in inherited:
            worker.close_pipes()

    def _environment(self) -> dict[str, str]:
        # the caller's import path, so that the worker finds rlexp and `target` wherever the caller found them
        path = [entry or os.getcwd() for entry in sys.path if isinstance(entry, str)]
        return {**os.environ, "PYTHONPATH": os.pathsep.join(path), **WORKER_ENVIRONMENT}

    def _start(self) -> Worker:
        if self.start_failure and time.monotonic() - self.start_failure[0] < self.RETRY_START_AFTER_S:
            raise RuntimeError(self.start_failure[1])
        try:
            worker = Worker(self.command, self._environment())
        except Exception as exc:  # noqa: BLE001 - no Python to run (OSError), an empty sys.executable, ...
            why = f"a verifier worker could not be run ({type(exc).__name__}: {exc})"
            self.start_failure = (time.monotonic(), why)
            raise RuntimeError(why) from None
        with self.lock:
            self.alive.add(worker)
        try:
            hello = worker.replies.recv() if worker.replies.poll(self.START_TIMEOUT_S) else "no answer"
        except (EOFError, OSError):
            hello = "no answer"
        if hello != "ready":
            worker.kill()
            with self.lock:
                self.alive.discard(worker)
            reason = hello[1] if isinstance(hello, tuple) else f"{hello} in {self.START_TIMEOUT_S:.0f} s"
            why = f"a verifier worker did not start (exit code {worker.process.returncode}): {reason}"
            self.start_failure = (time.monotonic(), why)
            raise RuntimeError(why)
        self.start_failure = None
        return worker

    def _take(self) -> Worker:
        while True:
            with self.lock:
                try:
                    return self.idle.get_nowait()
                except queue.Empty:
                    start_new = self.started < self.workers
                    if start_new:
                        self.started += 1
            if start_new:
                try:
                    return self._start()
                except BaseException:
                    with self.lock:
                        self.started -= 1
                    raise
            try:
                return self.idle.get(timeout=0.1)
            except queue.Empty:
                continue  # a worker may have been retired meanwhile: this thread may start one

    def _retire(self, worker: Worker) -> None:
        worker.kill()
        with self.lock:
            self.alive.discard(worker)
            self.started -= 1

    def call(self, *args) -> tuple[str, Any]:
        """("ok", result); ("timeout", None): killed at `timeout_s`; ("crashed", None): the worker died;
        ("unavailable", why): no worker could be started."""
        try:
            worker = self._take()
        except RuntimeError as exc:
            return "unavailable", str(exc)
        try:
            worker.requests.send(args)
            if worker.replies.poll(self.timeout_s):
                result = worker.replies.recv()
                self.idle.put(worker)
                return "ok", result
            status = "timeout"
        except (EOFError, OSError):
            status = "crashed"
        self._retire(worker)
        return status, None

    def map(self, calls: list[tuple]) -> list[tuple[str, Any]]:
        if len(calls) <= 1 or self.workers == 1:
            return [self.call(*args) for args in calls]
        try:
            with concurrent.futures.ThreadPoolExecutor(min(self.workers, len(calls))) as threads:
                return list(threads.map(lambda args: self.call(*args), calls))
        except RuntimeError:  # no new threads (out of them, or the interpreter is exiting): one at a time
            return [self.call(*args) for args in calls]

    def close(self) -> None:
        while not self.idle.empty():
            self._retire(self.idle.get())


_POOLS: "weakref.WeakSet[BoundedPool]" = weakref.WeakSet()


def _forget_inherited_workers() -> None:
    for pool in list(_POOLS):
        pool.forget_inherited_workers()


os.register_at_fork(after_in_child=_forget_inherited_workers)


# -- procedural problems --------------------------------------------------------------------------------------------


def latex_number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


def _arithmetic(rng: random.Random, d: int) -> tuple[str, str, Fraction]:
    hi = 10 ** min(d, 4)
    a, b, c = (rng.randint(2, hi) for _ in range(3))
    op1, op2 = rng.choice("+-*"), rng.choice("+-")
    expression = f"({a} {op1} {b}) {op2} {c}" if d > 1 else f"{a} {op1} {b}"
    inner = {"+": a + b, "-": a - b, "*": a * b}[op1]
    value = inner if d == 1 else (inner + c if op2 == "+" else inner - c)
    work = f"First {a} {op1} {b} = {inner}." + ("" if d == 1 else f" Then {inner} {op2} {c} = {value}.")
    shown = expression.replace("*", "\\times")
    return f"Compute ${shown}$.", work, Fraction(value)


def _fractions(rng: random.Random, d: int) -> tuple[str, str, Fraction]:
    hi = 3 + 3 * d
    x = Fraction(rng.randint(1, hi), rng.randint(2, hi))
    y = Fraction(rng.randint(1, hi), rng.randint(2, hi))
    op = rng.choice("+-*" if d > 2 else "+-")
    value = {"+": x + y, "-": x - y, "*": x * y}[op]
    shown = {"+": "+", "-": "-", "*": "\\times"}[op]
    problem = f"Compute ${latex_number(x)} {shown} {latex_number(y)}$ and write the result as a fraction in lowest terms."
    return problem, f"Bring both to a common denominator and simplify: the result is ${latex_number(value)}$.", value


def _linear(rng: random.Random, d: int) -> tuple[str, str, Fraction]:
    hi = 5 * d
    a = rng.choice([k for k in range(-hi, hi + 1) if k not in (0, 1)])
    x = Fraction(rng.randint(-hi, hi), 1 if d < 3 else rng.randint(1, 3))
    b = rng.randint(-hi * 3, hi * 3)
    c = a * x + b
    if c.denominator != 1:
        x, c = Fraction(round(c) - b, a), Fraction(round(c))
    problem = f"Solve for $x$: ${a}x {'+' if b >= 0 else '-'} {abs(b)} = {c}$."
    return problem, f"Subtract {b} from both sides: ${a}x = {c - b}$, so $x = {latex_number(x)}$.", x


def _gcd_lcm(rng: random.Random, d: int) -> tuple[str, str, Fraction]:
    base = rng.randint(2, 3 + 2 * d)
    a, b = base * rng.randint(2, 5 * d), base * rng.randint(2, 5 * d)
    if rng.random() < 0.5:
        g = pymath.gcd(a, b)
        return (
            f"What is the greatest common divisor of {a} and {b}?",
            f"By the Euclidean algorithm, gcd({a}, {b}) = {g}.",
            Fraction(g),
        )
    m = a * b // pymath.gcd(a, b)
    return f"What is the least common multiple of {a} and {b}?", f"lcm = {a} * {b} / gcd = {m}.", Fraction(m)


def _remainder(rng: random.Random, d: int) -> tuple[str, str, Fraction]:
    base, exponent, modulus = rng.randint(2, 9), rng.randint(2, 4 + 4 * d), rng.randint(3, 7 + 3 * d)
    value = pow(base, exponent, modulus)
    problem = f"What is the remainder when ${base}^{{{exponent}}}$ is divided by {modulus}?"
    return problem, f"Reducing powers of {base} modulo {modulus} step by step gives {value}.", Fraction(value)


def _counting(rng: random.Random, d: int) -> tuple[str, str, Fraction]:
    n = rng.randint(4, 6 + 2 * d)
    k = rng.randint(2, min(n - 1, 2 + d))
    if rng.random() < 0.5:
        value = pymath.comb(n, k)
        problem = f"In how many ways can a committee of {k} people be chosen from {n} people?"
        return problem, f"$\\binom{{{n}}}{{{k}}} = {value}$.", Fraction(value)
    value = pymath.perm(n, k)
    problem = f"In how many ways can {k} different prizes be given to {k} of {n} people, at most one prize each?"
    return problem, f"${n} \\cdot {n - 1} \\cdots {n - k + 1} = {value}$.", Fraction(value)


_NAMES = ("Ava", "Ben", "Chloe", "Dev", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas")
_ITEMS = ("notebooks", "apples", "tickets", "pencils", "stamps", "muffins")


def _word(rng: random.Random, d: int) -> tuple[str, str, Fraction]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    kind = rng.randrange(4)
    if kind == 0:
        count, price, paid = rng.randint(2, 4 + 3 * d), rng.randint(2, 5 + 5 * d), 0
        total = count * price
        paid = total + rng.randint(1, 10 * d)
        value = paid - total
        problem = (
            f"{name} buys {count} {item} at ${price} each and pays with ${paid}. How much change, in dollars, does {name} get?"
        )
        work = f"The {item} cost {count} * {price} = {total} dollars, so the change is {paid} - {total} = {value}."
    elif kind == 1:
        start, percent = rng.randint(2, 10 * d) * 20, rng.choice([5, 10, 15, 20, 25, 40, 50])
        value = start * percent // 100
        problem = f"A shop has {start} {item} and sells {percent}% of them. How many {item} did it sell?"
        work = f"{percent}% of {start} is {start} * {percent} / 100 = {value}."
    elif kind == 2:
        per_box, boxes, extra = rng.randint(3, 6 + d), rng.randint(2, 3 + 2 * d), rng.randint(0, 5)
        value = per_box * boxes + extra
        problem = f"{name} packs {per_box} {item} in each of {boxes} boxes and has {extra} left over. How many {item} were there?"
        work = f"{per_box} * {boxes} = {per_box * boxes}, plus {extra} left over makes {value}."
    else:
        rate, hours, break_hours = rng.randint(3, 5 + 4 * d), rng.randint(3, 4 + d), rng.randint(1, 2)
        value = rate * (hours - break_hours)
        problem = (
            f"{name} makes {rate} {item} per hour and works for {hours} hours, "
            f"but spends {break_hours} of those hours on a break. How many {item} does {name} make?"
        )
        work = f"{name} works {hours} - {break_hours} = {hours - break_hours} hours, making {rate} * {hours - break_hours} = {value}."
    return problem, work, Fraction(value)


GENERATORS: dict[str, Callable[[random.Random, int], tuple[str, str, Fraction]]] = {
    "arithmetic": _arithmetic,
    "fractions": _fractions,
    "linear": _linear,
    "gcd_lcm": _gcd_lcm,
    "remainder": _remainder,
    "counting": _counting,
    "word": _word,
}


def procedural_problem(seed: int, difficulty: int, kind: str) -> dict:
    """One problem, a pure function of its arguments: {problem, answer (LaTeX), solution (worked, boxed)}."""
    rng = random.Random(f"math|{kind}|{difficulty}|{seed}")
    problem, work, value = GENERATORS[kind](rng, difficulty)
    answer = latex_number(value)
    return {"problem": problem, "answer": answer, "solution": f"{work} The answer is $\\boxed{{{answer}}}$."}


# -- hub rows -------------------------------------------------------------------------------------------------------


def _gsm8k_row(raw: dict) -> dict:
    worked, _, final = raw["answer"].rpartition("####")
    gold = final.strip().replace(",", "")
    worked = re.sub(r"<<[^>]*>>", "", worked).strip()
    return {"problem": raw["question"], "answer": gold, "solution": f"{worked}\nThe answer is $\\boxed{{{gold}}}$."}


def _amc_answer(value: Any) -> str:
    """AMC answers are floats in the hub copy: 70.0 must reach the parser as 70."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def normalise_hub_row(name: str, raw: dict) -> dict:
    """A hub row, whatever its dataset's column names, as {problem, answer, solution, level, subject, id}."""
    if name == "gsm8k":
        row = _gsm8k_row(raw)
        return {**row, "level": "", "subject": "", "id": ""}
    problem = raw.get("problem", raw.get("question", ""))
    if name == "math":
        answer = last_boxed_in_solution(raw.get("solution", "")) or ""
    else:
        answer = _amc_answer(raw.get("answer", raw.get("Answer", "")))
    level = raw.get("level", "")
    level = f"Level {level}" if isinstance(level, int) else str(level or "")
    return {
        "problem": problem,
        "answer": answer,
        "solution": raw.get("solution", "") or "",
        "level": level,
        "subject": str(raw.get("type", raw.get("subject", "")) or ""),
        "id": str(raw.get("unique_id", raw.get("id", "")) or ""),
    }


def load_hub(name: str, split: str) -> list[dict]:
    """The normalised rows of hub source `name`'s training split ("train") or its evaluation split (any other).
    Rows without a gold answer are left out: no completion could be scored against them."""
    repo, config, train_split, eval_split = HUB[name]
    hub_split = train_split if split == "train" else eval_split
    if hub_split is None and split == "train":
        raise ConfigError(f"env.source={name} is for evaluation only; train on gsm8k, math, deepscaler or procedural")
    if hub_split is None:
        evaluation_sets = ", ".join(n for n, entry in HUB.items() if entry[3] is not None)
        raise ConfigError(f"env.source={name} has no test split: evaluate on others, eval.splits=[...] of {evaluation_sets}")
    try:
        configs = config if isinstance(config, tuple) else (config,)
        import datasets

        raws = []
        for cfg in configs:
            raws += list(datasets.load_dataset(repo, cfg, split=hub_split))
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one clear line
        raise ConfigError(
            f"env.source={name}: could not load {repo} ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
            "offline, use env.source=procedural or a local .jsonl in MATH-500's format"
        ) from None
    rows = [normalise_hub_row(name, raw) for raw in raws]
    kept = [row for row in rows if row["answer"].strip()]
    if len(kept) < len(rows):
        log.warning("math: %s: left out %d of %d rows without a gold answer", name, len(rows) - len(kept), len(rows))
    return kept


# -- the environment ------------------------------------------------------------------------------------------------


@register("math")
@dataclass
class Math(Env):
    """Math problems with a boxed final answer, checked by math-verify."""

    group_columns: ClassVar[tuple[str, ...]] = ("source", "level", "subject")

    # `source` was `dataset`, which clashed with the Env method dataset()
    renamed_knobs: ClassVar[dict[str, str]] = {"dataset": "source"}

    # where problems come from: procedural | gsm8k | math | deepscaler | math500 | aime24 | aime25 | amc | path/to/rows.jsonl
    source: str = "procedural"
    kinds: list = field(default_factory=list)  # procedural kinds (empty = all): arithmetic fractions linear ...
    difficulty: int = 2  # procedural: 1 (one-step, small numbers) ... 5
    # procedural training problems
    train_size: int = 2000
    # procedural evaluation problems
    eval_size: int = 200
    # seed of the procedural training problems
    seed: int = 0
    eval_seed: int = 1_000_000  # procedural eval problems come from seeds far from the training ones
    # a check that takes longer is killed and scored 0; TRL's own bounds add up to 25 s (parse the gold 10 s,
    # the answer 10 s, verify 5 s), which only pathological answers reach
    timeout_s: float = 30.0
    workers: int = 0  # verifier processes; 0 = one per core
    # a wrong answer's feedback also gives the correct one (only a self-teacher such as algo=sdpo reads it)
    reveal_answer: bool = False

    def __post_init__(self) -> None:
        if self.source not in ("procedural", *HUB) and not str(self.source).endswith((".jsonl", ".json")):
            raise ValueError(f"source must be procedural, {', '.join(HUB)}, or a path to a .jsonl file; got {self.source!r}")
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise ValueError(f"kinds must be among {', '.join(KINDS)}; got {bad}")
        if not isinstance(self.difficulty, int) or not 1 <= self.difficulty <= 5:
            raise ValueError(f"difficulty must be an integer from 1 to 5; got {self.difficulty!r}")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if not isinstance(self.reveal_answer, bool):
            raise ValueError(f"reveal_answer must be true or false; got {self.reveal_answer!r}")
        self.kinds = list(self.kinds)
        self._rows: dict[str, list[dict]] = {}
        self._pool: Optional[BoundedPool] = None
        self._bad_golds: set[str] = set()
        self._said_unavailable = False

    def __repr__(self) -> str:
        return f"Math({', '.join(f'{k}={v!r}' for k, v in self.knobs().items())})"

    def eval_splits(self) -> list[str]:
        if self.source in HUB and HUB[self.source][3] is None:
            return ["math500"]  # a training-only source: the usual held-out competition set
        return ["test"]

    # -- rows ----------------------------------------------------------------------------------------------------

    def _problems(self, split: str) -> list[dict]:
        if self.source == "procedural":
            kinds = self.kinds or list(KINDS)
            size, base = (self.train_size, self.seed) if split == "train" else (self.eval_size, self.eval_seed)
            out = []
            for i in range(size):
                kind = kinds[i % len(kinds)]
                p = procedural_problem(base + i, self.difficulty, kind)
                out.append({**p, "level": f"Level {self.difficulty}", "subject": kind, "id": f"{kind}-{base + i}"})
            return out
        if split in HUB:  # another source's evaluation set, named in eval.splits
            return load_hub(split, "test")
        if self.source in HUB:
            return load_hub(self.source, split)
        path = Path(self.source).expanduser()
        if not path.exists():
            raise ConfigError(f"env.source: no such file {path}")
        with path.open() as f:
            return [normalise_hub_row("file", json.loads(line)) for line in f if line.strip()]

    def _split_rows(self, split: str) -> list[dict]:
        if split not in ("train", "test", *HUB):
            raise ValueError(f"split must be 'train', 'test' or a hub source's evaluation set ({', '.join(HUB)}); got {split!r}")
        if split not in self._rows:
            if split in HUB:
                source = split
            else:
                source = self.source if self.source in ("procedural", *HUB) else Path(self.source).stem
            rows = []
            for p in self._problems(split):
                rows.append(
                    {
                        "prompt": [{"role": "user", "content": PROMPT.format(problem=p["problem"])}],
                        # TRL's accuracy_reward reads the gold from `solution`: the normalised answer, wrapped
                        "solution": f"${p['answer']}$",
                        "gold_raw": p["answer"],
                        "reference_solution": p["solution"],
                        "source": source,
                        "level": p["level"],
                        "subject": p["subject"],
                        "id": p["id"],
                    }
                )
            if not rows:
                raise ConfigError(f"env=math: {self.source} has no {split} problems")
            self._rows[split] = rows
        return self._rows[split]

    def dataset(self, split: str) -> datasets.Dataset:
        return as_dataset(self._split_rows(split))

    def demonstrations(self, split: str) -> datasets.Dataset:
        rows = [r for r in self._split_rows(split) if "\\boxed" in r["reference_solution"]]
        if not rows:
            raise ConfigError(
                f"env=math: {self.source} has no worked solutions to imitate; use env.source=procedural, gsm8k or math"
            )
        return as_dataset([{"messages": r["prompt"] + [{"role": "assistant", "content": r["reference_solution"]}]} for r in rows])

    # -- scoring -------------------------------------------------------------------------------------------------

    @property
    def pool(self) -> BoundedPool:
        if self._pool is None:
            self._pool = BoundedPool(check_answer, self.workers or os.cpu_count() or 1, self.timeout_s, warm=warm_checker)
        return self._pool

    def score(self, completion: str, row: dict) -> Score:
        return self.score_batch([completion], [row])[0]

    def score_batch(self, completions: list[str], rows: list[dict]) -> list[Score]:
        scores: list[Optional[Score]] = [None] * len(completions)
        calls, owners = [], []
        for i, (completion, row) in enumerate(zip(completions, rows)):
            text = completion if isinstance(completion, str) else ""
            boxed, why = extract_boxed(text)
            if boxed is None:
                scores[i] = Score(0.0, False, FORMAT_FEEDBACK, {"category": "format", "reason": why, "parsed": None})
            elif too_costly(boxed) or too_costly(row["gold_raw"]):
                correct = _squash(boxed) == _squash(row["gold_raw"])
                scores[i] = self._result(1.0 if correct else 0.0, boxed, "string_match")
            else:
                calls.append((row["solution"], boxed))
                owners.append(i)
        for i, (gold, boxed), (status, outcome) in zip(owners, calls, self.pool.map(calls)):
            if status == "crashed":  # a worker can die for reasons of its own: one more try
                status, outcome = self.pool.call(gold, boxed)
            if status == "timeout":  # the answer kept math-verify busy past every bound
                scores[i] = Score(
                    0.0, False, WRONG_FEEDBACK, {"category": "verify_timeout", "reason": "verify_timeout", "parsed": boxed[:200]}
                )
            elif status != "ok":  # not the answer's fault: TRL leaves the sample out
                if status != "unavailable":
                    log.warning("math: could not check an answer (%s)", status)
                elif not self._said_unavailable:  # once: it would repeat for every answer
                    self._said_unavailable = True
                    log.error("math: %s; answers get reward None until a worker starts", outcome)
                reason = outcome if status == "unavailable" else status
                scores[i] = Score(None, False, "", {"category": "verifier_" + status, "reason": reason, "parsed": boxed[:200]})
            elif outcome["reward"] is None:
                if gold not in self._bad_golds:
                    self._bad_golds.add(gold)
                    log.warning(
                        "math: gold answer %r does not parse (%d so far); its samples get reward None", gold, len(self._bad_golds)
                    )
                scores[i] = Score(
                    None, False, "", {"category": "gold_unparseable", "reason": "gold_unparseable", "parsed": boxed[:200]}
                )
            elif outcome.get("answer_parsed") == "[unparseable]" or "error" in outcome:
                scores[i] = Score(
                    0.0,
                    False,
                    UNPARSABLE_FEEDBACK,
                    {"category": "unparsable", "reason": outcome.get("error", "unparsable"), "parsed": boxed[:200]},
                )
            else:
                scores[i] = self._result(outcome["reward"], boxed, "verified")
        if self.reveal_answer:
            for score, row in zip(scores, rows):
                if score is not None and score.reward is not None and not score.success:
                    score.feedback = f"{score.feedback} The correct answer is {row['gold_raw']}."
        return scores  # type: ignore[return-value]

    @staticmethod
    def _result(reward: float, boxed: str, reason: str) -> Score:
        correct = reward >= 1.0
        return Score(
            reward,
            correct,
            "" if correct else WRONG_FEEDBACK,
            {"category": "correct" if correct else "wrong", "reason": reason, "parsed": boxed[:200]},
        )

    @property
    def unparseable_golds(self) -> int:
        return len(self._bad_golds)

    def __getstate__(self):
        return {**self.__dict__, "_pool": None}
