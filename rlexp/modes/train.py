"""mode=train: the starting model evaluated, then each stage trained from the one before and evaluated; a run that
was stopped continues where its last complete checkpoint is."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from transformers import TrainerCallback, set_seed
from transformers.integrations.deepspeed import unset_hf_deepspeed_config

from rlexp import models
from rlexp.checkpoints import COMPLETE, latest_checkpoint, mark_complete, save_progress
from rlexp.config import stage_keys, stages, structured
from rlexp.console import say
from rlexp.generation import VLLMServer, free_port, seeded_engines, server_command
from rlexp.modes.base import Run, evaluate_checkpoint
from rlexp.progress import RunProgress, StageProgress
from rlexp.schema import CONF_DIR, VLLM_MODES, GenerationConfig


def main(run: Run) -> None:
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
    evaluate_init = cfg.eval.before and "init" not in results and start is None
    bar = None
    if run.state.is_main_process:
        evaluations = evaluate_init + sum(name not in results for name in names)
        bar = RunProgress([(name, algo.max_steps) for name, algo in plan], progress["trained"], evaluations)
    try:
        if evaluate_init:
            evaluate_stage(run, checkpoint, "init", bar)
        for name, algo in plan:
            run.stop.check()
            stage_dir = run.run_dir / name
            if name not in progress["trained"]:
                own = latest_checkpoint(stage_dir)
                resume_from = own or (start[1] if start is not None and start[0] == name else None)
                train_stage(run, name, algo, str(resume_from) if resume_from and not own else checkpoint, resume_from, bar)
            else:
                run.tracker.step += progress["trained"][name]
            checkpoint = str(stage_dir / "checkpoint")
            run.summary["final_checkpoint"] = checkpoint
            run.stop.check()
            if name not in results:
                evaluate_stage(run, checkpoint, name, bar)
    finally:
        if bar is not None:
            bar.close()


def start_point(resume: str) -> tuple[str, Path, int] | None:
    """resume=<a checkpoint-<step> directory>: (its stage, its path, the run step its stage started at)."""
    if resume in ("auto", "never"):
        return None
    info = json.loads((Path(resume) / COMPLETE).read_text())
    return info["stage"], Path(resume), info["run_step"] - info["step"]


def train_stage(run: Run, name: str, algo, checkpoint: str | None, resume_from: Path | None, bar: RunProgress = None) -> None:
    """Train one stage from `checkpoint`, or continue it from `resume_from` (a checkpoint of this stage); save its
    model. `bar`: the run's progress bar (the main process's)."""
    cfg = run.cfg
    stage_dir = run.run_dir / name
    set_seed(cfg.seed)
    model, tokenizer = models.load(run.model_cfg, checkpoint)
    start = checkpoint or run.model_cfg.pretrained
    generation = structured(GenerationConfig, cfg.generation) if algo.generates else None
    if generation is not None and generation.name in VLLM_MODES and start is None:
        start = save_start_model(run, stage_dir, model, tokenizer)
    with stage_server(run, name, algo, generation, start) as generation:
        with stage_keys(cfg, name), seeded_engines(cfg.seed):
            args = algo.training_args(stage_dir, cfg.seed, cfg.precision, generation=generation, model=run.model_cfg)
            trainer = algo.build_trainer(model, tokenizer, run.env, args)
        train_and_save(run, name, algo, trainer, resume_from, bar)
    del trainer, model
    # transformers keeps ZeRO-3 switched on after training; from_pretrained would then shard the checkpoint, which
    # each rank loads whole to evaluate its share of the prompts
    unset_hf_deepspeed_config()


def save_start_model(run: Run, stage_dir: Path, model, tokenizer) -> str:
    """A vLLM engine loads its model from disk: a model built in memory (model=tiny) is saved for it first."""
    path = stage_dir / "vllm_start_model"
    if run.state.is_main_process:
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    run.state.wait_for_everyone()
    model.name_or_path = model.config._name_or_path = str(path)  # where TRL's colocated engine loads it from
    return str(path)


@contextlib.contextmanager
def stage_server(run: Run, stage: str, algo, generation: GenerationConfig | None, start: str | None):
    """With generation=vllm_server, the main process starts `trl vllm-serve` on generation.server_gpus with the model
    the stage starts from (`algo.served_model`) and the run's seed, waits until it answers, and stops it when the
    stage ends, fails or is stopped. Yields `generation` with the server's ports."""
    if generation is None or generation.name != "vllm_server" or not run.state.is_main_process:
        yield generation
        return
    port, group_port = generation.server_port or free_port(), generation.group_port or free_port()
    generation = dataclasses.replace(generation, server_port=port, group_port=group_port)
    command = server_command(algo.served_model(start), generation, port, run.cfg.seed)
    health = f"http://{generation.server_host}:{port}/health"
    log = run.run_dir / stage / "vllm_server.log"
    stopping = lambda: run.stop.signum is not None  # noqa: E731
    with VLLMServer(command, generation.server_gpus, health, log, generation.server_timeout, say, stopping):
        run.stop.check()
        yield generation


def train_and_save(run: Run, name: str, algo, trainer, resume_from: Path | None, bar: RunProgress = None) -> None:
    """Train a built stage, or continue it from `resume_from`; save its model."""
    cfg, state = run.cfg, run.state
    stage_dir = run.run_dir / name
    trainer.add_callback(run.tracker.callback(name, trainer))
    trainer.add_callback(SaveAndStop(run, name))
    if state.is_main_process:
        resuming = f"; continuing from {resume_from.name}" if resume_from else ""
        say(f"[rlexp] stage {name}: {how_it_runs(trainer)}{resuming}")
        hint = cpu_hint(cfg, algo)
        if hint:
            say(f"[rlexp] {hint}")
        trainer.add_callback(StageProgress(bar, name))
    if resume_from:
        restore_token_count(trainer, resume_from)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    run.stop.check()  # stopped by a signal: the checkpoint is saved, the stage is not done
    trainer.save_model(str(stage_dir / "checkpoint"))  # gathers ZeRO-3 shards; writes on the main process
    state.wait_for_everyone()
    run.progress["trained"][name] = trainer.state.global_step
    if state.is_main_process:
        save_progress(run.run_dir, run.progress)


def restore_token_count(trainer, checkpoint: Path) -> None:
    """TRL's SFTTrainer counts the tokens trained on (its `num_tokens` metric) outside the state a checkpoint holds;
    the last value it logged before the checkpoint is in the checkpoint's log history."""
    if not hasattr(trainer, "_total_train_tokens"):
        return
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    logged = [entry["num_tokens"] for entry in history if "num_tokens" in entry]
    trainer._total_train_tokens = int(logged[-1]) if logged else 0


def evaluate_stage(run: Run, checkpoint: str | None, name: str, bar: RunProgress = None) -> None:
    """Evaluate `checkpoint` on every rank, and keep its results in the summary and in progress.json. `bar`: the run's
    progress bar (the main process's)."""
    with bar.evaluation(name) if bar is not None else contextlib.nullcontext():
        results = evaluate_checkpoint(run, checkpoint, name)
    run.summary["results"][name] = run.progress["results"][name] = results
    if run.state.is_main_process:
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
