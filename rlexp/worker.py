"""The run itself: build what every mode needs (seed, environment, model config, tracker), run the mode
(rlexp/modes/), write the summary.

Runs in the Hydra process (`launcher=local`) or in every rank under `accelerate launch`
(`python -m rlexp.worker <run_dir>/config.yaml`). Only the main process writes to the run
directory and evaluates.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import PartialState
from omegaconf import DictConfig, OmegaConf
from transformers import set_seed

from rlexp import models
from rlexp.checkpoints import (
    Interrupted,
    StopSignals,
    checkpoint_step,
    kept_metrics,
    latest_checkpoint,
    load_progress,
    new_progress,
)
from rlexp.config import env_from, load_plugins, stages, structured, threads_per_process
from rlexp.console import libraries_to_stderr, say
from rlexp.modes.base import Run
from rlexp.plots import plot_learning_curve
from rlexp.tracking import Tracker, read_completions, read_metrics

# ranks wait at barriers for each other (an evaluation whose shares differ, the main process writing), which can take a while
WAIT_TIMEOUT = timedelta(hours=3)


def process_state() -> PartialState:
    # cpu=True on a machine without a GPU is what makes accelerate start a gloo process group
    # (also under DeepSpeed); the first PartialState decides, since it is shared by the process.
    return PartialState(cpu=not torch.cuda.is_available(), timeout=WAIT_TIMEOUT)


# TRL reads the old name of a transformers property; nothing a user of rlexp can change
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def run(cfg: DictConfig) -> dict:
    with libraries_to_stderr():
        return _run(cfg)


def _run(cfg: DictConfig) -> dict:
    """Build what every mode needs, run the mode, and write summary.json whatever happens."""
    load_plugins(list(cfg.get("plugins") or []))  # ranks under accelerate import them here
    state = process_state()
    torch.set_num_threads(threads_per_process(cfg.get("threads"), state.num_processes))
    started = time.time()
    set_seed(cfg.seed)
    summary = {"run_dir": cfg.run_dir, "status": "failed", "mode": cfg.mode, "algo": cfg.algo.name, "stages": [],
               "env": cfg.env.name, "model": cfg.model.name, "seed": cfg.seed, "final_checkpoint": cfg.checkpoint,
               "results": {}, "started_at": started, "threads": torch.get_num_threads(),
               "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}  # fmt: skip
    env, model_cfg = env_from(cfg.env), structured(models.ModelConfig, cfg.model)
    run_dir = Path(cfg.run_dir)
    progress = load_progress(run_dir) if cfg.mode == "train" else new_progress()  # only training resumes
    kept, kept_completions = resumed_records(cfg, run_dir, progress) if cfg.mode == "train" else ([], [])
    tracker = Tracker(
        OmegaConf.to_container(cfg, resolve=True), state.is_main_process, kept, progress.get("wandb_id"), kept_completions
    )
    if state.is_main_process and tracker.wandb is not None:
        progress["wandb_id"] = tracker.wandb.id  # a resumption continues the same W&B run
    run = Run(cfg, state, env, model_cfg, tracker, run_dir, summary, progress, StopSignals(say))
    try:  # everything after the tracker starts, so W&B is finished whatever fails
        with run.stop:
            importlib.import_module(f"rlexp.modes.{cfg.mode}").main(run)
        summary["status"] = "done"
    except Interrupted as stop:
        summary["status"] = "interrupted"
        summary["exit_code"] = stop.exit_code
    finally:
        tracker.finish(summary["status"] in ("failed", "interrupted"), preempted=summary["status"] == "interrupted")
        summary["wall_time_s"] = round(time.time() - started, 1)
        summary["ended_at"] = time.time()
        if state.is_main_process:
            # written whole, then renamed: a report reading a running sweep never sees half a file
            partial = run.run_dir / "summary.json.partial"
            partial.write_text(json.dumps(summary, indent=2))
            partial.replace(run.run_dir / "summary.json")
            if summary["status"] == "done" and cfg.mode == "train":
                plot_learning_curve(run.run_dir, run.run_dir / "learning_curve.png")
            if summary["status"] == "done" and cfg.mode != "discover":  # discover prints its own table
                say(results_table(summary["results"]))
    return summary


def resumed_records(cfg: DictConfig, run_dir: Path, progress: dict) -> tuple[list[dict], list[dict]]:
    """What metrics.jsonl and completions.jsonl keep when a run continues in `run_dir`: everything up to the point it
    resumes from."""
    records, rows = read_metrics(run_dir), read_completions(run_dir)
    if not records and not rows:
        return [], []
    stage, resume_step, offset = None, 0, 0
    for name, _ in stages(cfg):
        if name not in progress["trained"]:
            stage = name
            latest = latest_checkpoint(run_dir / name)
            resume_step = offset + checkpoint_step(latest) if latest else offset
            break
        offset += progress["trained"][name]
    return (
        kept_metrics(records, progress, stage, resume_step),
        kept_metrics(rows, progress, stage, resume_step, lambda row: row["kind"] == "eval"),
    )


def short(metric: str) -> str:
    return "1st try" if metric == "first_try_success" else metric


def results_table(results: dict[str, dict]) -> str:
    """Success (± its standard error), pass@k and mean reward per split, one row per stage (init first)."""
    if not results:
        return ""
    first = next(iter(results.values()))
    splits = list(first)
    some = first[splits[0]]
    ks = sorted((key for key in some if key.startswith("pass@")), key=lambda key: int(key[5:]))
    episodes = "first_try_success" in some  # env.max_attempts > 1: each sample is an episode of attempts
    if episodes:
        ks = ["first_try_success", *ks]
    head = f"{'stage':<12}"
    for s in splits:
        labels = [(f"{s} success", 18), *((f"{s} {short(k)}", 12) for k in ks), (f"{s} reward", 12)]
        head += "".join(f"{label:>{max(width, len(label) + 2)}}" for label, width in labels)
    solved = "episodes solved within their attempts" if episodes else "samples solved"
    lines = [
        f"success: the share of {solved}, ± its standard error over {some['n_prompts']} prompts; "
        + ("1st try: solved by the first attempt; " if episodes else "")
        + f"pass@k: unbiased, from {some['n_samples']} samples per prompt; "
        + ("reward: the mean episode return" if episodes else "reward: the mean"),
        head, "-" * len(head),
    ]  # fmt: skip
    for stage, per_split in results.items():
        cells = ""
        for s in splits:
            m = per_split[s]
            success = f"{m['success']:.3f} ± {m['success_se']:.3f}"
            cells += f"{success:>{max(18, len(s) + 10)}}"
            cells += "".join(f"{m[k]:>{max(12, len(s) + len(short(k)) + 3)}.3f}" for k in ks)
            cells += f"{m['mean_reward']:>{max(12, len(s) + 9)}.3f}"
        lines.append(f"{stage:<12}{cells}")
    return "\n".join(lines)


if __name__ == "__main__":
    from rlexp.checkpoints import die_with_parent

    die_with_parent()  # a rank under accelerate launch: when the launcher goes, so does the rank
    summary = run(OmegaConf.load(sys.argv[1]))
    sys.exit(summary.get("exit_code", 0))
