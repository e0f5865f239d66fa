"""mode=eval: one checkpoint on the environment's eval splits, every rank a share of the prompts."""

from __future__ import annotations

from rlexp.modes.base import Run, evaluate_checkpoint


def main(run: Run) -> None:
    run.summary["results"]["checkpoint"] = evaluate_checkpoint(run, run.cfg.checkpoint, "checkpoint")
