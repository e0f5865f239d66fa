"""SDPO and GRPO side by side on CPU: the same starting model, prompts, steps and learning rate, several seeds.

    python scripts/sdpo_vs_grpo.py --seeds 0 1 2                            (about half an hour on 2 cores,
    python scripts/sdpo_vs_grpo.py --seeds 0 1 2 --read-context-steps 300   plus the SFT stage the first time)

1. The starting model is the demo's SFT stage (GeneralPoints, 3 cards, target 12, as in `experiment=demo`): a tiny
   model that writes the answer format and solves some deals. SDPO's teacher is this model reading a longer prompt
   it was never trained on; with `--read-context-steps N` it first gets N steps of SFT on deals whose prompt is a
   teacher's (SDPO's templates, with a correct solution of that deal, or feedback showing one) and whose answer
   uses it, mixed with plain deals, so that the self-teacher can read its context as a large model does.
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


def context_reader(checkpoint: Path, out: Path, steps: int) -> Path:
    """`checkpoint` after `steps` of SFT on a third plain deals, a third teacher prompts with a correct solution of
    the deal, a third teacher prompts with the env's feedback (which shows one solution); answers use that one."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    from rlexp import envs, models
    from rlexp.algos.sdpo import SDPO
    from rlexp.algos.sft import as_prompt_completion
    from rlexp.envs.generalpoints import render_response, solve

    env = envs.make("generalpoints", num_cards=3, target=12, prompt_style="short", reward_mode="binary", reveal_solution=True)
    templates = SDPO()
    rows = []
    for i, row in enumerate(env.dataset("train")):
        question = row["prompt"][-1]["content"]
        formula = solve(row["values"], row["target"])[0]  # the one the feedback shows
        answer = render_response(row["cards"], row["values"], formula, row["target"])
        solution = feedback = ""
        if i % 3 == 1:
            solution = templates.solution_template.format(successful_previous_attempt=answer)
        elif i % 3 == 2:
            feedback = templates.feedback_template.format(feedback_raw=env.score("no answer", row).feedback)
        prompt = templates.reprompt_template.format(prompt=question, solution=solution, feedback=feedback) if i % 3 else question
        rows.append({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]})
    model, tokenizer = models.load(models.ModelConfig(), str(checkpoint))
    args = SFTConfig(
        output_dir=str(out),
        max_steps=steps,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        per_device_train_batch_size=16,
        max_length=1024,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=max(steps // 5, 1),
        seed=0,
    )
    trainer = SFTTrainer(
        model=model, args=args, processing_class=tokenizer, train_dataset=as_prompt_completion(datasets.Dataset.from_list(rows))
    )
    trainer.train()
    trainer.save_model(str(out / "checkpoint"))
    return out / "checkpoint"


def training_success(run_dir: Path) -> list[float]:
    """Training success per step: SDPO logs `success`, GRPO `generalpoints/success`."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r.get("success", r.get("generalpoints/success")) for r in rows if "success" in r or "generalpoints/success" in r]


def steps_to(curve: list[float], threshold: float) -> float:
    for step in range(WINDOW, len(curve) + 1):
        if statistics.fmean(curve[step - WINDOW : step]) >= threshold:
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
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--threshold", type=float, default=0.6)
    parser.add_argument("--read-context-steps", type=int, default=0)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="sdpo-vs-grpo-"))
    print(f"runs in {out}", flush=True)

    sft_dir = out / "sft"
    if (sft_dir / "summary.json").is_file():  # a rerun in the same --out keeps its starting model
        start = json.loads((sft_dir / "summary.json").read_text())
    else:
        start = rlexp(
            "algo=sft",
            *GAME,
            *EVAL,
            "eval.before=false",
            "algo.learning_rate=1e-3",
            f"algo.max_steps={args.sft_steps}",
            "algo.per_device_train_batch_size=16",
            f"hydra.run.dir={sft_dir}",
        )
    checkpoint = sft_dir / "sft" / "checkpoint"
    print(f"SFT stage: ID success {start['results']['sft']['id']['success']:.3f}", flush=True)
    if args.read_context_steps:
        checkpoint = context_reader(checkpoint, out / "context-reader", args.read_context_steps)
        check = rlexp("mode=eval", f"checkpoint={checkpoint}", *GAME, *EVAL, f"hydra.run.dir={out}/context-reader/eval")
        print(
            f"after {args.read_context_steps} steps of reading a teacher's context: ID success "
            f"{check['results']['checkpoint']['id']['success']:.3f}",
            flush=True,
        )

    common = [
        *GAME,
        *EVAL,
        "eval.before=false",
        f"checkpoint={checkpoint}",
        f"algo.learning_rate={args.learning_rate}",
        f"algo.max_steps={args.steps}",
        "algo.per_device_train_batch_size=32",
        "algo.num_generations=8",
        "algo.max_completion_length=96",
    ]
    results: dict[str, dict[str, list[float]]] = {arm: {"steps": [], "final": []} for arm in args.arms}
    for seed in args.seeds:
        for arm in args.arms:
            run_dir = out / f"{arm}-seed{seed}"
            summary = rlexp(*ARMS[arm], *common, f"seed={seed}", f"hydra.run.dir={run_dir}")
            curve = training_success(run_dir)
            final = summary["results"][summary["stages"][-1]]["id"]["success"]
            results[arm]["steps"].append(steps_to(curve, args.threshold))
            results[arm]["final"].append(final)
            print(
                f"seed {seed} {arm:<7} training success first {WINDOW} steps {statistics.fmean(curve[:WINDOW]):.3f}, "
                f"last {WINDOW} {statistics.fmean(curve[-WINDOW:]):.3f} | steps to {args.threshold} "
                f"{results[arm]['steps'][-1]} | final ID success {final:.3f}",
                flush=True,
            )

    print(f"\n{'arm':<8}{'steps to ' + str(args.threshold) + ' (window ' + str(WINDOW) + ')':>32}{'final ID success':>22}")
    for arm in args.arms:
        print(f"{arm:<8}{spread(results[arm]['steps']):>32}{spread(results[arm]['final']):>22}")


if __name__ == "__main__":
    main()
