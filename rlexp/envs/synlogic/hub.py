"""SynLogic's own rows: loaded from `MiniMaxAI/SynLogic` or a local file in its layout, and mapped
onto our families' puzzles.

A row's `data_source` may be any name of SynLogic's task-to-verifier table (Game of 24 is `mathador` there); rows
of the families we implement are mapped from `extra_info.game_data_str` by the family's `from_hub`, shown with
SynLogic's own question text plus our answer line, and scored by our verifier. The others are skipped and counted
in the log. A stored answer is only a hint: a row is kept when its puzzle has a solution (the stored answer passes
our verifier, or our solver finds one), so that a futoshiki row whose stored grid breaks its own signs is kept.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from rlexp.envs.synlogic.common import Unmappable, as_obj, require
from rlexp.envs.synlogic.families import FAMILIES, MAX_DIFFICULTY, MODULES, render_hub_prompt, solve, verify
from rlexp.errors import ConfigError

log = logging.getLogger(__name__)

HUB_REPO = "MiniMaxAI/SynLogic"
HUB_SPLITS = {"train": "train", "test": "validation"}
FILE_SUFFIXES = (".jsonl", ".parquet")
# every task name of SynLogic's task-to-verifier table (task2verifier.py): the names a hub row's data_source carries
SYNLOGIC_TASKS = (
    "arrow_maze",
    "boolean_expressions",
    "buggy_tables",
    "calcudoko",
    "campsite",
    "cipher",
    "cryptarithm",
    "dyck_language",
    "dyck_language_errors",
    "dyck_language_reasoning_errors",
    "futoshiki",
    "goods_exchange",
    "gpqa_diamond",
    "kukurasu",
    "math_path",
    "arc_agi",
    "arc_agi_2",
    "mathador",
    "minesweeper",
    "norinori",
    "number_wall",
    "numbrix",
    "object_counting",
    "object_properties",
    "operation",
    "skyscraper_puzzle",
    "space_reasoning",
    "space_reasoning_tree",
    "star_placement_puzzle",
    "sudoku",
    "survo",
    "time_sequence",
    "web_of_lies",
    "word_sorting",
    "word_sorting_mistake",
    "wordscapes",
    "zebra_puzzle",
    "bbeh_boardgame_qa",
    "bbeh_boolean_expressions",
    "bbeh_buggy_tables",
    "bbeh_causal_understanding",
    "bbeh_disambiguation_qa",
    "bbeh_dyck_languages",
    "bbeh_geometric_shapes",
    "bbeh_hyperbaton",
    "bbeh_linguini",
    "bbeh_movie_recommendation",
    "bbeh_multistep_arithmetic",
    "bbeh_nycc",
    "bbeh_object_counting",
    "bbeh_object_properties",
    "bbeh_sarc_triples",
    "bbeh_shuffled_objects",
    "bbeh_spatial_reasoning",
    "bbeh_sportqa",
    "bbeh_temporal_sequence",
    "bbeh_time_arithmetic",
    "bbeh_web_of_lies",
    "bbeh_word_sorting",
    "bbeh_zebra_puzzles",
    "bbh_boolean_expressions",
    "bbh_causal_judgement",
    "bbh_date_understanding",
    "bbh_disambiguation_qa",
    "bbh_dyck_languages",
    "bbh_formal_fallacies",
    "bbh_geometric_shapes",
    "bbh_hyperbaton",
    "bbh_logical_deduction_five_objects",
    "bbh_logical_deduction_seven_objects",
    "bbh_logical_deduction_three_objects",
    "bbh_movie_recommendation",
    "bbh_multistep_arithmetic_two",
    "bbh_navigate",
    "bbh_object_counting",
    "bbh_penguins_in_a_table",
    "bbh_reasoning_about_colored_objects",
    "bbh_ruin_names",
    "bbh_salient_translation_error_detection",
    "bbh_snarks",
    "bbh_sports_understanding",
    "bbh_temporal_sequences",
    "bbh_tracking_shuffled_objects_five_objects",
    "bbh_tracking_shuffled_objects_seven_objects",
    "bbh_tracking_shuffled_objects_three_objects",
    "bbh_web_of_lies",
    "bbh_word_sorting",
)
# SynLogic's names for our families, where they differ from ours (both are accepted, in rows and in env.tasks)
TASK_ALIASES = {"mathador": "game_of_24"}


def task_family(name: Any) -> Optional[str]:
    """Our family for a task name (ours, or SynLogic's alias such as mathador), else None."""
    family = TASK_ALIASES.get(name, name) if isinstance(name, str) else None
    return family if family in FAMILIES else None


def _question(raw: dict, data: dict) -> str:
    """SynLogic's question text: the game data's own, else the row prompt's last message."""
    question = data.get("question")
    if not isinstance(question, str) or not question.strip():
        prompt = as_obj(raw.get("prompt"))
        last = prompt[-1] if isinstance(prompt, list) and prompt else None
        question = last.get("content") if isinstance(last, dict) else None
    require(isinstance(question, str) and bool(question.strip()), "no question text")
    return question


def map_hub_row(raw: Any) -> tuple[Optional[dict], str]:
    """One hub row as (our row fields, "") or (None, why it is skipped: "task not implemented" | "unknown task" |
    "unsolvable ..." | "unmappable ...")."""
    try:
        source = str(raw.get("data_source", ""))
        name = source[len("val/") :] if source.startswith("val/") else source
        family = task_family(name)
        if family is None:
            return None, "task not implemented" if name in SYNLOGIC_TASKS else "unknown task"
        extra = as_obj(raw.get("extra_info"))
        require(isinstance(extra, dict), "no extra_info")
        game_data_str = extra.get("game_data_str")
        require(isinstance(game_data_str, str), "no game_data_str")
        data = json.loads(game_data_str)
        require(isinstance(data, dict), "game_data_str is not an object")
        md = as_obj(data.get("metadata") or {})
        require(isinstance(md, dict), "metadata is not an object")
        puzzle, stored = MODULES[family].from_hub(md, data)
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
    except Unmappable as exc:
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
        log.warning(
            "synlogic hub: kept %d rows, skipped %d (%s)",
            len(rows),
            sum(skipped.values()),
            ", ".join(f"{why}: {k}" for why, k in skipped.most_common()),
        )
    solved = Counter(row["task"] for row in rows if row["from_solver"])
    if solved:
        log.info(
            "synlogic hub: %d kept rows store no answer, or one that breaks its own puzzle; their reference is our solver's (%s)",
            sum(solved.values()),
            ", ".join(f"{t}: {k}" for t, k in solved.most_common()),
        )
    return rows, skipped


def _read_rows(path: Path) -> list:
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

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
        raise ConfigError(
            f"env.source={source}: the file has no {which}; point env.source at a folder with train and validation files instead"
        )
    return rows


def load_hub_rows(subset: str, split: str) -> list[dict]:
    try:
        import datasets

        return list(datasets.load_dataset(HUB_REPO, subset, split=split))
    except Exception as exc:  # noqa: BLE001 - offline, missing, renamed ... all end the same way
        first = (str(exc).splitlines() or [""])[0][:200]
        raise ConfigError(
            f"env=synlogic: cannot load {HUB_REPO} ({subset}, {split}): {type(exc).__name__}: {first}; "
            "offline, use env.source=procedural"
        ) from None
