"""How fast environments score, next to the tiny model's GRPO step: a score call must never be the bottleneck.

    python scripts/bench_envs.py            # or: make bench

For each environment, on a fixed mixed batch (a third correct answers, a third wrong ones, a third hostile
text), it prints completions scored per second through `score_batch` (what a GRPO step calls), the 99th
percentile latency of one `score` call, and, from a short GRPO run of the tiny model on the same environment in
this command, the median step time and the share of it that scoring its 32 completions would take.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlexp import envs

ROOT = Path(__file__).resolve().parent.parent
GRPO_BATCH = 32

HOSTILE = [
    "",
    "   \n\t",
    "x" * 1_000_000,
    "\\boxed{9^{9^{9^{9}}}}",
    "\\boxed{10**10**10}",
    "<answer>" + "[" * 1000 + "</answer>",
    "<answer>10**10**10</answer>",
    "<answer>２４</answer>",
    "<think><answer>1</answer>",
    "\\boxed{" + "{" * 5000,
    "<answer>[[1,2],[3]]</answer>",
    "<answer>\x00\ud800</answer>",
    "\\boxed{\\frac{1}{" * 300,
    "<answer>1</answer><answer>2</answer>" * 100,
    "\\boxed{10^{10^{10}}}",
    "\\boxed{99999999999^99999999999}",
    "\\boxed{(10^{100})!}",
    "\\boxed{2^{100}}",
]


def mixed_batch(env, size: int) -> tuple[list[str], list[dict]]:
    rows = list(env.dataset("test").select(range(size)))
    texts = []
    for i, row in enumerate(rows):
        kind = i % 3
        if kind == 0:
            texts.append(correct(env, row))
        elif kind == 1:
            texts.append(wrong(env, row))
        else:
            texts.append(HOSTILE[(i // 3) % len(HOSTILE)])
    return texts, rows


def correct(env, row) -> str:
    if env.name == "math":
        return row["reference_solution"]
    return f"<think>done</think>\n<answer>{row['reference']}</answer>"


def wrong(env, row) -> str:
    if env.name == "math":
        return "So the answer is \\boxed{123457}."
    return f"<think>guess</think>\n<answer>{row['reference'][::-1]}</answer>"


def grpo_step_seconds(env_name: str, env_args: list[str]) -> float:
    """Median step time of a short GRPO run of the tiny model (32 completions a step), in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "rlexp",
                "algo=grpo",
                f"env={env_name}",
                *env_args,
                "logger=none",
                "eval.before=false",
                "eval.num_prompts=1",
                "eval.num_samples=1",
                "eval.k=[1]",
                "algo.max_steps=6",
                f"algo.per_device_train_batch_size={GRPO_BATCH}",
                "algo.num_generations=8",
                "algo.max_completion_length=96",
                f"hydra.run.dir={tmp}/run",
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"},
        )
        steps = [json.loads(line) for line in Path(tmp, "run", "metrics.jsonl").read_text().splitlines()]
    times = [r["step_time"] for r in steps if "step_time" in r][1:]  # the first step warms up
    return statistics.median(times)


def measure(env_name: str, knobs: dict, env_args: list[str], size: int = 240) -> None:
    env = envs.make(env_name, **knobs)
    texts, rows = mixed_batch(env, size)
    env.score_batch(texts[:8], rows[:8])  # start worker processes before timing
    start = time.perf_counter()
    env.score_batch(texts, rows)
    rate = len(texts) / (time.perf_counter() - start)
    latencies = []
    for text, row in zip(texts, rows):
        t = time.perf_counter()
        env.score(text, row)
        latencies.append(time.perf_counter() - t)
    p99 = statistics.quantiles(latencies, n=100)[98]
    step = grpo_step_seconds(env_name, env_args)
    share = GRPO_BATCH / rate / step
    print(
        f"{env_name:10s} {rate:8.0f} completions/s | p99 of one score {p99 * 1000:7.1f} ms | tiny GRPO step "
        f"{step:5.2f} s; scoring its {GRPO_BATCH} completions = {share:.1%} of it"
    )


def main() -> None:
    print(f"{len(HOSTILE)} hostile texts in the mix; {os.cpu_count()} CPU cores here (CI has 2)")
    measure("math", {"eval_size": 240, "workers": 2}, ["env.difficulty=2", "env.workers=2"])
    measure("synlogic", {"eval_size": 240, "difficulty": 3}, ["env.difficulty=3"])


if __name__ == "__main__":
    main()
