"""One progress bar over a training run, on the main process: the stages, their steps and the evaluations, with an
estimate of the time left. It goes to stderr (stdout carries rlexp's own lines only) at the top, position 0, with
TRL's bar of the stage below it; rlexp's own lines are printed around it (rlexp/console.py).

The time left is the current stage's remaining steps at its measured pace, the later stages' steps at that same pace
(a later stage's steps may cost more or less), and the evaluations left at the last one's measured length; before a
stage's first step, or before the first evaluation ends, it says what it cannot estimate yet.
"""

from __future__ import annotations

import contextlib
import sys
import time

from tqdm.auto import tqdm
from transformers import TrainerCallback

from rlexp.console import say

# the bar is drawn again at most this often while steps go by: drawing it (and TRL's bar below it) every step of a small
# model cost about 10 ms, 20% of its step
REDRAW_S = 0.5


class RunProgress:
    def __init__(self, stages: list[tuple[str, int]], trained: dict[str, int], evaluations: int, file=None):
        """`stages`: (name, steps) in order; `trained`: the stages done already (a resumption) and their steps;
        `evaluations`: how many evaluations the run has left."""
        self.steps = {name: trained.get(name, steps) for name, steps in stages}
        self.names = [name for name, _ in stages]
        self.evaluations_left = evaluations
        self.evaluation_s = None  # the last evaluation's length
        self.stage, self.pace = None, None  # the running stage, its seconds per step
        self.shown = 0.0  # when the bar was last drawn
        self.bar = tqdm(
            total=sum(self.steps.values()), initial=sum(trained.values()), desc="run", unit="step", position=0, leave=True,
            dynamic_ncols=True, file=file or sys.stderr,
            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps [{elapsed}{postfix}]",
        )  # fmt: skip
        self.show()

    def stage_begins(self, name: str, max_steps: int, step: int) -> None:
        """Stage `name` starts training at its step `step` (0, or a checkpoint's) of `max_steps`."""
        self.bar.total += max_steps - self.steps[name]
        self.steps[name] = max_steps
        self.stage, self.first_step, self.started, self.pace = name, step, time.time(), None
        self.bar.n = self.offset(name) + step
        self.show()

    def step_ends(self, step: int) -> None:
        took = time.time() - self.started
        self.pace = took / (step - self.first_step)
        if self.first_step == 0 and step == 1 and self.steps[self.stage] > 1:  # a stage's start, not its resumption
            say(
                f"[rlexp] stage {self.stage}: the first step took {took:.1f} s; "
                f"{self.steps[self.stage]} steps at that pace take about {duration(took * self.steps[self.stage])}"
            )
        self.bar.n = self.offset(self.stage) + step
        if time.time() - self.shown >= REDRAW_S or step == self.steps[self.stage]:
            self.show()

    @contextlib.contextmanager
    def evaluation(self, name: str):
        """Around the evaluation of stage `name` (or init)."""
        self.show(f"eval {name}")
        started = time.time()
        yield
        self.evaluation_s = time.time() - started
        self.evaluations_left -= 1
        self.show()

    def offset(self, name: str) -> int:
        return sum(self.steps[n] for n in self.names[: self.names.index(name)])

    def time_left(self) -> str:
        steps_left = self.bar.total - self.bar.n
        if steps_left and self.pace is None:
            return "time left: after the first step"
        seconds = steps_left * (self.pace or 0.0)
        if self.evaluations_left and self.evaluation_s is None:
            return f"~{duration(seconds)} left + {self.evaluations_left} evaluation(s)"
        return f"~{duration(seconds + self.evaluations_left * (self.evaluation_s or 0.0))} left"

    def show(self, doing: str | None = None) -> None:
        where = f"stage {self.names.index(self.stage) + 1}/{len(self.names)} {self.stage}" if self.stage else ""
        self.bar.set_description_str(f"run: {doing or where}".rstrip(": "), refresh=False)
        self.bar.set_postfix_str(self.time_left(), refresh=False)
        self.bar.refresh()
        self.shown = time.time()

    def close(self) -> None:
        if self.bar.n == self.bar.total and not self.evaluations_left:
            self.show("done")
        self.bar.close()


class StageProgress(TrainerCallback):
    """Moves the run's bar with a stage's steps."""

    def __init__(self, progress: RunProgress, stage: str):
        self.progress, self.stage = progress, stage

    def on_train_begin(self, args, state, control, **kwargs):
        self.progress.stage_begins(self.stage, state.max_steps, state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        self.progress.step_ends(state.global_step)


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
