"""LiveCodeBench-style code generation (arXiv 2403.07974): write a Python program, run it on tests in the sandbox.

Problems come from one of:
- `source=procedural` (default, offline): 30+ generated problems in both test styles, stdin/stdout and
  LeetCode-style functions with starter code, each with a trusted reference solution that made its outputs
  (`rlexp/envs/livecode_problems.py`); the reference solutions are the SFT demonstrations;
- `source=lcb`: the hub dataset `livecodebench/code_generation_lite` by `release` (release_v1 ... release_v6, or
  one file v1 ... v6), read as JSON-lines files (the dataset's loading script no longer runs with datasets >= 4);
- a path to a `.jsonl` file of rows in the LiveCodeBench format (a local copy, or the shipped fixture).
Rows can be limited to a contest-date window (`date_from` <= contest_date < `date_to`).

Scoring (`score_batch` runs many completions in parallel in `rlexp.sandbox`):
- the code is the last fenced block tagged python/py/python3 or untagged, after the last `</think>`;
- stdin programs get LiveCodeBench's import preamble and are compared line by line after stripping, with tokens
  that parse as numbers compared as Decimals; functional ones return JSON data compared with `==` as
  LiveCodeBench does (integers of any length exactly; a Fraction or Decimal as the number it equals);
- reward 1.0 iff every test passes (`partial_credit=true`: the fraction passed); training rows use the public
  tests plus a seeded `train_test_fraction` of the private ones, evaluation rows use all tests;
- feedback in the SDPO style (runtime error, time limit, or up to two wrong answers with input, output and
  expected), capped at 2000 characters and built only from tests the learner may see: of a hidden test, only
  its verdict.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import pickle
import re
import time
import zlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Optional

from rlexp.envs import register
from rlexp.envs.base import Env, Score, as_dataset
from rlexp.errors import ConfigError

if TYPE_CHECKING:
    import datasets

    # imported where a program runs or a knob is checked: composing a config imports every environment for its
    # schema, and the command line's quick answers (a typo, --help) should not pay for the sandbox
    from rlexp import sandbox

log = logging.getLogger(__name__)

HUB_REPO = "livecodebench/code_generation_lite"
RELEASES = {f"release_v{n}": [f"test{'' if i == 1 else i}.jsonl" for i in range(1, n + 1)] for n in range(1, 7)}
RELEASES.update({f"v{n}": [f"test{'' if n == 1 else n}.jsonl"] for n in range(1, 7)})
FIXTURE = Path(__file__).parent / "data" / "livecode_fixture.jsonl"
MAX_PRIVATE_BYTES = 1 << 30  # a decompressed private_test_cases blob may not exceed 1 GiB
TESTTYPES = ("stdin", "functional")

# -- prompts (code.md section 2) ------------------------------------------------------------------------------

LCB_SYSTEM = (
    "You are an expert Python programmer. You will be given a question (problem specification) and will generate a "
    "correct Python program that matches the specification and passes all tests."
)
LCB_FORMAT_STARTER = (
    "### Format: You will use the following starter code to write the solution to the problem and enclose your code "
    "within delimiters.\n```python\n{starter_code}\n```\n\n"
)
LCB_FORMAT_STDIN = (
    "### Format: Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on "
    "the sample inputs). Enclose your code within delimiters as follows. Ensure that when the python program runs, it "
    "reads the inputs, runs the algorithm and writes output to STDOUT.\n```python\n# YOUR CODE HERE\n```\n\n"
)
SDPO_PROMPT = (
    "You are a coding expert. You will be given a coding problem, and you need to write a correct Python program that "
    "matches the specification and passes all tests. The time limit is 1 second. You may start by outlining your "
    "thought process. In the end, please provide the complete code in a code block enclosed with ``` ```.\n\n{problem}"
)

FORMAT_FEEDBACK = "Incorrect Format: Put your code inside a ```python ... ``` block."
FEEDBACK_CAP = 2000
SHOWN_LINES, SHOWN_LINE_CHARS, SHOWN_OUTPUT_CHARS = 8, 250, 250


def lcb_prompt(question: str, starter_code: str) -> list[dict]:
    fmt = LCB_FORMAT_STARTER.format(starter_code=starter_code) if starter_code else LCB_FORMAT_STDIN
    user = f"### Question:\n{question}\n\n{fmt}### Answer: (use the provided format with backticks)\n\n"
    return [{"role": "system", "content": LCB_SYSTEM}, {"role": "user", "content": user}]


def sdpo_prompt(question: str, starter_code: str) -> list[dict]:
    problem = question
    if starter_code:
        problem += f"\n\nYour solution should have the following signature:\n```python\n{starter_code}\n```"
    return [{"role": "user", "content": SDPO_PROMPT.format(problem=problem)}]


# -- code extraction (code.md section 3) ----------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[ \t]*\r?\n(.*?)```", re.DOTALL)
_PYTHON_TAGS = ("python", "py", "python3", "")


def extract_code(completion: str) -> Optional[str]:
    """The last fenced block tagged python/py/python3 or untagged, after the last `</think>`; None if none."""
    text = completion.rsplit("</think>", 1)[-1]
    blocks = [body for tag, body in _FENCE.findall(text) if tag.lower() in _PYTHON_TAGS]
    return blocks[-1] if blocks and blocks[-1].strip() else None


# -- private tests (code.md section 1.2) ----------------------------------------------------------------------


class _NoGlobals(pickle.Unpickler):
    """Unpickles plain data only: any class or function reference (how pickles run code) is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"blocked {module}.{name}")


