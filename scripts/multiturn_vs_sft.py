"""The miniature of "SFT Memorizes, RL Generalizes" (arXiv 2501.17161) on CPU: SFT only vs SFT then multi-turn GRPO.

    python scripts/multiturn_vs_sft.py --seeds 0 1 2        (about 15 minutes a seed on 2 cores)

For each seed, one run of `experiment=demo` (GeneralPoints with 3 cards and target 12, the short prompt, binary
reward: knobs the tiny model can learn) with `env.max_attempts` attempts per episode, the verifier's feedback as
the next user turn:
1. SFT on solver-made demonstrations (single-turn, as the paper's SFT data), then evaluated with multi-turn episodes:
   the "SFT only" arm;
2. multi-turn GRPO from that checkpoint (episode return: the binary reward of the solving attempt, discounted by
   gamma per attempt, so an earlier solution is worth more), evaluated the same way: the "SFT then RL" arm.
Both arms are evaluated on the same ID (J/Q/K = 10) and OOD (J/Q/K = 11/12/13) deals with the same seed. It prints,
per seed and as mean ± standard deviation over seeds, success within the attempts and first-try success.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METRICS = {"success": "success within attempts", "first_try_success": "first-try success"}


def rlexp(*args: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "TRL_EXPERIMENTAL_SILENCE": "1"}
    done = subprocess.run([sys.executable, "-m", "rlexp", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"rlexp {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    run_dir = next(a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir="))
    return json.loads(Path(run_dir, "summary.json").read_text())


def spread(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--attempts", type=int, default=5)
    parser.add_argument("--grpo-steps", type=int, default=60)
    parser.add_argument("--gamma", type=float, default=0.9)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="multiturn-vs-sft-"))
    print(f"runs in {out}", flush=True)

    arms = {"sft": "SFT only", "grpo": "SFT then multi-turn GRPO"}
    found: dict[tuple[str, str, str], list[float]] = {}
    for seed in args.seeds:
        summary = rlexp(
            "experiment=demo",
            "logger=none",
            "eval.before=false",
            f"env.max_attempts={args.attempts}",
            f"algo.max_steps={args.grpo_steps}",
            f"algo.gamma={args.gamma}",
            f"seed={seed}",
            f"hydra.run.dir={out}/seed{seed}",
        )
        for stage in arms:
            for split in ("id", "ood"):
                m = summary["results"][stage][split]
                for key in METRICS:
                    found.setdefault((stage, split, key), []).append(m[key])
                print(
                    f"seed {seed} {arms[stage]:26s} {split:3s}: success within {args.attempts} attempts "
                    f"{m['success']:.3f}, first try {m['first_try_success']:.3f}, mean attempts {m['mean_attempts']:.2f}",
                    flush=True,
                )

    print(f"\n{'arm':26s}{'split':>6s}" + "".join(f"{name:>26s}" for name in METRICS.values()))
    for stage, arm in arms.items():
        for split in ("id", "ood"):
            print(f"{arm:26s}{split:>6s}" + "".join(f"{spread(found[stage, split, key]):>26s}" for key in METRICS))
    print(f"({len(args.seeds)} seeds; ± is the standard deviation over seeds; 64 deals x 4 episodes per split)")


if __name__ == "__main__":
    main()
