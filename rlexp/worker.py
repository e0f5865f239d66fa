"""The run itself: seed, model, environment, each stage's trainer, evaluation, summary.

Runs in the Hydra process (`launcher=local`) or in every rank under `accelerate launch`
(`python -m rlexp.worker <run_dir>/config.yaml`). Only the main process writes to the run
directory and evaluates.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import PartialState
from omegaconf import DictConfig, OmegaConf
from transformers import TrainerCallback, set_seed
from transformers.integrations.deepspeed import unset_hf_deepspeed_config

from rlexp import models
from rlexp.checkpoints import (
    COMPLETE,
    Interrupted,
    StopSignals,
    checkpoint_step,
    kept_metrics,
    latest_checkpoint,
    load_progress,
    mark_complete,
    new_progress,
    save_progress,
)
from rlexp.config import algo_from, env_from, load_plugins, stage_keys, stages, structured, threads_per_process
from rlexp.console import libraries_to_stderr, say
from rlexp.discover import discover
from rlexp.envs import Env
from rlexp.evaluate import evaluate
from rlexp.plots import plot_learning_curve
from rlexp.schema import CONF_DIR, DiscoverConfig
from rlexp.tracking import Tracker, read_metrics


def evaluate_checkpoint(model_cfg, checkpoint, env, cfg, tracker: Tracker, stage: str) -> dict:
    model, tokenizer = models.load(model_cfg, checkpoint)
    # the same samples whenever this checkpoint is evaluated with this seed: after its stage, or by mode=eval
    set_seed(cfg.seed)
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


# TRL reads the old name of a transformers property; nothing a user of rlexp can change
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def run(cfg: DictConfig) -> dict:
    with libraries_to_stderr():
        return _run(cfg)


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
    kept = resumed_metrics(cfg, run_dir, progress) if cfg.mode == "train" else []
    tracker = Tracker(OmegaConf.to_container(cfg, resolve=True), state.is_main_process, kept, progress.get("wandb_id"))
    if state.is_main_process and tracker.wandb is not None:
        progress["wandb_id"] = tracker.wandb.id  # a resumption continues the same W&B run
    run = Run(cfg, state, env, model_cfg, tracker, run_dir, summary, progress, StopSignals(say))
    try:  # everything after the tracker starts, so W&B is finished whatever fails
        with run.stop:
            MODES[cfg.mode](run)
        summary["status"] = "done"
    except Interrupted as stop:
        summary["status"] = "interrupted"
        summary["exit_code"] = stop.exit_code
    finally:
        tracker.finish(summary["status"] in ("failed", "interrupted"), preempted=summary["status"] == "interrupted")
        summary["wall_time_s"] = round(time.time() - started, 1)
        summary["ended_at"] = time.time()
        if state.is_main_process:
            (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
            if summary["status"] == "done" and cfg.mode == "train":
                plot_learning_curve(run.run_dir, run.run_dir / "learning_curve.png")
            if summary["status"] == "done" and cfg.mode != "discover":  # discover prints its own table
                say(results_table(summary["results"]))
    return summary


def resumed_metrics(cfg: DictConfig, run_dir: Path, progress: dict) -> list[dict]:
    """What metrics.jsonl keeps when a run continues in `run_dir`: everything up to the point it resumes from."""
    records = read_metrics(run_dir)
    if not records:
        return []
    stage, resume_step, offset = None, 0, 0
    for name, _ in stages(cfg):
        if name not in progress["trained"]:
            stage = name
            latest = latest_checkpoint(run_dir / name)
            resume_step = offset + checkpoint_step(latest) if latest else offset
            break
        offset += progress["trained"][name]
    return kept_metrics(records, progress, stage, resume_step)


def train(run: Run) -> None:
    """Evaluate the starting model, then each stage in turn from the previous one's checkpoint, evaluated after it.
    What `progress.json` says is done (a resumption) is not done again; a stage in progress continues from its
    latest complete checkpoint."""
    cfg, results = run.cfg, run.summary["results"]
    plan = stages(cfg)
    names = run.summary["stages"] = [name for name, _ in plan]
    progress = run.progress
    results.update(progress["results"])
    checkpoint = cfg.checkpoint
    start = start_point(cfg.resume)
    if start is not None and not progress["trained"]:  # resume=<checkpoint>: its stage's predecessors are done
        before = names[: names.index(start[0])]
        progress["trained"] = {name: 0 for name in before} | ({before[-1]: start[2]} if before else {})
        if not before:
            run.tracker.step += start[2]
    if cfg.eval.before and "init" not in results and start is None:
        evaluate_stage(run, checkpoint, "init")
    for name, algo in plan:
        run.stop.check()
        stage_dir = run.run_dir / name
        if name not in progress["trained"]:
            own = latest_checkpoint(stage_dir)
            resume_from = own or (start[1] if start is not None and start[0] == name else None)
            train_stage(run, name, algo, str(resume_from) if resume_from and not own else checkpoint, resume_from)
        else:
            run.tracker.step += progress["trained"][name]
        checkpoint = str(stage_dir / "checkpoint")
        run.summary["final_checkpoint"] = checkpoint
        run.stop.check()
        if name not in results:
            evaluate_stage(run, checkpoint, name)


def start_point(resume: str) -> tuple[str, Path, int] | None:
    """resume=<a checkpoint-<step> directory>: (its stage, its path, the run step its stage started at)."""
    if resume in ("auto", "never"):
        return None
    info = json.loads((Path(resume) / COMPLETE).read_text())
    return info["stage"], Path(resume), info["run_step"] - info["step"]


def train_stage(run: Run, name: str, algo, checkpoint: str | None, resume_from: Path | None) -> None:
    """Train one stage from `checkpoint`, or continue it from `resume_from` (a checkpoint of this stage); save its
    model."""
    cfg, state = run.cfg, run.state
    stage_dir = run.run_dir / name
    set_seed(cfg.seed)
    model, tokenizer = models.load(run.model_cfg, checkpoint)
    with stage_keys(cfg, name):
        trainer = algo.build_trainer(model, tokenizer, run.env, algo.training_args(stage_dir, cfg.seed, cfg.precision))
    trainer.add_callback(run.tracker.callback(name))
    trainer.add_callback(SaveAndStop(run, name))
    if state.is_main_process:
        resuming = f"; continuing from {resume_from.name}" if resume_from else ""
        say(f"[rlexp] stage {name}: {how_it_runs(trainer)}{resuming}")
        hint = cpu_hint(cfg, algo)
        if hint:
            say(f"[rlexp] {hint}")
        trainer.add_callback(StepCost(name))
    if resume_from:
        restore_token_count(trainer, resume_from)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    run.stop.check()  # stopped by a signal: the checkpoint is saved, the stage is not done
    trainer.save_model(str(stage_dir / "checkpoint"))  # gathers ZeRO-3 shards; writes on the main process
    state.wait_for_everyone()
    run.progress["trained"][name] = trainer.state.global_step
    if state.is_main_process:
        save_progress(run.run_dir, run.progress)
    del trainer, model
    # transformers keeps ZeRO-3 switched on after training; from_pretrained would then wait
    # for every rank, and only the main process loads the checkpoint to evaluate it
    unset_hf_deepspeed_config()


def restore_token_count(trainer, checkpoint: Path) -> None:
    """TRL's SFTTrainer counts the tokens trained on (its `num_tokens` metric) outside the state a checkpoint holds;
    the last value it logged before the checkpoint is in the checkpoint's log history."""
    if not hasattr(trainer, "_total_train_tokens"):
        return
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    logged = [entry["num_tokens"] for entry in history if "num_tokens" in entry]
    trainer._total_train_tokens = int(logged[-1]) if logged else 0


