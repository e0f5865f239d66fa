"""Tracking: every metric goes to `<run_dir>/metrics.jsonl`, and to W&B with `logger=wandb`; the completion tables go
to `<run_dir>/completions.jsonl`, and to W&B.

Only the main process writes. Steps are counted across stages (SFT's steps, then GRPO's), so a pipeline is one W&B
run with one monotonic step axis; keys carry the stage name.

What W&B gets besides the metrics, so that the runs of a sweep compare in its runs table and parallel-coordinates
panel: the config flattened (`algo.learning_rate`: one column per key, so one per override), `job_type` the run's
stages joined (`sft-grpo`; `eval`, `discover` for those modes), the group (logger.group, set per sweep by
rlexp/launch.py), and in the run's summary every evaluation as `eval/<stage>/<split>/<metric>` and the latest one
again as `eval/final/<split>/<metric>`.

The completion tables: every `logger.log_completions_steps` steps of an RL stage, the step's first
`logger.completions_rows` rollouts (gathered from every process, in process order) under `completions/<stage>/step_<run step>`, and after each
evaluation its first samples of each split under `samples/<stage>/<split>`: a key of their own, so no table
replaces another (TRL logs every step's table under one key, so W&B shows only the last: TRL #2045).
"""

from __future__ import annotations

import json
import numbers
import os
import time
from pathlib import Path

from transformers import TrainerCallback

from rlexp.console import say

COMPLETIONS = "completions.jsonl"


class Tracker:
    def __init__(
        self,
        config: dict,
        is_main: bool,
        kept: list[dict] = (),
        wandb_id: str | None = None,
        kept_completions: list[dict] = (),
    ):
        """`kept` and `kept_completions`: the records of metrics.jsonl and completions.jsonl a resumed run keeps
        (rlexp/checkpoints.py), written first; `wandb_id`: the W&B run it continues."""
        self.is_main = is_main
        run_dir = Path(config["run_dir"])
        self.path = run_dir / "metrics.jsonl"
        self.step = 0  # global step across stages
        self.wandb = None
        logger = config["logger"]
        self.completions_every = logger["log_completions_steps"]
        self.completions_rows = logger["completions_rows"]
        self.completions = Completions(run_dir / COMPLETIONS, logger["completions_max_mb"], kept_completions, is_main)
        if is_main:
            self.path.write_text("".join(json.dumps(record) + "\n" for record in kept))
        if is_main and logger["name"] == "wandb":
            import wandb

            self.wandb = wandb.init(
                project=logger["project"],
                entity=logger["entity"],
                group=logger["group"],
                job_type=job_type(config),
                name=logger["run_name"],
                tags=[config["algo"]["name"], config["env"]["name"], config["model"]["name"], *logger["tags"]],
                config=flat_config(config),
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

    def log_evaluation(self, results: dict[str, dict], samples: dict[str, list[dict]], stage: str, env: str) -> None:
        """An evaluation's metrics per split (on the step axis, and in the W&B summary), and its table of samples
        per split."""
        self.log({f"eval/{env}/{split}/{k}": v for split, m in results.items() for k, v in m.items()}, stage)
        if self.wandb is not None:
            final = {f"{split}/{k}": v for split, m in results.items() for k, v in m.items() if isinstance(v, numbers.Number)}
            self.wandb.summary.update({f"eval/{where}/{key}": v for where in (stage, "final") for key, v in final.items()})
        for split, rows in samples.items():
            self.log_table(f"samples/{stage}/{split}", rows[: self.completions_rows], stage, "eval", split)

    def log_table(self, key: str, rows: list[dict], stage: str, kind: str, split: str, step: int | None = None) -> None:
        """Rows (dicts of the same keys) as one W&B table under `key`, and into completions.jsonl, each with its
        stage, step, kind (rollout | eval) and split."""
        if not self.is_main or not rows:
            return
        step = self.step if step is None else step
        rows = [{"stage": stage, "step": step, "kind": kind, "split": split, **row} for row in rows]
        self.completions.write(rows)
        if self.wandb is not None:
            import wandb

            columns = list(dict.fromkeys(k for row in rows for k in row))
            table = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])
            self.wandb.log({key: table}, step=step)

    def callback(self, stage: str, trainer=None) -> TrainerCallback:
        """Forwards `trainer`'s logs, and its completion tables (an RL trainer whose reward function keeps rows)."""
        return _StageCallback(self, stage, trainer)

    def finish(self, failed: bool = False, preempted: bool = False) -> None:
        if self.wandb is not None:
            if preempted:
                self.wandb.mark_preempting()  # W&B shows it as preempted, to be resumed
            self.wandb.finish(exit_code=1 if failed else 0)
            self.wandb = None