def decode_tests(blob: str) -> list[dict]:
    """A test list from plain JSON or LiveCodeBench's base64(zlib(pickle(json str))); ValueError when broken."""
    if not blob:
        return []
    try:
        tests = json.loads(blob)
    except ValueError:
        try:
            inflater = zlib.decompressobj()
            raw = inflater.decompress(base64.b64decode(blob, validate=False), MAX_PRIVATE_BYTES)
            if inflater.unconsumed_tail:
                raise ValueError("payload too large")
            payload = _NoGlobals(io.BytesIO(raw)).load()
        except (pickle.UnpicklingError, zlib.error, EOFError, TypeError, ValueError, IndexError, KeyError) as exc:
            raise ValueError(f"undecodable test cases ({type(exc).__name__}: {exc})") from None
        if not isinstance(payload, str):
            raise ValueError(f"unexpected payload {type(payload).__name__}") from None
        tests = json.loads(payload)
    if not isinstance(tests, list) or not all(
        isinstance(t, dict)
        and isinstance(t.get("input"), str)
        and isinstance(t.get("output"), str)
        and t.get("testtype", "stdin") in TESTTYPES
        for t in tests
    ):
        raise ValueError("test cases are not a list of {input, output, testtype}")
    return tests


# -- output comparison (code.md section 5) --------------------------------------------------------------------


def stdin_output_matches(output: str, expected: str) -> bool:
    """LiveCodeBench's rule: stripped lines equal, or their tokens equal as Decimals (1.0 == 1, no tolerance)."""
    got, want = output.strip().split("\n"), expected.strip().split("\n")
    if len(got) != len(want):
        return False
    for a, b in zip(got, want):
        a, b = a.strip(), b.strip()
        if a == b:
            continue
        ta, tb = a.split(), b.split()
        if len(ta) != len(tb):
            return False
        try:
            if not all(Decimal(x) == Decimal(y) for x, y in zip(ta, tb)):
                return False
        except (InvalidOperation, ValueError):
            return False
    return True


def _exact_int(digits: str):
    # Python refuses to turn more than 4300 digits (a process may set as few as 640) into an int, and the work grows
    # with the square of the length; a Decimal holds any number of digits exactly and compares with ints and floats
    # exactly, as an int does
    return int(digits) if len(digits) <= 640 else Decimal(digits)


def functional_output_matches(value: Optional[str], expected: str) -> bool:
    """The returned value (JSON made in the sandbox) equals the expected JSON under Python's ==, as in
    LiveCodeBench: 1 == 1.0 == True, integers of any length exactly (LiveCodeBench allows 50000 digits); nothing
    executable crosses over. The sandbox already turned Fractions and Decimals into the int or float they equal."""
    if value is None:
        return False
    try:
        return json.loads(value, parse_int=_exact_int) == json.loads(expected, parse_int=_exact_int)
    except (ValueError, RecursionError, InvalidOperation):
        return False


# -- feedback (code.md section 6.3) ---------------------------------------------------------------------------


def _clip_lines(text: str) -> str:
    lines = text.rstrip("\n").split("\n")
    shown = [line if len(line) <= SHOWN_LINE_CHARS else line[:SHOWN_LINE_CHARS] + "..." for line in lines[:SHOWN_LINES]]
    if len(lines) > SHOWN_LINES:
        shown.append(f"... ({len(lines) - SHOWN_LINES} more lines)")
    return "\n".join(shown)


