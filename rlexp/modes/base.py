"""What every run mode works with: the `Run` that rlexp/worker.py builds, and the evaluation of a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from accelerate import PartialState
from accelerate.utils import gather_object
from omegaconf import DictConfig

from rlexp import models
from rlexp.checkpoints import StopSignals
from rlexp.envs import Env
from rlexp.evaluate import evaluate, load_generator
from rlexp.schema import EvalConfig, structured
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
    """Evaluate `checkpoint` on the environment's eval splits, every rank a share of the prompts (the whole model on
    each: rlexp/evaluate.py says how the samples are seeded, the same whatever the number of ranks), and log the
    results, and a table of samples per split, as `stage`. Every rank returns the results."""
    engine = structured(EvalConfig, run.cfg.eval).engine(run.cfg.generation.name)
    generator = load_generator(engine, run.model_cfg, checkpoint, run.cfg.eval, run.state)
    shard = (run.state.process_index, run.state.num_processes)
    samples = {}
    try:
        results = evaluate(generator, None, run.env, run.cfg.eval, run.cfg.seed, shard, gather_object, samples)
    finally:
        generator.close()
    run.tracker.log_evaluation(results, samples, stage, run.env.name)  # the samples of the main process's share
    return results