def evaluate_stage(run: Run, checkpoint: str | None, name: str) -> None:
    """Evaluate `checkpoint` on the main process, and keep its results in the summary and in progress.json."""
    if run.state.is_main_process:
        results = evaluate_checkpoint(run.model_cfg, checkpoint, run.env, run.cfg, run.tracker, name)
        run.summary["results"][name] = run.progress["results"][name] = results
        save_progress(run.run_dir, run.progress)
    run.state.wait_for_everyone()


class SaveAndStop(TrainerCallback):
    """Marks each checkpoint complete once every process has written its part, and stops training, with a
    checkpoint, at the end of the step in which any process was asked to stop (SIGTERM, SIGINT)."""

    def __init__(self, run: Run, stage: str):
        self.run, self.stage = run, stage

    def on_step_end(self, args, state, control, **kwargs):
        asked = torch.tensor([0.0 if self.run.stop.signum is None else 1.0])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            asked = asked.to(self.run.state.device)
            torch.distributed.all_reduce(asked)  # every rank stops at the same step
        if asked.item() > 0:
            control.should_save = control.should_training_stop = True
            if self.run.stop.signum is None:  # another rank's signal
                self.run.stop.signum = signal.SIGTERM
        return control

    def on_save(self, args, state, control, **kwargs):
        self.run.state.wait_for_everyone()  # every rank's RNG state and shards are on disk
        if self.run.state.is_main_process:
            path = self.run.run_dir / self.stage / f"checkpoint-{state.global_step}"
            mark_complete(
                path, {"stage": self.stage, "step": state.global_step, "run_step": self.run.tracker.step + state.global_step}
            )


def evaluate_only(run: Run) -> None:
    """mode=eval: the checkpoint, on the eval splits."""
    if run.state.is_main_process:
        results = evaluate_checkpoint(run.model_cfg, run.cfg.checkpoint, run.env, run.cfg, run.tracker, "checkpoint")
        run.summary["results"]["checkpoint"] = results
    run.state.wait_for_everyone()