def _clip(text: str) -> str:
    text = text.rstrip("\n")
    return text if len(text) <= SHOWN_OUTPUT_CHARS else text[:SHOWN_OUTPUT_CHARS] + "..."


def _error_text(error: dict) -> str:
    lines = [f"{error.get('type', 'Error')}: {error.get('message', '')}".rstrip(": ")]
    if error.get("source"):
        lines.append(f"  {error['source']}")
    if error.get("line"):
        lines.append(f"Line {error['line']} in {error.get('func') or '<module>'} (Solution.py)")
    return "\n".join(lines)


@dataclass
class _Outcome:
    """What happened on one test."""

    index: int  # position in the row's test list
    passed: bool
    result: sandbox.RunResult
    visible: bool  # may its content appear in feedback?


def format_feedback(outcomes: list[_Outcome], tests: list[dict], testtype: str) -> str:
    """SDPO's LeetCode-style feedback: first runtime error > first timeout > up to two wrong answers.

    For a hidden test only the verdict: whatever the program reports (an error's type, message, line, function or
    source line; its output) is under its control and could carry the test's input (code.md section 6.3)."""
    failed = [o for o in outcomes if not o.passed]
    if not failed:
        return ""

    def shown_input(o: _Outcome) -> str:
        return _clip_lines(tests[o.index]["input"])

    def on_hidden(verdict: str) -> str:
        return f"{verdict} on a hidden test ({sum(o.passed for o in outcomes)} of {len(tests)} tests passed)"

    errors = [o for o in failed if o.result.verdict == "runtime_error"]
    timeouts = [o for o in failed if o.result.verdict in ("timeout", "output_limit")]
    if errors:
        o = errors[0]
        error = o.result.error or {}
        if not o.visible:
            text = on_hidden("Runtime Error")
        else:
            head = "Compile Error" if error.get("type") in ("SyntaxError", "IndentationError", "TabError") else "Runtime Error"
            text = f"{head}\n{_error_text(error)}\n\nLast Executed Input\n{shown_input(o)}"
    elif timeouts:
        o = timeouts[0]
        verdict = "Time Limit Exceeded" if o.result.verdict == "timeout" else "Output Limit Exceeded"
        text = f"{verdict}\n\nLast Executed Input\n{shown_input(o)}" if o.visible else on_hidden(verdict)
    else:
        visible = sorted((o for o in failed if o.visible), key=lambda o: len(tests[o.index]["input"]))[:2]
        parts = []
        for k, o in enumerate(visible, 1):
            if testtype == "functional":
                got = o.result.value if o.result.value is not None else (o.result.unencodable or "None")
            else:
                got = o.result.stdout
            parts.append(
                f"Test Case {k}: Wrong Answer\n\nInput\n{shown_input(o)}\n\nOutput\n{_clip(got)}\n\n"
                f"Expected\n{_clip(tests[o.index]['output'])}"
            )
        text = "\n\n".join(parts) or on_hidden("Wrong Answer")
    return text if len(text) <= FEEDBACK_CAP else text[: FEEDBACK_CAP - 3] + "..."