class Completions:
    """completions.jsonl: one JSON line per row, until the file reaches `max_mb`; then later rows are not written
    and one line says so."""

    def __init__(self, path: Path, max_mb: float, kept: list[dict], is_main: bool):
        self.path, self.max_mb, self.max_bytes, self.full = path, max_mb, int(max_mb * 2**20), False
        if is_main:
            self.path.write_text("".join(json.dumps(row) + "\n" for row in kept))
            self.size = self.path.stat().st_size

    def write(self, rows: list[dict]) -> None:
        if self.full:
            return
        with self.path.open("a") as f:
            for row in rows:
                line = json.dumps(row, default=str) + "\n"
                if self.size + len(line.encode()) > self.max_bytes:
                    self.full = True
                    say(
                        f"[rlexp] {self.path.name} is full (logger.completions_max_mb={self.max_mb:g}): no more rows "
                        "are written to it; W&B, with logger=wandb, still gets every table"
                    )
                    return
                f.write(line)
                self.size += len(line.encode())


def read_completions(run_dir: str | Path) -> list[dict]:
    """The rows of completions.jsonl; a last line cut off by a kill is left out."""
    path = Path(run_dir) / COMPLETIONS
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


class _StageCallback(TrainerCallback):
    """Forwards a trainer's logs to the tracker, on the global step axis, and every `log_completions_steps` steps its
    latest rollouts as a table."""

    def __init__(self, tracker: Tracker, stage: str, trainer=None):
        self.tracker, self.stage, self.start, self.trainer = tracker, stage, tracker.step, trainer
        self.logged = None  # the rows of the last table: a generation batch that several steps train on is logged once

    def on_step_end(self, args, state, control, **kwargs):
        every = self.tracker.completions_every
        if self.trainer is None or not every or state.global_step % every:
            return
        rows = rollout_rows(self.trainer)
        if rows is None or rows is self.logged:
            return
        self.logged = rows
        local = merged_rows(rows, getattr(self.trainer, "rollout_columns", None))[: self.tracker.completions_rows]
        everyone = gather_rows(local)  # every process calls it: each generates at the same steps
        key = f"completions/{self.stage}/step_{self.start + state.global_step:06d}"
        self.tracker.log_table(key, everyone[: self.tracker.completions_rows], self.stage, "rollout", "train",
                               self.start + state.global_step)  # fmt: skip

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.tracker.log(logs or {}, self.stage, self.start + state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        self.tracker.step = self.start + state.global_step


def rollout_rows(trainer) -> list[dict] | None:
    """The rows the trainer's reward function kept of its latest generation batch (this process's), or None."""
    for func in getattr(trainer, "reward_funcs", None) or []:
        rows = getattr(func, "last_rows", None)
        if rows is not None:
            return rows
    return None


def merged_rows(rows: list[dict], columns: dict[str, list] | None) -> list[dict]:
    """Each row with the algorithm's own columns (`rollout_columns`: one value per row of the same batch) added."""
    columns = columns or {}
    for name, values in columns.items():
        if len(values) != len(rows):
            raise ValueError(f"rollout column {name} has {len(values)} values for {len(rows)} rollouts")
    return [{**row, **{name: values[i] for name, values in columns.items()}} for i, row in enumerate(rows)]


def gather_rows(rows: list[dict]) -> list[dict]:
    """Every process's rows, in process order (on every process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return rows
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, rows)
    return [row for part in parts for row in part]


def job_type(config: dict) -> str:
    """The W&B job type: the run's stages joined (`sft-grpo`), or its mode (`eval`, `discover`). One W&B run holds a
    whole pipeline, so the job type names the pipeline, not one stage (W&B allows 64 characters)."""
    if config["mode"] != "train":
        return config["mode"]
    return "-".join([*config["prepare"], config["algo"]["name"]])[:64]


def flat_config(config: dict, prefix: str = "") -> dict:
    """The config with dotted keys (`algo.learning_rate`), so that each key, and each override, is one column in
    W&B's runs table; an empty mapping stays one value."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


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
