"""mode=eval: one checkpoint on the environment's eval splits."""

from __future__ import annotations

from rlexp.modes.base import Run, evaluate_checkpoint


def main(run: Run) -> None:
    if run.state.is_main_process:
        results = evaluate_checkpoint(run, run.cfg.checkpoint, "checkpoint")
        run.summary["results"]["checkpoint"] = results
    run.state.wait_for_everyone()