def _stable_fraction(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


@register("livecode")
@dataclass
class LiveCode(Env):
    """Code generation judged by running the program on tests, as LiveCodeBench grades (arXiv 2403.07974)."""

    group_columns: ClassVar[tuple[str, ...]] = ("difficulty",)

    source: str = "procedural"  # procedural | lcb (the hub) | path to a .jsonl file in LiveCodeBench's format
    release: str = "release_v6"  # with source=lcb: release_v1 ... release_v6 (cumulative) or v1 ... v6 (one file)
    date_from: str = ""  # keep problems with date_from <= contest_date (ISO date; "" = no bound)
    date_to: str = ""  # ... and contest_date < date_to
    difficulties: list = field(default_factory=list)  # keep only these (easy, medium, hard); empty = all
    prompt_style: str = "lcb"  # lcb (LiveCodeBench's system + user prompt) | sdpo (SDPO's single user prompt)
    partial_credit: bool = False  # reward = fraction of tests passed instead of all-or-nothing
    train_test_fraction: float = 0.5  # private tests added to the public ones for training (SDPO: 50%, seed 0)
    time_limit: float = 6.0  # seconds per test (LiveCodeBench: 6)
    batch_timeout_s: float = 300.0  # a reward call for a whole batch never takes longer
    procedural_seed: int = 0  # seed of the procedural problems' generated tests
    min_tests: int = 10  # procedural: fewest tests per problem
    max_tests: int = 30  # procedural: most tests per problem
    # sandbox (rlexp/sandbox): auto | bwrap | namespaces | rlimit-only
    sandbox_level: str = "auto"
    require_isolation: bool = True  # refuse to run programs at rlimit-only
    workers: int = 0  # sandbox processes at once; 0 = one per core
    memory_mb: int = 2048  # address-space limit of each sandboxed program
    # a process forked for each test, instead of one per program running its tests in turn as LiveCodeBench does
    fresh_process_per_test: bool = False

    def __post_init__(self) -> None:
        if self.source not in ("procedural", "lcb") and not str(self.source).endswith((".jsonl", ".json")):
            raise ValueError(f"source must be procedural, lcb, or a path to a .jsonl file; got {self.source!r}")
        if self.source == "lcb" and self.release not in RELEASES:
            raise ValueError(f"release must be one of {', '.join(RELEASES)}; got {self.release!r}")
        if self.prompt_style not in ("lcb", "sdpo"):
            raise ValueError(f"prompt_style must be lcb or sdpo; got {self.prompt_style!r}")
        from rlexp import sandbox

        if self.sandbox_level not in ("auto",) + sandbox.LEVELS:
            raise ValueError(f"sandbox_level must be auto or one of {', '.join(sandbox.LEVELS)}; got {self.sandbox_level!r}")
        bad = [d for d in self.difficulties if d not in ("easy", "medium", "hard")]
        if bad:
            raise ValueError(f"difficulties must be among easy, medium, hard; got {bad}")
        if not 0.0 <= self.train_test_fraction <= 1.0:
            raise ValueError(f"train_test_fraction must be in [0, 1]; got {self.train_test_fraction}")
        if self.time_limit <= 0 or self.batch_timeout_s <= 0:
            raise ValueError("time_limit and batch_timeout_s must be positive")
        for knob in ("date_from", "date_to"):
            value = getattr(self, knob)
            if value and not re.fullmatch(r"\d{4}-\d{2}-\d{2}(T[\d:.]+)?", str(value)):
                raise ValueError(f"{knob} must be an ISO date like 2025-02-01; got {value!r}")
        self.difficulties = list(self.difficulties)
        self._rows: Optional[list[dict]] = None
        self._tests_cache: dict = {}
        self._sandbox: Optional[sandbox.Sandbox] = None

    # -- rows ----------------------------------------------------------------------------------------------------

    def eval_splits(self) -> list[str]:
        return ["test"]

    def _raw_rows(self) -> list[dict]:
        if self.source == "procedural":
            from rlexp.envs.livecode_problems import lcb_rows

            return lcb_rows(seed=self.procedural_seed, min_tests=self.min_tests, max_tests=self.max_tests)
        if self.source == "lcb":
            return load_hub_rows(self.release)
        path = Path(self.source).expanduser()
        if not path.exists():
            raise ConfigError(f"env.source: no such file {path}")
        with path.open() as f:
            return [json.loads(line) for line in f if line.strip()]

    def _normalised_rows(self) -> list[dict]:
        if self._rows is None:
            rows, skipped = [], 0
            for raw in self._raw_rows():
                date = str(raw.get("contest_date", ""))
                if (self.date_from and date < self.date_from) or (self.date_to and date >= self.date_to):
                    continue
                if self.difficulties and raw.get("difficulty") not in self.difficulties:
                    continue
                row = self._normalise(raw)
                if row is None:
                    skipped += 1
                else:
                    rows.append(row)
            if skipped:
                log.warning("livecode: skipped %d rows with broken public tests or metadata", skipped)
            self._rows = rows
        return self._rows

    def _normalise(self, raw: dict) -> Optional[dict]:
        try:
            public = decode_tests(raw.get("public_test_cases", "[]"))
            metadata = json.loads(raw.get("metadata") or "{}")
        except ValueError:
            return None
        testtype = public[0].get("testtype", "stdin") if public else ("functional" if raw.get("starter_code") else "stdin")
        fn_name = (metadata.get("func_name") or "") if isinstance(metadata, dict) else ""
        if testtype == "functional" and not fn_name:
            return None
        question, starter = raw.get("question_content", ""), raw.get("starter_code", "") or ""
        prompt = lcb_prompt(question, starter) if self.prompt_style == "lcb" else sdpo_prompt(question, starter)
        return {
            "prompt": prompt,
            "question_id": str(raw.get("question_id", "")),
            "question_title": raw.get("question_title", ""),
            "platform": raw.get("platform", ""),
            "difficulty": raw.get("difficulty", ""),
            "contest_date": str(raw.get("contest_date", "")),
            "starter_code": starter,
            "fn_name": fn_name,
            "testtype": testtype,
            "public_tests": json.dumps([{"input": t["input"], "output": t["output"]} for t in public]),
            # decoded lazily, once per problem: hub blobs can be large
            "private_tests": raw.get("private_test_cases", "") or "",
            "reference": raw.get("reference", "") or "",
        }

    def dataset(self, split: str) -> datasets.Dataset:
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
        rows = [dict(row, split=split) for row in self._normalised_rows()]
        if not rows:
            raise ConfigError(
                f"env=livecode: no problems left after the filters (source={self.source}, "
                f"date_from={self.date_from!r}, date_to={self.date_to!r}, difficulties={list(self.difficulties)})"
            )
        return as_dataset(rows)

    def demonstrations(self, split: str) -> datasets.Dataset:
        rows = [r for r in self._normalised_rows() if r["reference"]]
        if not rows:
            raise ConfigError(
                "env=livecode: these problems have no reference solutions to imitate (LiveCodeBench "
                "ships none); use env.source=procedural for SFT"
            )
        return as_dataset(
            [
                {"messages": r["prompt"] + [{"role": "assistant", "content": f"```python\n{r['reference'].rstrip()}\n```"}]}
                for r in rows
            ]
        )

    # -- tests -----------------------------------------------------------------------------------------------

    def tests_for(self, row: dict) -> Optional[tuple[list[dict], int]]:
        """(tests, how many of them feedback may show) for the row's split, or None if its tests are broken.

        The visible tests come first: the public ones, then in training the seeded subset of private ones."""
        public = json.loads(row["public_tests"])
        key = (row["question_id"], len(row["private_tests"]), row["private_tests"][:64])
        if key not in self._tests_cache:
            try:
                private = [{"input": t["input"], "output": t["output"]} for t in decode_tests(row["private_tests"])]
            except ValueError as exc:
                log.warning("livecode: problem %s has broken private tests (%s); it is skipped", row["question_id"], exc)
                private = None
            self._tests_cache[key] = private
        private = self._tests_cache[key]
        if private is None:
            return None
        if row.get("split", "test") == "train":
            # SDPO: train on a seeded random subset of each problem's tests
            chosen = [
                t for i, t in enumerate(private) if _stable_fraction(f"{row['question_id']}|{i}") < self.train_test_fraction
            ]
            tests = public + chosen
            return (tests, len(tests)) if tests else None
        tests = public + private
        return (tests, len(public)) if tests else None

    @property
    def sandbox(self) -> sandbox.Sandbox:
        if self._sandbox is None:
            from rlexp import sandbox

            self._sandbox = sandbox.Sandbox(
                level=self.sandbox_level,
                workers=self.workers,
                memory_mb=self.memory_mb,
                require_isolation=self.require_isolation,
                fresh_process_per_test=self.fresh_process_per_test,
            )
        return self._sandbox

    # -- scoring ---------------------------------------------------------------------------------------------

    def score(self, completion: str, row: dict) -> Score:
        return self.score_batch([completion], [row])[0]

    def score_batch(self, completions: list[str], rows: list[dict]) -> list[Score]:
        """Score many completions at once: their programs run in parallel, bounded by `batch_timeout_s`."""
        from rlexp import sandbox

        start = time.monotonic()
        scores: list[Optional[Score]] = [None] * len(completions)
        jobs, owners = [], []
        for i, (completion, row) in enumerate(zip(completions, rows)):
            try:
                prepared = self._prepare(completion, row)
            except Exception as exc:  # noqa: BLE001 - a bad row must not stop training
                prepared = Score(None, False, "", {"category": "broken", "error": f"{type(exc).__name__}: {exc}"})
            if isinstance(prepared, Score):
                scores[i] = prepared
            else:
                jobs.append(prepared)
                owners.append(i)
        if jobs:
            try:
                results = self.sandbox.run_many([job for job, _, _ in jobs], timeout_s=self.batch_timeout_s)
                level = self.sandbox.launch.level
            except sandbox.SandboxUnavailable as exc:
                raise ConfigError(f"env=livecode: {exc}") from None
            for i, (job, tests, visible), results_i in zip(owners, jobs, results):
                scores[i] = self._judge(rows[i], job, tests, visible, results_i, level)
        wall_ms = round((time.monotonic() - start) * 1000, 1)
        for s in scores:
            s.info.setdefault("batch_wall_ms", wall_ms)
        return scores  # type: ignore[return-value]

    def _prepare(self, completion: str, row: dict):
        """A Score when there is nothing to run, else (sandbox job, tests, number of visible tests)."""
        from rlexp import sandbox

        found = self.tests_for(row)
        if found is None:
            return Score(None, False, "", {"category": "broken", "status": "broken", "passed": 0, "total": 0})
        tests, visible = found
        code = extract_code(completion if isinstance(completion, str) else "")
        if code is None:
            return Score(
                0.0,
                False,
                FORMAT_FEEDBACK,
                {"category": "format", "status": "format", "passed": 0, "total": len(tests), "parse_ok": False},
            )
        functional = row["testtype"] == "functional"

        def passed(i: int, result: sandbox.RunResult) -> bool:
            if not result.ok:
                return False
            if functional:
                return functional_output_matches(result.value, tests[i]["output"])
            return stdin_output_matches(result.stdout, tests[i]["output"])

        job = sandbox.Job(
            code=code,
            inputs=[t["input"] for t in tests],
            mode="functional" if functional else "stdin",
            fn_name=row["fn_name"] or None,
            time_limit=self.time_limit,
            # 4x the expected size, at least 1 MiB (code.md section 7)
            out_caps=[max(1 << 20, 4 * len(t["output"])) for t in tests],
            stop_at_first_failure=not self.partial_credit,
            check=passed,
        )
        return job, tests, visible

    def _judge(self, row, job, tests, visible, results, level) -> Score:
        outcomes = []
        for i, result in enumerate(results):
            if result.verdict == "not_run":
                continue
            outcomes.append(_Outcome(i, job.check(i, result), result, visible=i < visible))
        n_passed = sum(o.passed for o in outcomes)
        all_passed = n_passed == len(tests)
        first_failure = next((o for o in outcomes if not o.passed), None)
        if all_passed:
            status = "pass"
        elif first_failure is None:
            status = "not_scored"  # the batch deadline came before its tests ran
        elif first_failure.result.verdict == "ok":
            status = "wrong_answer"
        else:
            status = first_failure.result.verdict  # runtime_error | timeout | output_limit | sandbox_error
        if status == "sandbox_error":
            log.warning("livecode: the sandbox failed on %s: %s", row["question_id"], first_failure.result.stderr[-300:])
        if self.partial_credit:
            reward = n_passed / len(tests)
        else:
            reward = 1.0 if all_passed else 0.0
        unjudged = status in ("sandbox_error", "not_scored")
        return Score(
            # not the program's fault: TRL leaves the sample out rather than learn from a made-up 0
            reward=None if unjudged else reward,
            success=all_passed,
            feedback="" if unjudged else format_feedback(outcomes, tests, row["testtype"]),
            info={
                "category": status,
                "status": status,
                "passed": n_passed,
                "total": len(tests),
                "first_failure": None if first_failure is None else first_failure.index,
                "wall_ms": round(sum(r.wall_s for r in results) * 1000, 1),
                "sandbox_level": level,
                "parse_ok": True,
            },
        )


def load_hub_rows(release: str) -> list[dict]:
    """LiveCodeBench rows of `release`, from the dataset's JSON-lines files (no loading script)."""
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        from huggingface_hub import hf_hub_download

        rows = []
        for filename in RELEASES[release]:
            path = hf_hub_download(HUB_REPO, filename=filename, repo_type="dataset", local_files_only=offline)
            with open(path) as f:
                rows += [json.loads(line) for line in f if line.strip()]
        return rows
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one clear line
        raise ConfigError(
            f"env.source=lcb: could not get {HUB_REPO} {release} ({type(exc).__name__}: {str(exc)[:200]}); "
            "offline, use env.source=procedural or a local .jsonl copy (env.source=/path/to/test.jsonl)"
        ) from None


__all__ = [
    "LiveCode",
    "extract_code",
    "decode_tests",
    "stdin_output_matches",
    "functional_output_matches",
    "format_feedback",
    "lcb_prompt",
    "sdpo_prompt",
    "load_hub_rows",
    "FIXTURE",
]
