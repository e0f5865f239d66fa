"""The run itself: seed, model, environment, each stage's trainer, evaluation, summary.

Runs in the Hydra process (`launcher=local`) or in every rank under `accelerate launch`
(`python -m rlexp.worker <run_dir>/config.yaml`). Only the main process writes to the run
directory and evaluates.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import PartialState
from omegaconf import DictConfig, OmegaConf
from transformers import set_seed
from transformers.integrations.deepspeed import unset_hf_deepspeed_config

from rlexp import models
from rlexp.config import algo_from, env_from, stages, structured
from rlexp.discover import DiscoverConfig, discover
from rlexp.evaluate import evaluate
from rlexp.plots import plot_learning_curve
from rlexp.tracking import Tracker


def training_args(algo, cfg: DictConfig, output_dir: Path):
    kwargs = algo.trl_kwargs()
    kwargs.update(
        output_dir=str(output_dir),
        seed=cfg.seed,
        bf16=cfg.precision == "bf16",
        fp16=cfg.precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        report_to="none",  # rlexp's Tracker logs, on one step axis across stages
        save_strategy="no",  # each stage saves its final checkpoint itself
    )
    return algo.config_class(**kwargs)


def evaluate_checkpoint(model_cfg, checkpoint, env, cfg, tracker: Tracker, stage: str) -> dict:
    model, tokenizer = models.load(model_cfg, checkpoint)
    device = torch.device("cuda", process_state().local_process_index) if torch.cuda.is_available() else torch.device("cpu")
    results = evaluate(model.to(device), tokenizer, env, cfg.eval)
    tracker.log({f"eval/{env.name}/{split}/{k}": v for split, m in results.items() for k, v in m.items()}, stage)
    return results


# the other ranks wait at a barrier while the main process evaluates, which can take a while
WAIT_TIMEOUT = timedelta(hours=3)


def process_state() -> PartialState:
    # cpu=True on a machine without a GPU is what makes accelerate start a gloo process group
    # (also under DeepSpeed); the first PartialState decides, since it is shared by the process.
    return PartialState(cpu=not torch.cuda.is_available(), timeout=WAIT_TIMEOUT)


def run(cfg: DictConfig) -> dict:
    state = process_state()
    started = time.time()
    run_dir = Path(cfg.run_dir)
    set_seed(cfg.seed)
    config = OmegaConf.to_container(cfg, resolve=True)
    model_cfg = structured(models.ModelConfig, cfg.model)
    env = env_from(cfg.env)
    tracker = Tracker(config, state.is_main_process)
    results: dict[str, dict] = {}
    checkpoint = cfg.checkpoint
    plan: list = []
    discovery = None
    failed = True
    try:  # everything after the tracker starts, so W&B is finished whatever fails
        if cfg.mode == "discover":
            discovery = run_discover(cfg, model_cfg, env, run_dir)
        plan = [] if cfg.mode in ("eval", "discover") else stages(cfg)
        if state.is_main_process and (cfg.mode == "eval" or (cfg.mode == "train" and cfg.eval.before)):
            label = "init" if cfg.mode == "train" else "checkpoint"
            results[label] = evaluate_checkpoint(model_cfg, checkpoint, env, cfg, tracker, label)
        state.wait_for_everyone()
        for name, algo in plan:
            set_seed(cfg.seed)
            model, tokenizer = models.load(model_cfg, checkpoint)
            trainer = algo.build_trainer(model, tokenizer, env, training_args(algo, cfg, run_dir / name))
            trainer.add_callback(tracker.callback(name))
            if state.is_main_process:
                n = state.num_processes
                print(f"[rlexp] stage {name}: {n} process{'es' if n > 1 else ''}, {trainer.accelerator.distributed_type.name}", flush=True)
            trainer.train()
            checkpoint = str(run_dir / name / "checkpoint")
            trainer.save_model(checkpoint)  # gathers ZeRO-3 shards; writes on the main process
            state.wait_for_everyone()
            del trainer, model
            # transformers keeps ZeRO-3 switched on after training; from_pretrained would then wait
            # for every rank, and only the main process loads the checkpoint to evaluate it
            unset_hf_deepspeed_config()
            if state.is_main_process:
                results[name] = evaluate_checkpoint(model_cfg, checkpoint, env, cfg, tracker, name)
            state.wait_for_everyone()
        failed = False
    finally:
        tracker.finish(failed)
        # written also when a stage fails, so the stages that finished keep their results
        summary = {
            "run_dir": str(run_dir),
            "status": "failed" if failed else "done",
            "mode": cfg.mode,
            "algo": cfg.algo.name,
            "stages": [name for name, _ in plan],
            "env": cfg.env.name,
            "model": cfg.model.name,
            "seed": cfg.seed,
            "final_checkpoint": checkpoint,
            "results": results,
            **({"discovery": discovery} if discovery is not None else {}),
            "wall_time_s": round(time.time() - started, 1),
        }
        if state.is_main_process:
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
            if not failed and cfg.mode != "discover":  # discover prints its own table
                plot_learning_curve(run_dir, run_dir / "learning_curve.png")
                print(results_table(results), flush=True)
    return summary


def run_discover(cfg: DictConfig, model_cfg, env, run_dir: Path) -> dict:
    model, tokenizer = models.load(model_cfg, cfg.checkpoint)
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    split = cfg.discover.split or (list(cfg.eval.splits) or env.eval_splits())[0]
    report = discover(model.to(device), tokenizer, env, algo_from(cfg.algo), structured(DiscoverConfig, cfg.discover),
                      run_dir, cfg.seed, split, cfg.precision)
    return report["discovery"]


def results_table(results: dict[str, dict]) -> str:
    """Reward and success per split, one row per stage (init first): the before/after table."""
    if not results:
        return ""
    splits = list(next(iter(results.values())))
    head = f"{'stage':<12}" + "".join(f"{s + ' reward':>14}{s + ' success':>15}" for s in splits)
    lines = [head, "-" * len(head)]
    for stage, per_split in results.items():
        cells = "".join(f"{per_split[s]['mean_reward']:>14.3f}{per_split[s]['success']:>15.3f}" for s in splits)
        lines.append(f"{stage:<12}{cells}")
    return "\n".join(lines)


if __name__ == "__main__":
    run(OmegaConf.load(sys.argv[1]))
