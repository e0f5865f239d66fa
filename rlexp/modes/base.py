"""What every run mode works with: the `Run` that rlexp/worker.py builds, and the evaluation of a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import PartialState
from omegaconf import DictConfig
from transformers import set_seed

from rlexp import models
from rlexp.checkpoints import StopSignals
from rlexp.envs import Env
from rlexp.evaluate import evaluate
from rlexp.tracking import Tracker


@dataclass
class Run:
    """What a mode works with. `summary` holds what the mode has done so far, and is written also
    when the mode fails, so finished stages keep their results."""

    cfg: DictConfig
    state: PartialState
    env: Env
    model_cfg: models.ModelConfig
    tracker: Tracker
    run_dir: Path
    summary: dict
    progress: dict  # what is done already (progress.json): trained stages, evaluations, the W&B run id
    stop: StopSignals


def evaluate_checkpoint(run: Run, checkpoint: str | None, stage: str) -> dict:
    """Evaluate `checkpoint` on the environment's eval splits (the main process only) and log the results as `stage`."""
    model, tokenizer = models.load(run.model_cfg, checkpoint)
    # the same samples whenever this checkpoint is evaluated with this seed: after its stage, or by mode=eval
    set_seed(run.cfg.seed)
    device = torch.device("cuda", run.state.local_process_index) if torch.cuda.is_available() else torch.device("cpu")
    results = evaluate(model.to(device), tokenizer, run.env, run.cfg.eval)
    run.tracker.log({f"eval/{run.env.name}/{split}/{k}": v for split, m in results.items() for k, v in m.items()}, stage)
    return results