def discover_mode(run: Run) -> None:
    """mode=discover: test-time SDPO against best-of-k and multi-turn retry (rlexp/discover.py)."""
    cfg = run.cfg
    model, tokenizer = models.load(run.model_cfg, cfg.checkpoint)
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    split = cfg.discover.split or (list(cfg.eval.splits) or run.env.eval_splits())[0]
    report = discover(model.to(device), tokenizer, run.env, algo_from(cfg.algo), structured(DiscoverConfig, cfg.discover),
                      run.run_dir, cfg.seed, split, cfg.precision)  # fmt: skip
    run.summary["discovery"] = report["discovery"]


# the run modes, by the name `mode=` takes (rlexp.config.MODES lists the same names for validation)
MODES = {"train": train, "eval": evaluate_only, "discover": discover_mode}


def results_table(results: dict[str, dict]) -> str:
    """Success (± its standard error), pass@k and mean reward per split, one row per stage (init first)."""
    if not results:
        return ""
    first = next(iter(results.values()))
    splits = list(first)
    some = first[splits[0]]
    ks = sorted((key for key in some if key.startswith("pass@")), key=lambda key: int(key[5:]))
    head = f"{'stage':<12}" + "".join(
        f"{f'{s} success':>18}" + "".join(f"{f'{s} {k}':>12}" for k in ks) + f"{f'{s} reward':>12}" for s in splits
    )
    lines = [
        f"success: the share of samples solved, ± its standard error over {some['n_prompts']} prompts; "
        f"pass@k: unbiased, from {some['n_samples']} samples per prompt; reward: the mean",
        head, "-" * len(head),
    ]  # fmt: skip
    for stage, per_split in results.items():
        cells = ""
        for s in splits:
            m = per_split[s]
            cells += (
                f"{m['success']:>10.3f} ± {m['success_se']:.3f}"
                + "".join(f"{m[k]:>12.3f}" for k in ks)
                + f"{m['mean_reward']:>12.3f}"
            )
        lines.append(f"{stage:<12}{cells}")
    return "\n".join(lines)


def how_it_runs(trainer) -> str:
    """'single process, CPU', '2 processes, DeepSpeed ZeRO-2, 2 GPUs' ..."""
    state = trainer.accelerator.state
    n, kind = state.num_processes, state.distributed_type.name
    where = "CPU" if not torch.cuda.is_available() else ("1 GPU" if n == 1 else f"{n} GPUs")
    if kind == "NO":
        return f"single process, {where}"
    processes = f"{n} process{'es' if n > 1 else ''}"
    if kind == "DEEPSPEED":
        return f"{processes}, DeepSpeed ZeRO-{state.deepspeed_plugin.zero_stage}, {where}"
    return f"{processes}, {'DDP' if kind in ('MULTI_GPU', 'MULTI_CPU') else kind}, {where}"


DEMO = Path(CONF_DIR, "experiment", "demo.yaml")


def demo_knobs() -> tuple[str, int]:
    """What the demo changes to fit a CPU (its game and completion length), read from its own file."""
    demo = OmegaConf.load(DEMO)
    game = " ".join(f"env.{k}={v}" for k, v in demo.env.items())
    return (
        f"experiment=demo (the tiny model, {game}, {demo.algo.max_completion_length}-token completions)",
        demo.algo.max_completion_length,
    )


def cpu_hint(cfg: DictConfig, algo) -> str | None:
    """On a machine without a GPU, a line on what a hub-scale stage will cost, before it starts."""
    if torch.cuda.is_available():
        return None
    completion = getattr(algo, "max_completion_length", None) or 0
    hub_model = structured(models.ModelConfig, cfg.model).pretrained is not None
    demo, demo_completion = demo_knobs()
    if not hub_model and completion <= demo_completion:
        return None
    what = (
        f"a hub model ({cfg.model.name})"
        if hub_model
        else f"{algo.per_device_train_batch_size} completions of up to {completion} tokens"
    )
    return (
        f"no GPU: every step of {algo.name} runs {what} on the CPU, which can take minutes per step "
        f"(the time per step is printed after the first one); for a run that finishes on a laptop try {demo}"
    )


class StepCost(TrainerCallback):
    """Says, after the first step, how long the stage will take at that pace."""

    def __init__(self, stage: str):
        self.stage, self.started = stage, None

    def on_step_begin(self, args, state, control, **kwargs):
        if self.started is None:
            self.started = time.time()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 1 and state.max_steps > 1:
            took = time.time() - self.started
            say(
                f"[rlexp] stage {self.stage}: the first step took {took:.1f} s; "
                f"{state.max_steps} steps at that pace take about {duration(took * state.max_steps)}"
            )


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


if __name__ == "__main__":
    from rlexp.checkpoints import die_with_parent

    die_with_parent()  # a rank under accelerate launch: when the launcher goes, so does the rank
    summary = run(OmegaConf.load(sys.argv[1]))
    sys.exit(summary.get("exit_code", 0))
