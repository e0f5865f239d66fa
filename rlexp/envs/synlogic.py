"""SynLogic: logic puzzles with verifiable answers (shared/specs/synlogic.md).

Eight task families (spec 5.1; generators, prompts and verifiers in `rlexp/envs/synlogic_tasks.py`): game_of_24,
cryptarithm, sudoku, futoshiki, kukurasu, survo, dyck_language, boolean_expressions. Puzzles come from
- `source=procedural` (default, offline): our seeded generators at one `difficulty` (1..10), the families taken in
  turn; training rows never repeat a test puzzle;
- `source=hub`: `MiniMaxAI/SynLogic` (`subset` easy | hard; train -> its train split, test -> validation). Each row's
  `extra_info.game_data_str` is mapped onto our puzzle format and scored by our verifier; rows of other families, or
  whose data we cannot map or whose stored answer fails our verifier, are skipped and counted in the log.

Scoring (spec 4.2): the answer is the content of the last `<answer>...</answer>` after the last `</think>`;
`format_ok` is the spec's layout `^\\s*(<think>.*?</think>)?\\s*<answer>.*?</answer>\\s*$` (think block required
with `require_think`; a completion that starts inside a think block the chat template opened is accepted).
`reward_mode=synlogic`: 1 iff format_ok and the verifier passes; `accuracy`: the verifier alone. Feedback is one
reason that never shows the solution.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import datasets

from rlexp.envs import register
from rlexp.envs.base import Env, Score
from rlexp.envs.synlogic_tasks import (
    FAMILIES, LABELS, MAX_ANSWER_CHARS, MAX_DIFFICULTY, THINK, Verdict, find_expression, generate, latin_search,
    render_prompt, verify,
)
from rlexp.errors import ConfigError

log = logging.getLogger(__name__)

HUB_REPO = "MiniMaxAI/SynLogic"
SUBSETS = ("easy", "hard")
SOURCES = ("procedural", "hub")
REWARD_MODES = ("synlogic", "accuracy")
HUB_SPLITS = {"train": "train", "test": "validation"}
_MAX_DEDUP_TRIES = 20

# -------------------------------------------------------------------------------------------------------------
# Completion parsing (spec 4.2)

_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"
_THINK_THEN_ANSWER = re.compile(r"</think>\s*<answer>")


def format_ok(text: str, require_think: bool = False) -> bool:
    """The spec's layout regex, checked in linear time (a regex with two lazy groups is quadratic on hostile text)."""
    t = text.strip()
    if not t.endswith(_ANSWER_CLOSE):
        return False
    last = len(t) - len(_ANSWER_CLOSE)  # where the final </answer> starts
    if t.startswith(_ANSWER_OPEN) and last >= len(_ANSWER_OPEN):
        return not require_think
    if t.startswith(_THINK_OPEN):
        match = _THINK_THEN_ANSWER.search(t, len(_THINK_OPEN))
    elif _THINK_OPEN not in t:  # the chat template opened the think block
        match = _THINK_THEN_ANSWER.search(t)
    else:
        return False
    return match is not None and match.end() <= last


def extract_answer(text: str) -> tuple[Optional[str], str]:
    """(content of the last closed <answer> block after the last </think>, or None with the reason)."""
    cut = text.rfind(_THINK_CLOSE)
    if cut >= 0:
        region = text[cut + len(_THINK_CLOSE):]
    elif _THINK_OPEN in text:
        return None, "no <answer> tag after the reasoning: <think> is never closed"
    else:
        region = text
    last, pos = None, 0
    while True:  # findall(<answer>(.*?)</answer>) semantics, linear
        start = region.find(_ANSWER_OPEN, pos)
        if start < 0:
            break
        end = region.find(_ANSWER_CLOSE, start + len(_ANSWER_OPEN))
        if end < 0:
            break
        last, pos = region[start + len(_ANSWER_OPEN):end], end + len(_ANSWER_CLOSE)
    if last is not None:
        return last, ""
    if _ANSWER_OPEN in region:
        return None, "the <answer> tag is never closed"
    if cut >= 0 and _ANSWER_OPEN in text[:cut]:
        return None, "no <answer> tag after </think> (an answer inside <think> does not count)"
    return None, "no <answer> tag found"


