"""SynLogic: logic puzzles with verifiable answers (shared/specs/synlogic.md).

Eight task families (spec 5.1; generators, prompts and verifiers in `rlexp/envs/synlogic_tasks.py`): game_of_24,
cryptarithm, sudoku, futoshiki, kukurasu, survo, dyck_language, boolean_expressions. Puzzles come from
- `source=procedural` (default, offline): our seeded generators at one `difficulty` (1..10), the families taken in
  turn; training rows never repeat a test puzzle;
- `source=hub`: `MiniMaxAI/SynLogic` (`subset` easy | hard; train -> its train split, test -> validation);
- `source=<path>`: rows in the hub's layout, offline: a `.jsonl` or `.parquet` file (rows whose `data_source` starts
  with `val/` are the test split, the others the train split), or a folder holding `train` and `validation` files.
Hub rows (spec 2, 3): `data_source` may be any name of SynLogic's task-to-verifier table (Game of 24 is `mathador`
there); rows of the families we implement are mapped from `extra_info.game_data_str` onto our puzzle format, shown
with SynLogic's own question text plus our answer line, and scored by our verifier. The others are skipped and counted
in the log. A stored answer is only a hint: a row is kept when its puzzle has a solution (the stored answer passes
our verifier, or our solver finds one), so that a futoshiki row whose stored grid breaks its own signs is kept.

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
from pathlib import Path
from typing import Any, ClassVar, Optional

import datasets
import pyarrow.parquet as pq

from rlexp.envs import register
from rlexp.envs.base import Env, Score
from rlexp.envs.synlogic_tasks import (
    FAMILIES, LABELS, MAX_ANSWER_CHARS, MAX_DIFFICULTY, THINK, Verdict, generate, render_hub_prompt, render_prompt,
    solve, verify,
)
from rlexp.errors import ConfigError

log = logging.getLogger(__name__)

HUB_REPO = "MiniMaxAI/SynLogic"
SUBSETS = ("easy", "hard")
SOURCES = ("procedural", "hub")
REWARD_MODES = ("synlogic", "accuracy")
HUB_SPLITS = {"train": "train", "test": "validation"}
FILE_SUFFIXES = (".jsonl", ".parquet")
# every task name of SynLogic's task-to-verifier table (task2verifier.py): the names a hub row's data_source carries
SYNLOGIC_TASKS = (
    "arrow_maze", "boolean_expressions", "buggy_tables", "calcudoko", "campsite", "cipher", "cryptarithm",
    "dyck_language", "dyck_language_errors", "dyck_language_reasoning_errors", "futoshiki", "goods_exchange",
    "gpqa_diamond", "kukurasu", "math_path", "arc_agi", "arc_agi_2", "mathador", "minesweeper", "norinori",
    "number_wall", "numbrix", "object_counting", "object_properties", "operation", "skyscraper_puzzle",
    "space_reasoning", "space_reasoning_tree", "star_placement_puzzle", "sudoku", "survo", "time_sequence",
    "web_of_lies", "word_sorting", "word_sorting_mistake", "wordscapes", "zebra_puzzle",
    "bbeh_boardgame_qa", "bbeh_boolean_expressions", "bbeh_buggy_tables", "bbeh_causal_understanding",
    "bbeh_disambiguation_qa", "bbeh_dyck_languages", "bbeh_geometric_shapes", "bbeh_hyperbaton", "bbeh_linguini",
    "bbeh_movie_recommendation", "bbeh_multistep_arithmetic", "bbeh_nycc", "bbeh_object_counting",
    "bbeh_object_properties", "bbeh_sarc_triples", "bbeh_shuffled_objects", "bbeh_spatial_reasoning", "bbeh_sportqa",
    "bbeh_temporal_sequence", "bbeh_time_arithmetic", "bbeh_web_of_lies", "bbeh_word_sorting", "bbeh_zebra_puzzles",
    "bbh_boolean_expressions", "bbh_causal_judgement", "bbh_date_understanding", "bbh_disambiguation_qa",
    "bbh_dyck_languages", "bbh_formal_fallacies", "bbh_geometric_shapes", "bbh_hyperbaton",
    "bbh_logical_deduction_five_objects", "bbh_logical_deduction_seven_objects", "bbh_logical_deduction_three_objects",
    "bbh_movie_recommendation", "bbh_multistep_arithmetic_two", "bbh_navigate", "bbh_object_counting",
    "bbh_penguins_in_a_table", "bbh_reasoning_about_colored_objects", "bbh_ruin_names",
    "bbh_salient_translation_error_detection", "bbh_snarks", "bbh_sports_understanding", "bbh_temporal_sequences",
    "bbh_tracking_shuffled_objects_five_objects", "bbh_tracking_shuffled_objects_seven_objects",
    "bbh_tracking_shuffled_objects_three_objects", "bbh_web_of_lies", "bbh_word_sorting",
)
# SynLogic's names for our families, where they differ from ours (both are accepted, in rows and in env.tasks)
TASK_ALIASES = {"mathador": "game_of_24"}
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


def _map_game_of_24(md: dict, data: dict) -> tuple[dict, Optional[str]]:
    numbers = sorted(_int(v) for v in md["numbers"])
    _need(2 <= len(numbers) <= 6 and all(0 < v <= 10_000 for v in numbers), "numbers out of range")
    target = _int(md.get("result", 24))
    ops = md.get("operators") or list("+-*/")
    _need(all(op in "+-*/" and len(op) == 1 for op in ops), "unknown operator")
    ops = "".join(op for op in "+-*/" if op in ops)
    return {"numbers": numbers, "target": target, "operators": ops}, None  # SynLogic stores no answer: we solve it


def _map_cryptarithm(md: dict, data: dict) -> tuple[dict, Optional[str]]:
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


def _map_sudoku(md: dict, data: dict) -> tuple[dict, Optional[str]]:
    grid = _square(md["original_sudoku"])
    n = len(grid)
    _need(n in (4, 6, 9), "unsupported sudoku size")
    box = {4: [2, 2], 6: [2, 3], 9: [3, 3]}[n]
    solution = md.get("complete_sudoku")
    return {"size": n, "box": box, "grid": grid}, None if solution is None else json.dumps(_square(solution, n))


def _map_futoshiki(md: dict, data: dict) -> tuple[dict, Optional[str]]:
    n = _int(md["grid_size"])
    _need(3 <= n <= 9, "unsupported futoshiki size")
    solution = _square(data.get("answer"), n)  # the prefilled numbers the question shows are read from it
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


def _map_kukurasu(md: dict, data: dict) -> tuple[dict, Optional[str]]:
    rows = [_int(v) for v in md["row_sums"]]
    cols = [_int(v) for v in md["col_sums"]]
    _need(1 <= len(rows) <= 12 and 1 <= len(cols) <= 12, "unsupported kukurasu size")
    puzzle = {"rows": len(rows), "cols": len(cols), "row_sums": rows, "col_sums": cols}
    solution = _as_obj(md.get("solution"))  # SynLogic writes black cells "1" and white cells "X"
    if not isinstance(solution, list) or not all(isinstance(row, list) for row in solution):
        return puzzle, None
    return puzzle, json.dumps([[1 if str(v).strip() == "1" else 0 for v in row] for row in solution])


def _map_survo(md: dict, data: dict) -> tuple[dict, Optional[str]]:
    grid = _square(md["original_matrix"])
    n = len(grid)
    _need(3 <= n <= 12, "unsupported survo size")
    candidates = sorted(_int(v) for v in md["candidate_numbers"])
    solution = md.get("filled_matrix")
    puzzle = {"size": n, "grid": grid, "candidates": candidates}
    return puzzle, None if solution is None else json.dumps(_square(solution, n))


def _map_dyck(md: dict, data: dict) -> tuple[dict, Optional[str]]:
    prefix = "".join(str(md["question_sequence"]).split())
    full = "".join(str(md.get("full_sequence") or data.get("answer") or "").split())
    _need(bool(prefix) and all(ch in "()[]{}<>" for ch in prefix), "prefix is not brackets")
    n_types = max(i + 1 for i, pair in enumerate(("()", "[]", "{}", "<>")) if set(pair) & set(prefix + full))
    return {"prefix": prefix, "n_types": n_types}, full or None


_OPTION = re.compile(r"^\s*([A-H])\.\s*(.+?)\s*$", re.MULTILINE)


def _map_boolean(md: dict, data: dict) -> tuple[dict, Optional[str]]:
    options = dict(_OPTION.findall(str(data.get("question", ""))))
    labels = [label for label in LABELS if label in options]
    _need(2 <= len(labels) <= 8 and labels == list(LABELS[:len(labels)]), "options not found in the question")
    answer = "".join(str(data.get("answer", "")).split()).upper()
    _need(re.fullmatch(r"[A-H](,[A-H])*", answer) is not None, "answer is not a label list")
    true = sorted(set(answer.split(",")))
    _need(set(true) <= set(labels), "answer names a missing option")
    # the truth of each option is SynLogic's (its question text is what the model sees): Python's eval of its
    # options, where numbers are truth values, comparisons may be worded (also in Chinese) and / is true division
    puzzle = {"labels": labels, "options": [options[label] for label in labels], "true_labels": true}
    return puzzle, ",".join(true)


_HUB_MAPPERS = {
    "game_of_24": _map_game_of_24, "cryptarithm": _map_cryptarithm, "sudoku": _map_sudoku,
    "futoshiki": _map_futoshiki, "kukurasu": _map_kukurasu, "survo": _map_survo,
    "dyck_language": _map_dyck, "boolean_expressions": _map_boolean,
}


def task_family(name: Any) -> Optional[str]:
    """Our family for a task name (ours, or SynLogic's alias such as mathador), else None."""
    family = TASK_ALIASES.get(name, name) if isinstance(name, str) else None
    return family if family in FAMILIES else None


def _question(raw: dict, data: dict) -> str:
    """SynLogic's question text: the game data's own, else the row prompt's last message."""
    question = data.get("question")
    if not isinstance(question, str) or not question.strip():
        prompt = _as_obj(raw.get("prompt"))
        last = prompt[-1] if isinstance(prompt, list) and prompt else None
        question = last.get("content") if isinstance(last, dict) else None
    _need(isinstance(question, str) and bool(question.strip()), "no question text")
    return question


def map_hub_row(raw: Any) -> tuple[Optional[dict], str]:
    """One hub row as (our row fields, "") or (None, why it is skipped: "task not implemented" | "unknown task" |
    "unsolvable ..." | "unmappable ...")."""
    try:
        source = str(raw.get("data_source", ""))
        name = source[len("val/"):] if source.startswith("val/") else source
        family = task_family(name)
        if family is None:
            return None, "task not implemented" if name in SYNLOGIC_TASKS else "unknown task"
        extra = _as_obj(raw.get("extra_info"))
        _need(isinstance(extra, dict), "no extra_info")
        game_data_str = extra.get("game_data_str")
        _need(isinstance(game_data_str, str), "no game_data_str")
        data = json.loads(game_data_str)
        _need(isinstance(data, dict), "game_data_str is not an object")
        md = _as_obj(data.get("metadata") or {})
        _need(isinstance(md, dict), "metadata is not an object")
        puzzle, stored = _HUB_MAPPERS[family](md, data)
        question = _question(raw, data)
        # keep every solvable puzzle: the stored answer may be one of several solutions, or break its own puzzle
        # (SynLogic's futoshiki draws its signs without looking at the stored grid)
        from_solver = stored is None or not verify(family, puzzle, stored).ok
        reference = solve(family, puzzle) if from_solver else stored
        if reference is None or not verify(family, puzzle, reference).ok:
            return None, "unsolvable (our solver finds no solution)"
        difficulty = data.get("difficulty")
        index = extra.get("index")
        return {
            "task": family,
            "difficulty": difficulty if type(difficulty) is int and 1 <= difficulty <= MAX_DIFFICULTY else 0,
            "seed": index if type(index) is int and 0 <= index < 2**63 else 0,
            "puzzle": puzzle,
            "reference": reference,
            "from_solver": from_solver,
            "prompt": render_hub_prompt(family, puzzle, question),
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
    solved = Counter(row["task"] for row in rows if row["from_solver"])
    if solved:
        log.info("synlogic hub: %d kept rows store no answer, or one that breaks its own puzzle; their reference is "
                 "our solver's (%s)", sum(solved.values()), ", ".join(f"{t}: {k}" for t, k in solved.most_common()))
    return rows, skipped


def _read_rows(path: Path) -> list:
    if path.suffix == ".parquet":
        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # noqa: BLE001 - a broken file is one clear line
            raise ConfigError(f"env.source={path}: cannot read it as parquet ({type(exc).__name__})") from None
    rows = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    rows.append(None)  # counted as an unmappable row
    return rows


def _is_validation(raw: Any) -> bool:
    return isinstance(raw, dict) and str(raw.get("data_source", "")).startswith("val/")


def load_file_rows(source: str, split: str) -> list:
    """Hub-layout rows from a local mirror: a .jsonl or .parquet file, whose `val/` rows are the test split and the
    others the train split; or a folder holding `train` and `validation` .parquet or .jsonl files."""
    path = Path(source).expanduser()
    if path.is_dir():
        files = [path / f"{HUB_SPLITS[split]}{suffix}" for suffix in FILE_SUFFIXES]
        found = [f for f in files if f.is_file()]
        if not found:
            raise ConfigError(f"env.source={source}: the folder has no {' or '.join(f.name for f in files)}")
        return _read_rows(found[0])
    if not path.is_file():
        raise ConfigError(f"env.source={source}: no such file")
    rows = _read_rows(path)
    want_val = split == "test"
    rows = [r for r in rows if _is_validation(r) == want_val]
    if not rows:
        which = "validation rows (data_source val/...)" if want_val else "training rows (data_source without val/)"
        raise ConfigError(f"env.source={source}: the file has no {which}; "
                          "point env.source at a folder with train and validation files instead")
    return rows


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

    tasks: list = field(default_factory=list)  # family names (or SynLogic's, e.g. mathador); empty = all 8
    difficulty: int = 3  # 1..10, see LEVELS in synlogic_tasks.py (procedural only)
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
        unknown = [t for t in self.tasks if task_family(t) is None]
        if unknown:
            raise ValueError(f"tasks has unknown families {unknown}; valid: {', '.join(FAMILIES)} "
                             f"(or SynLogic's names: {', '.join(TASK_ALIASES)})")
        self.tasks = [task_family(t) for t in self.tasks]
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks names a family twice: {self.tasks}")
        _check_int("difficulty", self.difficulty, 1, MAX_DIFFICULTY)
        if not (self.source in SOURCES or isinstance(self.source, str) and (
                self.source.endswith(FILE_SUFFIXES) or Path(self.source).expanduser().is_dir())):
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, or a path to a .jsonl or .parquet file "
                             f"(or a folder) of rows in the hub's layout; got {self.source!r}")
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
                  game_data_str: str = "", prompt: str = "") -> dict:
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
        raws = load_hub_rows(self.subset, HUB_SPLITS[split]) if self.source == "hub" else \
            load_file_rows(self.source, split)
        mapped, _ = map_hub_rows(raws, self.families)
        return [self._make_row(r["task"], r["difficulty"], r["seed"], r["puzzle"], r["reference"], "synlogic_hub",
                               r["game_data_str"], r["prompt"]) for r in mapped[:size]]

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


__all__ = [
    "SYNLOGIC_TASKS", "SynLogic", "TASK_ALIASES", "extract_answer", "format_ok", "load_file_rows", "load_hub_rows",
    "map_hub_row", "map_hub_rows", "task_family",
]
