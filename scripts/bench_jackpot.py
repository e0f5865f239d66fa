"""What Jackpot adds to a GRPO step, measured side by side on the same batch, and top-k Z against exact Z.

    python scripts/bench_jackpot.py            # or: make bench

1. Step time. The tiny model (model=tiny) as the policy, GeneralPoints prompts, 32 completions of up to 96 tokens.
   Per repetition and arm, from the same seed: generate and score the batch (`_generate_and_score_completions`),
   then the loss and its backward (the optimizer step, the same for every arm, is left out). Arms:
     grpo             TRL's GRPOTrainer
     jackpot-self     JackpotGRPOTrainer with actor = the policy: the same completions as grpo, so the difference
                      is Jackpot's own work (one no-grad pass of the policy over the rollouts, the weights)
     jackpot-actor    a separate actor of the policy's size (other weights) generates; adds its scoring pass
   Printed: median times, the ratio to grpo and Jackpot's own measured seconds as a share of the grpo step (both
   paired per repetition, medians).
   Target: under 5%.
2. Z. For N positions of two random distributions over V tokens (V = the tiny vocabulary, 32k, 152k), the
   time of the top-k estimate (k = 20: top-k, gathers, sum) and of the exact sum over the vocabulary, both
   given the two log-softmaxed distributions, which the scoring pass computes in either case, and of the
   estimate when vLLM has returned the actor's top-k ids (the target's gather and the sum only).
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from trl import GRPOConfig, GRPOTrainer

from rlexp import envs
from rlexp.algos.jackpot import JackpotOptions
from rlexp.models import ModelConfig, build_tiny, byte_tokenizer
from rlexp.rewards import EnvReward
from rlexp.trainers.actor_rollouts import topk_candidates
from rlexp.trainers.jackpot import JackpotGRPOTrainer, z_sum

PROMPTS, GENERATIONS, MAX_LEN, REPS = 4, 8, 96, 4


def trainer(arm: str, env, tokenizer):
    model = build_tiny(ModelConfig(), tokenizer)  # model=tiny: the same weights in every arm
    args = GRPOConfig(output_dir="/tmp/rlexp-bench-jackpot", use_cpu=True, report_to="none", bf16=False,
                      per_device_train_batch_size=PROMPTS * GENERATIONS, num_generations=GENERATIONS,
                      max_completion_length=MAX_LEN, loss_type="dapo")  # fmt: skip
    common = dict(model=model, reward_funcs=[EnvReward.for_env(env)],
                  args=args, train_dataset=env.dataset("train"), processing_class=tokenizer)  # fmt: skip
    if arm == "grpo":
        t = GRPOTrainer(**common)
    else:
        actor = build_tiny(ModelConfig(init_seed=1), tokenizer) if arm == "jackpot-actor" else None
        t = JackpotGRPOTrainer(**common, actor=actor, options=JackpotOptions())
    t.current_gradient_accumulation_steps = 1
    model.train()
    return t, model


def step_seconds(t, model, rows, seed: int) -> tuple[float, float, int, float, float]:
    torch.manual_seed(seed)
    started = time.perf_counter()
    inputs = t._generate_and_score_completions(rows)
    generated = time.perf_counter() - started
    loss = t.compute_loss(model, inputs)
    loss.backward()
    model.zero_grad()
    seconds = time.perf_counter() - started
    # for context: TRL's own no-grad log-prob pass over the batch, which GRPO runs when vLLM generates (IS on)
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    started = time.perf_counter()
    with torch.no_grad():
        GRPOTrainer._get_per_token_logps_and_entropies(
            t, model, ids, attention, inputs["completion_ids"].size(1), batch_size=len(rows)
        )
    trl_pass = time.perf_counter() - started
    return seconds, getattr(t, "jackpot_seconds", 0.0), int(inputs["completion_mask"].sum()), trl_pass, seconds - generated


def bench_steps() -> None:
    tokenizer = byte_tokenizer()
    env = envs.make("generalpoints")
    prompts = list(env.dataset("train").select(range(PROMPTS)))
    rows = [row for row in prompts for _ in range(GENERATIONS)]  # each prompt G times, as TRL's sampler gives them
    arms = {name: trainer(name, env, tokenizer) for name in ("grpo", "jackpot-self", "jackpot-actor")}
    times: dict[str, list[float]] = {name: [] for name in arms}
    extra: dict[str, list[float]] = {name: [] for name in arms}
    tokens: dict[str, list[int]] = {name: [] for name in arms}
    trl_pass: list[float] = []
    loss_times: dict[str, list[float]] = {name: [] for name in arms}
    for rep in range(REPS + 1):  # repetition 0 warms up
        for name, (t, model) in arms.items():
            seconds, jackpot_seconds, n, logps_pass, loss_seconds = step_seconds(t, model, rows, seed=rep)
            if rep:
                loss_times[name].append(loss_seconds)
                trl_pass.append(logps_pass)
                times[name].append(seconds)
                extra[name].append(jackpot_seconds)
                tokens[name].append(n)
    grpo = statistics.median(times["grpo"])
    print(f"Jackpot vs GRPO, same batch: model=tiny policy, {PROMPTS} prompts x {GENERATIONS} completions, max {MAX_LEN} tokens, "
          f"median of {REPS} (CPU, {torch.get_num_threads()} threads)")  # fmt: skip
    # ratios are paired: each repetition's arm against that repetition's grpo step, so a busy machine biases less
    print(f"{'arm':<15}{'step s':>9}{'/ grpo':>9}{'loss+bwd s':>12}{'jackpot s':>11}{'jackpot / grpo step':>21}{'tokens':>9}")
    for name in arms:
        step = statistics.median(times[name])
        ratio = statistics.median(a / b for a, b in zip(times[name], times["grpo"]))
        share = statistics.median(a / b for a, b in zip(extra[name], times["grpo"]))
        shown = f"{100 * share:.1f}%" if name != "grpo" else "-"
        print(
            f"{name:<15}{step:>9.3f}{ratio:>9.3f}{statistics.median(loss_times[name]):>12.3f}{statistics.median(extra[name]):>11.3f}"
            f"{shown:>21}{statistics.median(tokens[name]):>9.0f}"
        )
    print(
        f"for context, TRL's no-grad log-prob pass over this batch (GRPO runs it when vLLM generates): "
        f"{statistics.median(trl_pass):.3f} s = {100 * statistics.median(trl_pass) / grpo:.1f}% of the grpo step"
    )


def bench_z(positions: int = 256, k: int = 20) -> None:
    print(f"\nZ per batch of {positions} positions, given both log-softmaxed distributions (k = {k}); median of 9")
    print(f"{'vocab':>8}{'log_softmax x2 ms':>19}{'top-k Z ms':>12}{'given ids ms':>14}{'exact Z ms':>12}{'exact / top-k':>15}")
    g = torch.Generator().manual_seed(0)
    for vocab in (len(byte_tokenizer()), 32_000, 151_936):
        logits_target = 3 * torch.randn(positions, vocab, generator=g)
        logits_actor = logits_target + torch.randn(positions, vocab, generator=g)
        sampled = torch.randint(0, vocab, (positions,), generator=g)

        def softmaxes():
            return F.log_softmax(logits_actor, -1), F.log_softmax(logits_target, -1)

        logq, logp = softmaxes()

        def topk_z():
            ids, cand = topk_candidates(logq, sampled, k)
            return z_sum(cand, logp.gather(1, ids), 1.0)

        ids, cand = topk_candidates(logq, sampled, k)

        def given_ids_z():  # vLLM returns the actor's top-k: only the target's gather and the sum remain
            return z_sum(cand, logp.gather(1, ids), 1.0)

        def exact_z():
            return z_sum(logq, logp, 1.0)

        timings = []
        for fn in (softmaxes, topk_z, given_ids_z, exact_z):
            fn()
            runs = []
            for _ in range(9):
                started = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - started)
            timings.append(1000 * statistics.median(runs))
        assert (topk_z() <= exact_z() + 1e-5).all()
        print(
            f"{vocab:>8}{timings[0]:>19.2f}{timings[1]:>12.2f}{timings[2]:>14.2f}{timings[3]:>12.2f}{timings[3] / timings[1]:>15.2f}"
        )


if __name__ == "__main__":
    bench_steps()
    bench_z()
