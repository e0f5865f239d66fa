"""SDPO and GRPO side by side on CPU: the same starting model, prompts, steps and learning rate, several seeds.

    python scripts/sdpo_vs_grpo.py --seeds 0 1 2          (about 30 minutes on 2 cores)

1. The starting model is the demo's SFT stage (GeneralPoints, 3 cards, target 12, as in `experiment=demo`): a tiny
   model that writes the answer format and solves some deals.
2. Feedback carries signal: a failed deal's feedback names what went wrong and shows one solution
   (`env.reveal_solution=true`); GRPO ignores feedback, SDPO's teacher reads it (and a successful sibling).
3. For each seed, each arm trains `--steps` steps from that model: GRPO, SDPO (pure distillation) and the paper's
   hybrid (0.9 GRPO + 0.1 SDPO).
4. It prints, per arm, the first step at which the training success (mean over a 5-step window) reaches
   `--threshold` and the final ID success after training, with mean and standard deviation over seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from pear_vs_sft import rlexp  # runs `python -m rlexp ...` offline and returns the run's summary

GAME = ["env.num_cards=3", "env.target=12", "env.prompt_style=short", "env.reward_mode=binary", "env.reveal_solution=true"]
EVAL = ["logger=none", "eval.num_prompts=64", "eval.num_samples=4", "eval.k=[1,4]", "eval.max_new_tokens=96"]
ARMS = {
    "grpo": ["algo=grpo", "algo.scale_rewards=none"],
    "sdpo": ["algo=sdpo"],
    "hybrid": ["algo=sdpo", "algo.distillation_weight=0.1"],
}
WINDOW = 5


def training_success(run_dir: Path) -> list[float]:
    """Training success per step: SDPO logs `success`, GRPO `generalpoints/success`."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r.get("success", r.get("generalpoints/success")) for r in rows
            if "success" in r or "generalpoints/success" in r]


def steps_to(curve: list[float], threshold: float) -> float:
    for step in range(WINDOW, len(curve) + 1):
        if statistics.fmean(curve[step - WINDOW:step]) >= threshold:
            return step
    return float("inf")


def spread(values: list[float]) -> str:
    finite = [v for v in values if v != float("inf")]
    if len(finite) < len(values):
        return f"{len(values) - len(finite)}/{len(values)} never" + (f", others {statistics.fmean(finite):.1f}" if finite else "")
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--sft-steps", type=int, default=700)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--threshold", type=float, default=0.6)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="sdpo-vs-grpo-"))
    print(f"runs in {out}", flush=True)

    sft_dir = out / "sft"
    if (sft_dir / "summary.json").is_file():  # a rerun in the same --out keeps its starting model
        start = json.loads((sft_dir / "summary.json").read_text())
    else:
        start = rlexp("algo=sft", *GAME, *EVAL, "eval.before=false", "algo.learning_rate=1e-3", "algo.warmup_steps=20",
                      f"algo.max_steps={args.sft_steps}", "algo.per_device_train_batch_size=16", f"hydra.run.dir={sft_dir}")
    checkpoint = sft_dir / "sft" / "checkpoint"
    print(f"starting model: ID success {start['results']['sft']['id']['success']:.3f}", flush=True)

    common = [*GAME, *EVAL, "eval.before=false", f"checkpoint={checkpoint}", f"algo.learning_rate={args.learning_rate}",
              f"algo.max_steps={args.steps}", "algo.per_device_train_batch_size=32", "algo.num_generations=8",
              "algo.max_completion_length=96"]
    results: dict[str, dict[str, list[float]]] = {arm: {"steps": [], "final": []} for arm in args.arms}
    for seed in args.seeds:
        for arm in args.arms:
            run_dir = out / f"{arm}-seed{seed}"
            summary = rlexp(*ARMS[arm], *common, f"seed={seed}", f"hydra.run.dir={run_dir}")
            curve = training_success(run_dir)
            final = summary["results"][summary["stages"][-1]]["id"]["success"]
            results[arm]["steps"].append(steps_to(curve, args.threshold))
            results[arm]["final"].append(final)
            print(f"seed {seed} {arm:<7} training success first {WINDOW} steps {statistics.fmean(curve[:WINDOW]):.3f}, "
                  f"last {WINDOW} {statistics.fmean(curve[-WINDOW:]):.3f} | steps to {args.threshold} "
                  f"{results[arm]['steps'][-1]} | final ID success {final:.3f}", flush=True)

    print(f"\n{'arm':<8}{'steps to ' + str(args.threshold) + ' (window ' + str(WINDOW) + ')':>32}{'final ID success':>22}")
    for arm in args.arms:
        print(f"{arm:<8}{spread(results[arm]['steps']):>32}{spread(results[arm]['final']):>22}")


if __name__ == "__main__":
    main()
