"""Tracking: every metric goes to `<run_dir>/metrics.jsonl`, and to W&B with `logger=wandb`.

Only the main process writes. Steps are counted across stages (SFT's steps, then GRPO's), so a
pipeline is one W&B run with one monotonic step axis; keys carry the stage name.
"""

from __future__ import annotations

import json
import numbers
import os
import time
from pathlib import Path

from transformers import TrainerCallback

from rlexp.console import say


class Tracker:
    def __init__(self, config: dict, is_main: bool, kept: list[dict] = (), wandb_id: str | None = None):
        """`kept`: the records a resumed run keeps (rlexp/checkpoints.py), written first; `wandb_id`: the W&B run
        it continues."""
        self.is_main = is_main
        self.path = Path(config["run_dir"]) / "metrics.jsonl"
        self.step = 0  # global step across stages
        self.wandb = None
        if is_main:
            self.path.write_text("".join(json.dumps(record) + "\n" for record in kept))
        logger = config["logger"]
        if is_main and logger["name"] == "wandb":
            import wandb

            self.wandb = wandb.init(
                project=logger["project"],
                entity=logger["entity"],
                group=logger["group"],
                name=logger["run_name"],
                tags=[config["algo"]["name"], config["env"]["name"], config["model"]["name"], *logger["tags"]],
                config=config,
                dir=config["run_dir"],
                mode=wandb_mode(logger["mode"]),
                id=wandb_id,
                resume="allow" if wandb_id else None,
            )

    def log(self, metrics: dict, stage: str, step: int | None = None) -> None:
        if not self.is_main:
            return
        step = self.step if step is None else step
        numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, numbers.Number)}
        with self.path.open("a") as f:
            f.write(json.dumps({"stage": stage, "step": step, "time": time.time(), **numeric}) + "\n")
        if self.wandb is not None:
            # eval/... keys are shared by every stage, so one chart shows init, sft, grpo ...
            self.wandb.log({k if k.startswith("eval/") else f"{stage}/{k}": v for k, v in numeric.items()}, step=step)

    def callback(self, stage: str) -> TrainerCallback:
        return _StageCallback(self, stage)

    def finish(self, failed: bool = False, preempted: bool = False) -> None:
        if self.wandb is not None:
            if preempted:
                self.wandb.mark_preempting()  # W&B shows it as preempted, to be resumed
            self.wandb.finish(exit_code=1 if failed else 0)
            self.wandb = None


class _StageCallback(TrainerCallback):
    """Forwards a trainer's logs to the tracker, on the global step axis."""

    def __init__(self, tracker: Tracker, stage: str):
        self.tracker, self.stage, self.start = tracker, stage, tracker.step

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.tracker.log(logs or {}, self.stage, self.start + state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        self.tracker.step = self.start + state.global_step


def wandb_mode(configured: str) -> str:
    """WANDB_MODE wins; "online" with no W&B login falls back to offline (sync later with `wandb sync`)."""
    mode = os.environ.get("WANDB_MODE", configured)
    if mode == "online" and not (os.environ.get("WANDB_API_KEY") or _has_netrc_login()):
        say("[rlexp] W&B: no login found, logging offline into the run dir (wandb login, then wandb sync, to upload)")
        return "offline"
    return mode


def _has_netrc_login() -> bool:
    import netrc

    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
