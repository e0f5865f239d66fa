"""SynLogic: logic puzzles with verifiable answers (arXiv 2505.19641; the authors' code is MiniMax-AI/SynLogic).

Eight of SynLogic's task families, one module each in this package, listed in `families.py`: game_of_24,
cryptarithm, sudoku, futoshiki, kukurasu, survo, dyck_language, boolean_expressions. A family module holds its
generator, prompt, verifier, solver and the mapping of SynLogic's rows. Puzzles come from
- `source=procedural` (default, offline): our seeded generators at one `difficulty` (1..10), the families taken in
  turn; training rows never repeat a test puzzle;
- `source=hub`: `MiniMaxAI/SynLogic` (`subset` easy | hard; train -> its train split, test -> validation);
- `source=<path>`: rows in the hub's layout, offline: a `.jsonl` or `.parquet` file (rows whose `data_source` starts
  with `val/` are the test split, the others the train split), or a folder holding `train` and `validation` files.
Hub rows (`hub.py`) are mapped onto our puzzles, shown with SynLogic's own question text plus our answer
line, and scored by our verifiers.

Scoring (rlexp's own rule): the answer is the content of the last `<answer>...</answer>` after the last `</think>`;
`format_ok` is the layout `^\\s*(<think>.*?</think>)?\\s*<answer>.*?</answer>\\s*$` (think block required
with `require_think`; a completion that starts inside a think block the chat template opened is accepted).
`reward_mode=synlogic`: 1 iff format_ok and the verifier passes; `accuracy`: the verifier alone. Feedback is one
reason that never shows the solution.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from rlexp.envs import register
from rlexp.envs.base import Env, Score, as_dataset
from rlexp.envs.synlogic.common import MAX_ANSWER_CHARS, Verdict
from rlexp.envs.text import THINK_OPEN, completion_text, printable, split_think

if TYPE_CHECKING:
    import datasets

# The families (`families.py`) and the hub mapping (`hub.py`) are imported where they are used: composing a config
# imports every environment for its schema, and the command line's quick answers (a typo, --help) should not pay
# for eight puzzle generators.

SUBSETS = ("easy", "hard")
SOURCES = ("procedural", "hub")
REWARD_MODES = ("synlogic", "accuracy")
_MAX_DEDUP_TRIES = 20

# -------------------------------------------------------------------------------------------------------------
# Completion parsing

_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"
_THINK_THEN_ANSWER = re.compile(r"</think>\s*<answer>")


def format_ok(text: str, require_think: bool = False) -> bool:
    """The layout regex of the module docstring, checked in linear time (a regex with two lazy groups is quadratic
    on hostile text)."""
    t = text.strip()
    if not t.endswith(_ANSWER_CLOSE):
        return False
    last = len(t) - len(_ANSWER_CLOSE)  # where the final </answer> starts
    if t.startswith(_ANSWER_OPEN) and last >= len(_ANSWER_OPEN):
        return not require_think
    if t.startswith(THINK_OPEN):
        match = _THINK_THEN_ANSWER.search(t, len(THINK_OPEN))
    elif THINK_OPEN not in t:  # the chat template opened the think block
        match = _THINK_THEN_ANSWER.search(t)
    else:
        return False
    return match is not None and match.end() <= last


def extract_answer(text: str) -> tuple[Optional[str], str]:
    """(content of the last closed <answer> block after the last </think>, or None with the reason)."""
    reasoning, region = split_think(text)
    if reasoning is None and THINK_OPEN in text:
        return None, "no <answer> tag after the reasoning: <think> is never closed"
    last, pos = None, 0
    while True:  # findall(<answer>(.*?)</answer>) semantics, linear
        start = region.find(_ANSWER_OPEN, pos)
        if start < 0:
            break
        end = region.find(_ANSWER_CLOSE, start + len(_ANSWER_OPEN))
        if end < 0:
            break
        last, pos = region[start + len(_ANSWER_OPEN) : end], end + len(_ANSWER_CLOSE)
    if last is not None:
        return last, ""
    if _ANSWER_OPEN in region:
        return None, "the <answer> tag is never closed"
    if reasoning is not None and _ANSWER_OPEN in reasoning:
        return None, "no <answer> tag after </think> (an answer inside <think> does not count)"
    return None, "no <answer> tag found"


def _row_seed(*parts: Any) -> int:
    """A 63-bit seed from the parts (sha256: the same in every process, unlike hash())."""
    key = "|".join(str(p) for p in ("synlogic",) + parts)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


# -------------------------------------------------------------------------------------------------------------
# Environment


def _check_int(knob: str, value: Any, low: Optional[int] = None, high: Optional[int] = None) -> None:
    if type(value) is int and (low is None or value >= low) and (high is None or value <= high):
        return
    need = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}" if low is not None else "an integer"
    raise ValueError(f"{knob} must be {need}; got {value!r}")


def _check_choice(knob: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{knob} must be one of {', '.join(allowed)}; got {value!r}")


@register("synlogic")
@dataclass
class SynLogic(Env):
    """SynLogic logic puzzles: 8 families, seeded generators, constraint-checking verifiers.

    Splits: "train" (`train_size` rows from `seed`) and "test" (`eval_size` rows from `eval_seed`); row i is family
    tasks[i % len(tasks)]. Every row has `task` and `difficulty` columns; evaluation reports per task.
    """

    group_columns: ClassVar[tuple[str, ...]] = ("task",)

    tasks: list = field(default_factory=list)  # family names (or SynLogic's, e.g. mathador); empty = all 8
    difficulty: int = 3  # 1..10, see LEVELS in each family module (procedural only)
    source: str = "procedural"  # procedural | hub (MiniMaxAI/SynLogic) | path to hub-layout rows (.jsonl, .parquet)
    subset: str = "easy"  # hub subset: easy | hard
    train_size: int = 2000  # rows in "train" (hub: at most this many)
    eval_size: int = 400  # rows in "test" (hub: at most this many, from its validation split)
    seed: int = 0  # training puzzles
    eval_seed: int = 1234  # test puzzles
    reward_mode: str = "synlogic"  # synlogic (1 iff format and answer are right) | accuracy (answer only)
    require_think: bool = False  # the format needs a <think>...</think> block before <answer>

    def __post_init__(self) -> None:
        if isinstance(self.tasks, (str, bytes)) or not hasattr(self.tasks, "__iter__"):
            raise ValueError(f"tasks must be a list of family names; got {self.tasks!r}")
        from rlexp.envs.synlogic import families, hub

        unknown = [t for t in self.tasks if hub.task_family(t) is None]
        if unknown:
            raise ValueError(
                f"tasks has unknown families {unknown}; valid: {', '.join(families.FAMILIES)} "
                f"(or SynLogic's names: {', '.join(hub.TASK_ALIASES)})"
            )
        self.tasks = [hub.task_family(t) for t in self.tasks]
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks names a family twice: {self.tasks}")
        _check_int("difficulty", self.difficulty, 1, families.MAX_DIFFICULTY)
        if not (
            self.source in SOURCES
            or isinstance(self.source, str)
            and (self.source.endswith(hub.FILE_SUFFIXES) or Path(self.source).expanduser().is_dir())
        ):
            raise ValueError(
                f"source must be one of {', '.join(SOURCES)}, or a path to a .jsonl or .parquet file "
                f"(or a folder) of rows in the hub's layout; got {self.source!r}"
            )
        _check_choice("subset", self.subset, SUBSETS)
        _check_int("train_size", self.train_size, 0)
        _check_int("eval_size", self.eval_size, 0)
        _check_int("seed", self.seed)
        _check_int("eval_seed", self.eval_seed)
        _check_choice("reward_mode", self.reward_mode, REWARD_MODES)
        if not isinstance(self.require_think, bool):
            raise ValueError(f"require_think must be true or false; got {self.require_think!r}")
        self._rows: dict = {}

    @property
    def families(self) -> list[str]:
        from rlexp.envs.synlogic.families import FAMILIES

        return list(self.tasks) or list(FAMILIES)

    def eval_splits(self) -> list[str]:
        return ["test"]

    # -- rows ----------------------------------------------------------------------------------------------------

    def _make_row(
        self,
        task: str,
        difficulty: int,
        seed: int,
        puzzle: dict,
        reference: str,
        source: str,
        game_data_str: str = "",
        prompt: str = "",
    ) -> dict:
        from rlexp.envs.synlogic.families import render_prompt

        return {
            "prompt": [{"role": "user", "content": prompt or render_prompt(task, puzzle)}],
            "task": task,
            "difficulty": difficulty,
            "seed": seed,
            "puzzle": json.dumps(puzzle, sort_keys=True),
            "reference": reference,
            "source": source,
            "game_data_str": game_data_str,
        }

    def _procedural(self, split: str) -> list[dict]:
        from rlexp.envs.synlogic.families import generate

        size, base = (self.train_size, self.seed) if split == "train" else (self.eval_size, self.eval_seed)
        # training rows skip any puzzle that is also in the test split (small families repeat at low difficulty)
        held = {(r["task"], r["puzzle"]) for r in self._split_rows("test")} if split == "train" else set()
        families = self.families
        rows = []
        for i in range(size):
            task = families[i % len(families)]
            for attempt in range(_MAX_DEDUP_TRIES):
                seed = _row_seed(split, base, task, self.difficulty, i, attempt)
                made = generate(task, seed, self.difficulty)
                row = self._make_row(task, self.difficulty, seed, made.puzzle, made.reference, "ours")
                if (task, row["puzzle"]) not in held:
                    break
            rows.append(row)
        return rows

    def _hub(self, split: str) -> list[dict]:
        from rlexp.envs.synlogic.hub import HUB_SPLITS, load_file_rows, load_hub_rows, map_hub_rows

        size = self.train_size if split == "train" else self.eval_size
        raws = load_hub_rows(self.subset, HUB_SPLITS[split]) if self.source == "hub" else load_file_rows(self.source, split)
        mapped, _ = map_hub_rows(raws, self.families)
        return [
            self._make_row(
                r["task"],
                r["difficulty"],
                r["seed"],
                r["puzzle"],
                r["reference"],
                "synlogic_hub",
                r["game_data_str"],
                r["prompt"],
            )
            for r in mapped[:size]
        ]

    def _split_rows(self, split: str) -> list[dict]:
        if split not in ("train", "test"):
            raise ValueError(f"split must be train or test; got {split!r}")
        key = (split, json.dumps(self.knobs(), sort_keys=True, default=str))
        if key not in self._rows:
            self._rows[key] = self._procedural(split) if self.source == "procedural" else self._hub(split)
        return self._rows[key]

    def dataset(self, split: str) -> datasets.Dataset:
        return as_dataset(self._split_rows(split))

    def demonstrations(self, split: str) -> datasets.Dataset:
        from rlexp.envs.synlogic.families import THINK

        out = []
        for row in self._split_rows(split):
            answer = f"<think>{THINK[row['task']]}</think>\n<answer>{row['reference']}</answer>"
            out.append(
                {
                    "messages": row["prompt"] + [{"role": "assistant", "content": answer}],
                    "task": row["task"],
                    "difficulty": row["difficulty"],
                }
            )
        return as_dataset(out)

    # -- scoring -------------------------------------------------------------------------------------------------

    def score(self, completion: str, row: dict) -> Score:
        try:
            return self._score(completion, row)
        except Exception as exc:  # noqa: BLE001 - a verifier bug must not stop training: no reward, logged
            info = {
                "task": row.get("task") if isinstance(row, dict) else None,
                "difficulty": None,
                "format_ok": False,
                "parsed": None,
                "reason": "internal verifier error",
                "category": "error",
                "error": printable(f"{type(exc).__name__}: {exc}"),
            }
            return Score(reward=0.0, success=False, feedback="internal verifier error", info=info)

    def _score(self, completion: Any, row: dict) -> Score:
        from rlexp.envs.synlogic.families import FAMILIES, verify

        task = row.get("task")
        puzzle = row.get("puzzle")
        try:
            puzzle = json.loads(puzzle) if isinstance(puzzle, str) else puzzle
        except ValueError:
            puzzle = None
        info = {
            "task": task,
            "difficulty": row.get("difficulty"),
            "format_ok": False,
            "parsed": None,
            "reason": "",
            "category": "",
        }
        if task not in FAMILIES or not isinstance(puzzle, dict):
            info.update(reason="the row has no valid puzzle", category="bad_row")
            return Score(reward=None, success=False, feedback="", info=info)

        text = completion_text(completion)
        layout_ok = format_ok(text, self.require_think)
        answer, why = extract_answer(text)
        if answer is None:
            verdict = Verdict(False, "format", why)
        else:
            answer = answer.strip()
            if len(answer) > MAX_ANSWER_CHARS:
                verdict = Verdict(False, "malformed", "answer is too long")
            else:
                answer = unicodedata.normalize("NFKC", answer)  # full-width digits and brackets become ASCII
                verdict = verify(task, puzzle, answer)
        passed = verdict.ok
        reward = 1.0 if passed and (layout_ok or self.reward_mode == "accuracy") else 0.0
        success = reward >= self.success_value
        if success:
            category, reason = "correct", ""
        elif passed:
            category = "format"
            reason = (
                "format error: write <think>...</think> and then <answer>...</answer>, nothing after it"
                if self.require_think
                else "format error: the answer must be <answer>...</answer>, after <think>...</think> if any, "
                "with nothing after it"
            )
        else:
            category, reason = verdict.category, verdict.reason
        info.update(format_ok=layout_ok, parsed=printable(answer), reason=reason, category=category)
        return Score(reward=reward, success=success, feedback=reason, info=info)


__all__ = ["SynLogic", "extract_answer", "format_ok"]
