"""Runs that survive a kill: the run directory's progress, complete checkpoints, resuming, and stopping on a signal.

What a run directory holds for this, besides each stage's final `checkpoint`:

- `<stage>/checkpoint-<step>/`: the Trainer's full checkpoint every `algo.save_steps` steps (model, optimizer,
  scheduler, the Python, numpy, torch and CUDA RNG states, the data position, the trainer state; an algorithm
  adds its own, e.g. SDPO's teacher), the newest `algo.save_total_limit` kept. The Trainer writes it in place;
  `complete.json`, written last (to a temporary name, then renamed), marks it usable, so a kill during a save
  leaves the previous one, which is still kept, to resume from.
- `progress.json`: which stages are trained (and their steps on the run's step axis), the evaluations done and
  their results, and the W&B run id. Written whole to a temporary name and renamed.
- `.lock`: held by the process that runs in the directory.

`resume=auto` (the default) runs the same command into the same directory on from there: trained stages are not
trained again, finished evaluations are not redone, the stage in progress continues from its latest complete
checkpoint, and `metrics.jsonl` keeps exactly what came before that checkpoint.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any, Optional

from rlexp.errors import ConfigError

PROGRESS = "progress.json"
COMPLETE = "complete.json"
LOCK = ".lock"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# what a run directory holds once a run has started in it (Hydra's own .hydra/ and config.yaml do not count)
RUN_FILES = (PROGRESS, "metrics.jsonl", "completions.jsonl", "summary.json", "learning_curve.png")
# keys that may change between a run and its resumption: they say how to run it, not what it computes
RESUMABLE_CHANGES = ("resume", "overwrite", "threads", "logger", "launcher", "run_dir")


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all: to a temporary name first, then renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# -- progress ------------------------------------------------------------------------------------------------------


def new_progress() -> dict:
    # trained: stage -> its number of steps; results: "init" or a stage -> its evaluation
    return {"trained": {}, "results": {}}


def load_progress(run_dir: Path) -> dict:
    path = run_dir / PROGRESS
    return {**new_progress(), **json.loads(path.read_text())} if path.is_file() else new_progress()


def save_progress(run_dir: Path, progress: dict) -> None:
    write_atomically(run_dir / PROGRESS, json.dumps(progress, indent=1))


# -- checkpoints ---------------------------------------------------------------------------------------------------


def mark_complete(checkpoint: Path, info: dict[str, Any]) -> None:
    write_atomically(checkpoint / COMPLETE, json.dumps(info))


def latest_checkpoint(stage_dir: Path) -> Optional[Path]:
    """The stage's newest checkpoint-<step> that was written to the end, if any."""
    if not stage_dir.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in stage_dir.iterdir() if (m := CHECKPOINT.match(p.name)) and (p / COMPLETE).is_file()]
    return max(found)[1] if found else None


def checkpoint_step(checkpoint: Path) -> int:
    return int(CHECKPOINT.match(checkpoint.name).group(1))


# -- the run directory, before a run starts in it --------------------------------------------------------------------


def holds_a_run(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in RUN_FILES)


def config_changes(before: dict, now: dict) -> list[str]:
    """The dotted keys whose values differ between two resolved configs, less those a resumption may change."""
    changed = []

    def walk(a, b, prefix):
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if not prefix and key in RESUMABLE_CHANGES:
                    continue
                walk(a.get(key), b.get(key), f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix.rstrip('.')}: {a!r} -> {b!r}")

    walk(before, now, "")
    return changed


