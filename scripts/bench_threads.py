"""How much the `threads` setting matters: a tiny GRPO step with rlexp's default thread count beside
one thread, on an idle machine and beside a competing CPU-bound process.

    python scripts/bench_threads.py            # or: make bench

torch's own default is one intra-op thread per core. When another process takes one of the cores,
a thread per core means the step waits, at every parallel region, for its slowest thread, the one
that shares a core. rlexp's default (`threads=null`) is the cores divided among the processes the
run starts; this script shows the step time of that default and of `threads=1`, side by side, in
the same command, and their ratio.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = 6
RUN = [
    "algo=grpo", "env.num_cards=3", "env.target=12", "env.prompt_style=short", "logger=none", "eval.before=false",
    "eval.num_prompts=1", "eval.num_samples=1", "eval.k=[1]", f"algo.max_steps={STEPS}", "algo.per_device_train_batch_size=16",
    "algo.num_generations=8", "algo.max_completion_length=64",
]  # fmt: skip
COMPETITOR = "while True:\n    sum(i * i for i in range(10000))"


def step_times(threads: str, workdir: Path) -> list[float]:
    run_dir = workdir / f"threads-{threads}-{len(list(workdir.iterdir()))}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    subprocess.run(
        [sys.executable, "-m", "rlexp", *RUN, f"threads={threads}", f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["step_time"] for r in rows if "step_time" in r][1:]  # the first step warms up


def main() -> None:
    cores = len(os.sched_getaffinity(0))
    print(
        f"tiny GRPO step ({STEPS - 1} steps after the first, 16 completions of up to 64 tokens), {cores} cores; "
        f"default = threads=null ({cores} here), median step time in seconds"
    )
    print(f"{'machine':<28}{'default':>10}{'threads=1':>12}{'default / 1':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for label, busy in (("idle", False), ("one competing process", True)):
            competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR]) if busy else None
            try:
                medians = {}
                for threads in ("null", "1", "null", "1"):  # alternated, so a drift in load hits both
                    medians.setdefault(threads, []).extend(step_times(threads, workdir))
            finally:
                if competitor is not None:
                    competitor.kill()
                    competitor.wait()
            default, one = statistics.median(medians["null"]), statistics.median(medians["1"])
            print(f"{label:<28}{default:>10.3f}{one:>12.3f}{default / one:>14.2f}")


if __name__ == "__main__":
    main()
