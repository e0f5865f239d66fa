"""The miniature PEAR experiment on CPU: behaviour model -> {SFT, PEAR} on its samples -> identical GRPO.

    python scripts/pear_vs_sft.py --seeds 0 1 2         (about 20 minutes on 2 cores)

1. The behaviour model is the demo's SFT stage (GeneralPoints, 3 cards, target 12, as in `experiment=demo`).
2. It samples answers for the training deals; the correct ones, with its log-probs, are one shared dataset.
3. For each seed, a fresh tiny model is trained on that dataset twice: plain SFT (PEAR with every weight 1,
   gamma 1 and both clips 0, which tests/test_pear.py shows is exactly SFT) and PEAR with its defaults, each
   followed by the same GRPO. Both arms see the same samples, steps, learning rates and seeds.
4. It prints the final ID reward and success of each arm per seed, and their mean and standard deviation.
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
GAME = ["env.num_cards=3", "env.target=12", "env.prompt_style=short", "env.reward_mode=binary"]
EVAL = ["logger=none", "eval.num_prompts=64", "eval.num_samples=4", "eval.k=[1,4]", "eval.max_new_tokens=96"]


def rlexp(*args: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    done = subprocess.run([sys.executable, "-m", "rlexp", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"rlexp {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    run_dir = next(a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir="))
    return json.loads(Path(run_dir, "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--behaviour-steps", type=int, default=700)
    parser.add_argument("--sft-steps", type=int, default=300)
    parser.add_argument("--grpo-steps", type=int, default=60)
    parser.add_argument("--behaviour-prompts", type=int, default=256)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="pear-vs-sft-"))
    print(f"runs in {out}", flush=True)

    behaviour = rlexp(
        "algo=sft",
        *GAME,
        *EVAL,
        "eval.before=false",
        "algo.learning_rate=1e-3",
        f"algo.max_steps={args.behaviour_steps}",
        "algo.per_device_train_batch_size=16",
        f"hydra.run.dir={out}/behaviour",
    )
    behaviour_ckpt = Path(behaviour["run_dir"]) / "sft" / "checkpoint"
    print(f"behaviour model: ID success {behaviour['results']['sft']['id']['success']:.3f}", flush=True)

    common = [
        *GAME,
        *EVAL,
        "eval.before=false",
        "experiment=pear_then_grpo",
        "prepare.pear.learning_rate=1e-3",
        f"prepare.pear.max_steps={args.sft_steps}",
        "prepare.pear.per_device_train_batch_size=16",
        "algo.learning_rate=1e-4",
        f"algo.max_steps={args.grpo_steps}",
        "algo.per_device_train_batch_size=32",
        "algo.num_generations=8",
        "algo.max_completion_length=96",
    ]
    arms = {
        "sft": ["prepare.pear.gamma=1.0", "prepare.pear.delta_clip=[0,0]", "prepare.pear.log_weight_clip=[0,0]"],
        "pear": [],
    }
    data = None
    results: dict[str, list[dict]] = {arm: [] for arm in arms}
    for seed in args.seeds:
        for arm, knobs in arms.items():
            source = (
                [f"prepare.pear.behaviour_data={data}"]
                if data
                else [
                    f"prepare.pear.behaviour_model={behaviour_ckpt}",
                    "prepare.pear.behaviour_samples=4",
                    f"prepare.pear.behaviour_prompts={args.behaviour_prompts}",
                    "prepare.pear.behaviour_max_new_tokens=96",
                ]
            )
            run = out / f"{arm}-seed{seed}"
            summary = rlexp(*common, *source, *knobs, f"seed={seed}", f"hydra.run.dir={run}")
            data = data or run / "pear" / "behaviour"  # every later run trains on these same samples
            final = summary["results"]["grpo"]["id"]
            after_sft = summary["results"]["pear"]["id"]
            results[arm].append(
                {
                    "sft_success": after_sft["success"],
                    "reward": final["mean_reward"],
                    "success": final["success"],
                    "pass@4": final["pass@4"],
                }
            )
            print(
                f"seed {seed} {arm:5s} after SFT stage {after_sft['success']:.3f} | after GRPO: reward "
                f"{final['mean_reward']:.3f} success {final['success']:.3f} pass@4 {final['pass@4']:.3f}",
                flush=True,
            )

    print(f"\n{'arm':6s}{'after SFT stage':>22s}{'final reward':>22s}{'final success':>22s}{'final pass@4':>22s}")
    for arm, rows in results.items():
        cells = []
        for key in ("sft_success", "reward", "success", "pass@4"):
            values = [r[key] for r in rows]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.fmean(values):.3f} ± {spread:.3f}".rjust(22))
        print(f"{arm:6s}{''.join(cells)}")
    print(f"({len(args.seeds)} seeds; ± is the standard deviation over seeds; ID deals, 64 x 4 samples)")


if __name__ == "__main__":
    main()