def prepare_run_dir(run_dir: Path, config: dict, previous: Optional[dict], stage_names: list[str]) -> None:
    """Apply `resume` and `overwrite` to a run directory that may hold a run already (its resolved config is
    `previous`). Raises ConfigError, with what to do, where the run must not start."""
    resume = config["resume"]
    if not holds_a_run(run_dir):
        return
    if resume == "never":
        if not config["overwrite"]:
            raise ConfigError(
                f"{run_dir} holds a run already and resume=never; continue it with resume=auto, replace it with "
                "overwrite=true, or choose another hydra.run.dir"
            )
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        for stage in stage_names:
            shutil.rmtree(run_dir / stage, ignore_errors=True)
        return
    if resume == "auto" and previous is not None:
        changes = config_changes(previous, config)
        if changes:
            raise ConfigError(
                f"{run_dir} holds a run with another config ({'; '.join(changes[:3])}{' ...' if len(changes) > 3 else ''}); "
                "resume it with the same command, or start afresh in another hydra.run.dir (or resume=never overwrite=true)"
            )


class RunDirLock:
    """Held by the one process that runs in a run directory; a second one is refused in one line."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK
        self.handle = None

    def __enter__(self) -> "RunDirLock":
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            raise ConfigError(
                f"{self.path.parent} is in use by {holder}; wait for it to end, or choose another hydra.run.dir"
            ) from None
        self.handle.truncate(0)
        self.handle.write(f"rlexp process {os.getpid()}")
        self.handle.flush()
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


# -- metrics -------------------------------------------------------------------------------------------------------


def is_evaluation(record: dict) -> bool:
    return any(key.startswith("eval/") for key in record)


def kept_metrics(
    records: list[dict], progress: dict, stage: Optional[str], resume_step: int, evaluation_record=is_evaluation
) -> list[dict]:
    """The records of metrics.jsonl (or completions.jsonl, whose evaluation records `evaluation_record` tells) that a
    resumption keeps: what the trained stages logged, the evaluations that `progress` holds, and what `stage` logged
    up to `resume_step` (its checkpoint) on the run's step axis. A resumption logs the rest again, so each record is
    written once."""
    kept = []
    for record in records:
        name, evaluation = record.get("stage"), evaluation_record(record)
        if evaluation:
            keep = name in progress["results"]
        elif name in progress["trained"]:
            keep = True
        else:  # a summary of an interrupted stage's training (train_runtime ...) is not kept: its end is to come
            keep = name == stage and record.get("step", 0) <= resume_step and "train_runtime" not in record
        if keep:
            kept.append(record)
    return kept


# -- stopping on a signal --------------------------------------------------------------------------------------------


class Interrupted(Exception):
    """The run stopped on a stop signal after saving what it needs to resume."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # as a shell reports a process ended by that signal


# SIGTERM: Slurm's warning before a preemption, or `kill`; SIGINT: Ctrl-C; SIGUSR2: the warning a Slurm job asks for
# before its time limit (`--signal=USR2@<seconds>`, as hydra/launcher=slurm does through submitit)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)


class StopSignals:
    """While in effect, a stop signal (STOP_SIGNALS) asks the run to stop at the end of the current step, after a
    checkpoint; a second SIGINT stops it at once."""

    def __init__(self, say):
        self.say = say
        self.signum: Optional[int] = None
        self._before: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        self.say(
            f"[rlexp] {signal.Signals(signum).name}: stopping after this step with a checkpoint; "
            "rerun the same command to resume (Ctrl-C again stops at once, losing the step)"
        )

    def __enter__(self) -> "StopSignals":
        for signum in STOP_SIGNALS:
            self._before[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._before.items():
            signal.signal(signum, handler)

    def check(self) -> None:
        """Raise Interrupted if a stop was asked for."""
        if self.signum is not None:
            raise Interrupted(self.signum)


def hand_on(signum: int) -> None:
    """Once the run has stopped with a checkpoint, give the signal to the handler this process had for it before
    rlexp's, if one was set: in a Slurm job started by submitit (hydra/launcher=slurm), that handler requeues the job
    (the requeued job resumes from the checkpoint) and exits."""
    handler = signal.getsignal(signum)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signum, None)


def die_with_parent() -> None:
    """In a launched process, before it runs: killed when the process that started it dies, however it dies, so
    that no part of a run goes on alone (and writes into a run directory that a rerun may use by then)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