def _completion_text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):  # chat shape: the last message's content
        last = completion[-1] if completion else {}
        return _completion_text(last.get("content", "") if isinstance(last, dict) else last)
    return "" if completion is None else str(completion)


def _printable(text: Optional[str], limit: int = 256) -> Optional[str]:
    # lone surrogates would break JSON/UTF-8 loggers
    return None if text is None else text[:limit].encode("utf-8", "replace").decode("utf-8")


def _row_seed(*parts: Any) -> int:
    """A 63-bit seed from the parts (sha256: the same in every process, unlike hash())."""
    key = "|".join(str(p) for p in ("synlogic",) + parts)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


# -------------------------------------------------------------------------------------------------------------
# Hub rows (spec 3): extra_info.game_data_str -> our puzzle format. The metadata keys follow SynLogic's generators
# (Data(question, answer, difficulty, metadata)); anything that does not fit is skipped, never guessed.


class _Skip(Exception):
    pass


def _need(cond: bool, why: str) -> None:
    if not cond:
        raise _Skip(why)


def _as_obj(value: Any) -> Any:
    """A dict/list field that may arrive as JSON text (or a Python repr of tuples)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return json.loads(text)
        except ValueError:
            return json.loads(text.replace("(", "[").replace(")", "]").replace("'", '"'))
    return value


def _int(v: Any) -> int:
    if isinstance(v, bool):
        raise _Skip("boolean where a number belongs")
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and re.fullmatch(r"-?[0-9]{1,9}", v.strip()):
        return int(v)
    _need(isinstance(v, int), "not an integer")
    return v


def _square(grid: Any, n: Optional[int] = None, blank=("X", "x", "_", ".", "", None)) -> list[list[int]]:
    grid = _as_obj(grid)
    _need(isinstance(grid, list) and grid and all(isinstance(r, list) for r in grid), "grid is not a list of rows")
    n = n or len(grid)
    _need(len(grid) == n and all(len(r) == n for r in grid), "grid is not square")
    return [[0 if v in blank else _int(v) for v in row] for row in grid]


def _map_game_of_24(md: dict, data: dict) -> tuple[dict, str]:
    numbers = sorted(_int(v) for v in md["numbers"])
    _need(2 <= len(numbers) <= 6 and all(0 < v <= 10_000 for v in numbers), "numbers out of range")
    target = _int(md.get("result", 24))
    ops = md.get("operators") or list("+-*/")
    _need(all(op in "+-*/" and len(op) == 1 for op in ops), "unknown operator")
    ops = "".join(op for op in "+-*/" if op in ops)
    expr = find_expression(numbers, target, ops)
    _need(expr is not None, "no solution found")
    return {"numbers": numbers, "target": target, "operators": ops}, expr


def _map_cryptarithm(md: dict, data: dict) -> tuple[dict, str]:
    words = [str(w) for w in md["letter_words"]]
    ops = [str(op) for op in md["operators"]]
    _need(len(words) >= 3 and len(ops) == len(words) - 2, "words and operators do not fit")
    _need(all(re.fullmatch(r"[A-Z]{1,12}", w) for w in words), "words are not capital letters")
    _need(all(op in ("+", "-", "*") for op in ops), "unknown operator")
    puzzle = {"words": words[:-1], "operators": ops, "result": words[-1]}
    numbers = md.get("numbers")
    if isinstance(numbers, list) and len(numbers) == len(words):
        values = [str(_int(v)) for v in numbers]
        reference = values[0] + "".join(f" {op} {v}" for op, v in zip(ops, values[1:-1])) + f" = {values[-1]}"
    else:
        reference = str(data.get("answer", ""))
    return puzzle, reference


def _map_sudoku(md: dict, data: dict) -> tuple[dict, str]:
    grid = _square(md["original_sudoku"])
    n = len(grid)
    _need(n in (4, 6, 9), "unsupported sudoku size")
    box = {4: [2, 2], 6: [2, 3], 9: [3, 3]}[n]
    solution = md.get("complete_sudoku")
    if solution is not None:
        solution = _square(solution, n)
    else:
        found = latin_search([v for row in grid for v in row], n, tuple(box), limit=1)
        _need(bool(found), "no solution found")
        solution = [found[0][i * n:(i + 1) * n] for i in range(n)]
    return {"size": n, "box": box, "grid": grid}, json.dumps(solution)


def _map_futoshiki(md: dict, data: dict) -> tuple[dict, str]:
    n = _int(md["grid_size"])
    _need(3 <= n <= 9, "unsupported futoshiki size")
    solution = _square(data.get("answer"), n)
    grid = [[0] * n for _ in range(n)]
    for coord in _as_obj(md.get("prefilled_coords") or []):
        r, c = (_int(v) for v in coord)
        grid[r][c] = solution[r][c]
    constraints = []
    for item in _as_obj(md.get("constraints") or []):
        (r1, c1), (r2, c2), op = item
        r1, c1, r2, c2 = (_int(v) for v in (r1, c1, r2, c2))
        _need(op in ("<", ">") and all(0 <= v < n for v in (r1, c1, r2, c2)), "bad inequality")
        constraints.append([r1, c1, r2, c2, op])
    return {"size": n, "grid": grid, "constraints": constraints}, json.dumps(solution)


def _map_kukurasu(md: dict, data: dict) -> tuple[dict, str]:
    rows = [_int(v) for v in md["row_sums"]]
    cols = [_int(v) for v in md["col_sums"]]
    _need(1 <= len(rows) <= 12 and 1 <= len(cols) <= 12, "unsupported kukurasu size")
    solution = _as_obj(md.get("solution"))
    _need(isinstance(solution, list) and len(solution) == len(rows), "no solution grid")
    grid = [[1 if str(v).strip() == "1" else 0 for v in row] for row in solution]
    puzzle = {"rows": len(rows), "cols": len(cols), "row_sums": rows, "col_sums": cols}
    return puzzle, json.dumps(grid)


def _map_survo(md: dict, data: dict) -> tuple[dict, str]:
    grid = _square(md["original_matrix"])
    n = len(grid)
    _need(3 <= n <= 12, "unsupported survo size")
    candidates = sorted(_int(v) for v in md["candidate_numbers"])
    solution = _square(md["filled_matrix"], n)
    return {"size": n, "grid": grid, "candidates": candidates}, json.dumps(solution)


def _map_dyck(md: dict, data: dict) -> tuple[dict, str]:
    prefix = "".join(str(md["question_sequence"]).split())
    full = "".join(str(md.get("full_sequence") or data.get("answer") or "").split())
    _need(bool(prefix) and all(ch in "()[]{}<>" for ch in prefix), "prefix is not brackets")
    n_types = max(i + 1 for i, pair in enumerate(("()", "[]", "{}", "<>")) if set(pair) & set(prefix + full))
    return {"prefix": prefix, "n_types": n_types}, full


_OPTION = re.compile(r"^\s*([A-H])\.\s*(.+?)\s*$", re.MULTILINE)


def _map_boolean(md: dict, data: dict) -> tuple[dict, str]:
    options = dict(_OPTION.findall(str(data.get("question", ""))))
    labels = [label for label in LABELS if label in options]
    _need(2 <= len(labels) <= 8 and labels == list(LABELS[:len(labels)]), "options not found in the question")
    answer = "".join(str(data.get("answer", "")).split()).upper()
    _need(re.fullmatch(r"[A-H](,[A-H])*", answer) is not None, "answer is not a label list")
    true = sorted(set(answer.split(",")))
    _need(set(true) <= set(labels), "answer names a missing option")
    puzzle = {"labels": labels, "options": [options[label] for label in labels], "true_labels": true}
    return puzzle, ",".join(true)


_HUB_MAPPERS = {
    "game_of_24": _map_game_of_24, "cryptarithm": _map_cryptarithm, "sudoku": _map_sudoku,
    "futoshiki": _map_futoshiki, "kukurasu": _map_kukurasu, "survo": _map_survo,
    "dyck_language": _map_dyck, "boolean_expressions": _map_boolean,
}


def map_hub_row(raw: Any) -> tuple[Optional[dict], str]:
    """One hub row as (our row fields, "") or (None, why it is skipped: "other family" | "unmappable ...")."""
    try:
        source = str(raw.get("data_source", ""))
        family = source[len("val/"):] if source.startswith("val/") else source
        if family not in FAMILIES:
            return None, "other family"
        extra = _as_obj(raw.get("extra_info"))
        _need(isinstance(extra, dict), "no extra_info")
        game_data_str = extra.get("game_data_str")
        _need(isinstance(game_data_str, str), "no game_data_str")
        data = json.loads(game_data_str)
        _need(isinstance(data, dict), "game_data_str is not an object")
        md = _as_obj(data.get("metadata") or {})
        _need(isinstance(md, dict), "metadata is not an object")
        puzzle, reference = _HUB_MAPPERS[family](md, data)
        _need(verify(family, puzzle, reference).ok, "the stored answer fails our verifier")
        difficulty = data.get("difficulty")
        index = extra.get("index")
        return {
            "task": family,
            "difficulty": difficulty if type(difficulty) is int and 1 <= difficulty <= MAX_DIFFICULTY else 0,
            "seed": index if type(index) is int and 0 <= index < 2**63 else 0,
            "puzzle": puzzle,
            "reference": reference,
            "game_data_str": game_data_str,
        }, ""
    except _Skip as exc:
        return None, f"unmappable ({exc})"
    except Exception as exc:  # noqa: BLE001 - any shape we did not foresee is a skip, never a crash
        return None, f"unmappable ({type(exc).__name__})"


def map_hub_rows(raws, families=FAMILIES) -> tuple[list[dict], Counter]:
    """Mapped rows of the wanted families, and a count of every skip reason (logged)."""
    rows, skipped = [], Counter()
    for raw in raws:
        row, why = map_hub_row(raw)
        if row is None:
            skipped[why] += 1
        elif row["task"] not in families:
            skipped["family not selected"] += 1
        else:
            rows.append(row)
    if skipped:
        log.warning("synlogic hub: kept %d rows, skipped %d (%s)", len(rows), sum(skipped.values()),
                    ", ".join(f"{why}: {k}" for why, k in skipped.most_common()))
    return rows, skipped


def load_hub_rows(subset: str, split: str) -> list[dict]:
    try:
        return list(datasets.load_dataset(HUB_REPO, subset, split=split))
    except Exception as exc:  # noqa: BLE001 - offline, missing, renamed ... all end the same way
        first = (str(exc).splitlines() or [""])[0][:200]
        raise ConfigError(
            f"env=synlogic: cannot load {HUB_REPO} ({subset}, {split}): {type(exc).__name__}: {first}; "
            "offline, use env.source=procedural"
        ) from None


# -------------------------------------------------------------------------------------------------------------
# Environment


def _check_int(knob: str, value: Any, low: Optional[int] = None, high: Optional[int] = None) -> None:
    if type(value) is int and (low is None or value >= low) and (high is None or value <= high):
        return
    need = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}" if low is not None \
        else "an integer"
    raise ValueError(f"{knob} must be {need}; got {value!r}")


def _check_choice(knob: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{knob} must be one of {', '.join(allowed)}; got {value!r}")


@register("synlogic")
@dataclass
class SynLogic(Env):
    """SynLogic logic puzzles (specs/synlogic.md): 8 families, seeded generators, constraint-checking verifiers.

    Splits: "train" (`train_size` rows from `seed`) and "test" (`eval_size` rows from `eval_seed`); row i is family
    tasks[i % len(tasks)]. Every row has `task` and `difficulty` columns; evaluation reports per task.
    """

    group_columns: ClassVar[tuple[str, ...]] = ("task",)

    tasks: list = field(default_factory=list)  # family names; empty = all 8
    difficulty: int = 3  # 1..10, see LEVELS in synlogic_tasks.py (procedural only)
    source: str = "procedural"  # procedural | hub (MiniMaxAI/SynLogic)
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
        self.tasks = [t for t in self.tasks]
        unknown = [t for t in self.tasks if t not in FAMILIES]
        if unknown:
            raise ValueError(f"tasks has unknown families {unknown}; valid: {', '.join(FAMILIES)}")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks names a family twice: {self.tasks}")
        _check_int("difficulty", self.difficulty, 1, MAX_DIFFICULTY)
        _check_choice("source", self.source, SOURCES)
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
        return list(self.tasks) or list(FAMILIES)

    def eval_splits(self) -> list[str]:
        return ["test"]

    # -- rows ----------------------------------------------------------------------------------------------------

    def _make_row(self, task: str, difficulty: int, seed: int, puzzle: dict, reference: str, source: str,
                  game_data_str: str = "") -> dict:
        return {
            "prompt": [{"role": "user", "content": render_prompt(task, puzzle)}],
            "task": task,
            "difficulty": difficulty,
            "seed": seed,
            "puzzle": json.dumps(puzzle, sort_keys=True),
            "reference": reference,
            "source": source,
            "game_data_str": game_data_str,
        }

    def _procedural(self, split: str) -> list[dict]:
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
        size = self.train_size if split == "train" else self.eval_size
        mapped, _ = map_hub_rows(load_hub_rows(self.subset, HUB_SPLITS[split]), self.families)
        return [self._make_row(r["task"], r["difficulty"], r["seed"], r["puzzle"], r["reference"], "synlogic_hub",
                               r["game_data_str"]) for r in mapped[:size]]

    def _split_rows(self, split: str) -> list[dict]:
        if split not in ("train", "test"):
            raise ValueError(f"split must be train or test; got {split!r}")
        key = (split, json.dumps(self.knobs(), sort_keys=True, default=str))
        if key not in self._rows:
            self._rows[key] = self._procedural(split) if self.source == "procedural" else self._hub(split)
        return self._rows[key]

    def dataset(self, split: str) -> datasets.Dataset:
        return datasets.Dataset.from_list(self._split_rows(split))

    def demonstrations(self, split: str) -> datasets.Dataset:
        out = []
        for row in self._split_rows(split):
            answer = f"<think>{THINK[row['task']]}</think>\n<answer>{row['reference']}</answer>"
            out.append({"messages": row["prompt"] + [{"role": "assistant", "content": answer}],
                        "task": row["task"], "difficulty": row["difficulty"]})
        return datasets.Dataset.from_list(out)

    # -- scoring -------------------------------------------------------------------------------------------------

    def score(self, completion: str, row: dict) -> Score:
        try:
            return self._score(completion, row)
        except Exception as exc:  # noqa: BLE001 - a verifier bug must not stop training: no reward, logged
            info = {"task": row.get("task") if isinstance(row, dict) else None, "difficulty": None,
                    "format_ok": False, "parsed": None, "reason": "internal verifier error", "category": "error",
                    "error": _printable(f"{type(exc).__name__}: {exc}")}
            return Score(reward=0.0, success=False, feedback="internal verifier error", info=info)

    def _score(self, completion: Any, row: dict) -> Score:
        task = row.get("task")
        puzzle = row.get("puzzle")
        try:
            puzzle = json.loads(puzzle) if isinstance(puzzle, str) else puzzle
        except ValueError:
            puzzle = None
        info = {"task": task, "difficulty": row.get("difficulty"), "format_ok": False, "parsed": None,
                "reason": "", "category": ""}
        if task not in FAMILIES or not isinstance(puzzle, dict):
            info.update(reason="the row has no valid puzzle", category="bad_row")
            return Score(reward=None, success=False, feedback="", info=info)

        text = _completion_text(completion)
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
            reason = ("format error: write <think>...</think> and then <answer>...</answer>, nothing after it"
                      if self.require_think else
                      "format error: the answer must be <answer>...</answer>, after <think>...</think> if any, "
                      "with nothing after it")
        else:
            category, reason = verdict.category, verdict.reason
        info.update(format_ok=layout_ok, parsed=_printable(answer), reason=reason, category=category)
        return Score(reward=reward, success=success, feedback=reason, info=info)


__all__ = ["SynLogic", "extract_answer", "format_ok", "load_hub_rows", "map_hub_row", "map_hub_rows"]
