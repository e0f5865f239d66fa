"""Test-time self-distillation (`mode=discover`): discovery@k of SDPO, best-of-k and multi-turn retry on hard
questions (arXiv 2601.20802 section 5; discovery@k is its Def. 5.1, Eq. 4).

For each hard question (the starting model solves fewer than `max_pass_rate` of `probe_samples` attempts) and each
of `runs` seeds, every method gets `budget` attempts, `attempts_per_step` at a time:

    sdpo        sample a batch; if none succeeds, one SDPO step on it: the teacher reads the question and each
                attempt's feedback (reverse KL on the top-20 tokens, |advantage| <= 5, EMA teacher 0.01), then the
                next batch comes from the updated model. Each run starts from the same model.
    best-of-k   i.i.d. attempts from the starting model; discovery@k is the unbiased pass@k over the budget.
    multi-turn  `attempts_per_step` independent retry chains: each new attempt's prompt is the question plus the
                feedback of that chain's earlier attempts (`multi_turn_template=feedback_only`, the authors' default),
                or the earlier attempts themselves as assistant turns, each followed by its feedback
                (`attempt_and_feedback`); the oldest dropped first past `max_history_tokens`.

The discovery time T is the index of the first successful attempt (in-batch order), infinity if none;
discovery@k = P(T <= k), the mean of 1[T <= k] over (question, run), with a bootstrap CI (questions, then runs).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import shutil
import tempfile
from pathlib import Path

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import TrainerCallback

from rlexp.console import say
from rlexp.envs import Env
from rlexp.errors import ConfigError
from rlexp.evaluate import generate, pass_at_k
from rlexp.rewards import EnvReward
from rlexp.schema import DiscoverConfig, ModelConfig

METHODS = ("sdpo", "best-of-k", "multi-turn")
MULTI_TURN_HEADER = "\n\nThe following is feedback from your unsuccessful earlier attempt:\n\n"
MULTI_TURN_FOOTER = "\n\nCorrectly solve the original question."


# -- the three methods --------------------------------------------------------------------------------------------


def first_success(successes: list[bool], attempts_before: int = 0) -> float:
    """1-based index of the first success after `attempts_before` attempts; inf if none."""
    for i, ok in enumerate(successes):
        if ok:
            return attempts_before + i + 1
    return math.inf


def multi_turn_prompt(question: str, history: list[str], tokenizer, max_tokens: int) -> str:
    """The question, then as much of the feedback history as fits in `max_tokens`, newest kept, oldest dropped."""
    kept: list[str] = []
    used = 0
    for feedback in reversed(history):
        n = len(tokenizer(feedback + "\n\n", add_special_tokens=False)["input_ids"])
        if used + n > max_tokens:
            break
        kept.insert(0, feedback)
        used += n
    if not kept:
        return question
    return question + MULTI_TURN_HEADER + "\n\n".join(kept) + MULTI_TURN_FOOTER


def _question_text(prompt: list) -> str:
    return prompt[-1]["content"]


def _with_question(prompt: list, text: str) -> list:
    return prompt[:-1] + [{"role": "user", "content": text}]


def best_of_k(model, tokenizer, env: Env, row: dict, cfg: DiscoverConfig, sampling: dict) -> int:
    """Successes among `budget` i.i.d. attempts."""
    (texts,) = generate(model, tokenizer, [row["prompt"]], cfg.budget, desc="best-of-k", **sampling)
    return sum(s.success for s in env.score_batch(texts, [row] * len(texts)))


def attempt_and_feedback_messages(prompt: list, history: list[tuple[str, str]], tokenizer, max_tokens: int) -> list:
    """The question, then as many of the newest (attempt, feedback) pairs as fit in `max_tokens`: each attempt an
    assistant turn, its feedback the user turn after it, worded as in the feedback-only template."""
    kept: list[tuple[str, str]] = []
    used = 0
    for attempt, feedback in reversed(history):
        n = len(tokenizer(attempt + feedback, add_special_tokens=False)["input_ids"])
        if used + n > max_tokens:
            break
        kept.insert(0, (attempt, feedback))
        used += n
    messages = list(prompt)
    for attempt, feedback in kept:
        turn = MULTI_TURN_HEADER.lstrip("\n") + feedback + MULTI_TURN_FOOTER
        messages += [{"role": "assistant", "content": attempt}, {"role": "user", "content": turn}]
    return messages


def multi_turn(model, tokenizer, env: Env, row: dict, cfg: DiscoverConfig, sampling: dict) -> float:
    chains = cfg.attempts_per_step
    history: list[list[tuple[str, str]]] = [[] for _ in range(chains)]  # (attempt, feedback) per chain
    question = _question_text(row["prompt"])
    for round_ in range(cfg.budget // chains):
        if cfg.multi_turn_template == "attempt_and_feedback":
            prompts = [attempt_and_feedback_messages(row["prompt"], h, tokenizer, cfg.max_history_tokens) for h in history]
        else:
            prompts = [
                _with_question(row["prompt"], multi_turn_prompt(question, [f for _, f in h], tokenizer, cfg.max_history_tokens))
                for h in history
            ]
        texts = [samples[0] for samples in generate(model, tokenizer, prompts, 1, desc="multi-turn", **sampling)]
        scores = env.score_batch(texts, [row] * chains)
        found = first_success([s.success for s in scores], round_ * chains)
        if found < math.inf:
            return found
        for h, text, s in zip(history, texts, scores):
            h.append((text, s.feedback or "Your answer was incorrect."))
    return math.inf


class DiscoveryReward(EnvReward):
    """The env's reward that also records the first success, counting attempts in the order they were made."""

    def __init__(self, env_name: str, **knobs):
        super().__init__(env_name, **knobs)
        self.attempts, self.found = 0, math.inf

    def __call__(self, prompts, completions, **kwargs):
        rewards = super().__call__(prompts, completions, **kwargs)
        if self.found == math.inf:
            self.found = first_success(self.last_success, self.attempts)
        self.attempts += len(completions)
        return rewards


class StopWhenFound(TrainerCallback):
    def __init__(self, reward: DiscoveryReward):
        self.reward = reward

    def on_step_end(self, args, state, control, **kwargs):
        if self.reward.found < math.inf:
            control.should_training_stop = True


def sdpo_run(
    model,
    tokenizer,
    env: Env,
    row: dict,
    cfg: DiscoverConfig,
    algo,
    seed: int,
    workdir: Path,
    precision: str = "fp32",
    model_cfg: ModelConfig | None = None,
) -> float:
    """Test-time SDPO on one question from a fresh copy of `model`: the discovery time."""
    from rlexp.trainers.sdpo import FeedbackSDPOTrainer

    m = cfg.attempts_per_step
    steps = cfg.budget // m
    test_time = dataclasses.replace(
        algo,
        per_device_train_batch_size=m,
        num_generations=m,
        gradient_accumulation_steps=1,
        num_iterations=1,
        max_steps=steps,
        learning_rate=cfg.learning_rate or algo.learning_rate,
        advantage_clip=cfg.advantage_clip,
        teacher_update_rate=cfg.teacher_update_rate,
        distillation_alpha=1.0,
        logging_steps=steps + 1,
    )
    args = test_time.training_args(workdir, seed, precision, model=model_cfg, disable_tqdm=True)
    args.teacher_sync_steps = 1  # one generation batch per step: the EMA follows every step
    reward = DiscoveryReward.for_env(env)
    trainer = FeedbackSDPOTrainer(
        model=copy.deepcopy(model),
        reward_funcs=[reward],
        args=args,
        train_dataset=datasets.Dataset.from_list([row]),
        processing_class=tokenizer,
    )
    trainer.add_callback(StopWhenFound(reward))
    trainer.train()
    return reward.found


# -- the table ----------------------------------------------------------------------------------------------------


def discovery_at_k(times: list[list[float]], k: int) -> float:
    """Mean of 1[T <= k] over questions and runs; `times[q][r]` is run r's discovery time on question q."""
    return float(np.mean([t <= k for runs in times for t in runs]))


def bootstrap_ci(values: np.ndarray, draws: int, confidence: float, seed: int = 0) -> tuple[float, float]:
    """CI of the mean of values[q, r]: resample questions, then runs within each question."""
    rng = np.random.default_rng(seed)
    q, r = values.shape
    means = np.empty(draws)
    for d in range(draws):
        questions = rng.integers(0, q, q)
        runs = rng.integers(0, r, (q, r))
        means[d] = values[questions[:, None], runs].mean()
    tail = (1 - confidence) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def table(results: dict, cfg: DiscoverConfig) -> tuple[str, dict]:
    """The printed discovery@k table and its numbers: {method: {k: (estimate, low, high)}}."""
    numbers: dict = {}
    for method in METHODS:
        numbers[method] = {}
        for k in cfg.k:
            if method == "best-of-k":
                values = np.array([[pass_at_k(cfg.budget, c, k) for c in runs] for runs in results[method]])
            else:
                values = np.array([[float(t <= k) for t in runs] for runs in results[method]])
            numbers[method][k] = (float(values.mean()), *bootstrap_ci(values, cfg.bootstrap, cfg.confidence))
    width = 24
    head = f"{'method':<12}" + "".join(f"{'discovery@' + str(k):>{width}}" for k in cfg.k)
    lines = [head, "-" * len(head)]
    for method in METHODS:
        cells = "".join(f"{f'{m:.3f} [{lo:.2f}, {hi:.2f}]':>{width}}" for m, lo, hi in numbers[method].values())
        lines.append(f"{method:<12}{cells}")
    return "\n".join(lines), numbers


# -- the driver ---------------------------------------------------------------------------------------------------


def hard_questions(model, tokenizer, env: Env, rows: datasets.Dataset, cfg: DiscoverConfig, sampling: dict) -> list[dict]:
    candidates = [rows[i] for i in range(min(cfg.max_candidates, len(rows)))]
    if cfg.probe_samples == 0:
        return candidates[: cfg.num_questions]
    hard = []
    for row in tqdm(candidates, desc="probe", leave=False):
        (texts,) = generate(model, tokenizer, [row["prompt"]], cfg.probe_samples, desc="probe", **sampling)
        scores = env.score_batch(texts, [row] * len(texts))
        if any(s.reward is None for s in scores):
            continue  # a broken row says nothing about the model
        rate = sum(s.success for s in scores) / len(scores)
        if rate < cfg.max_pass_rate:
            hard.append({**row, "probe_pass_rate": rate})
        if len(hard) == cfg.num_questions:
            break
    return hard


def discover(
    model,
    tokenizer,
    env: Env,
    algo,
    cfg: DiscoverConfig,
    run_dir: Path,
    seed: int,
    split: str,
    precision: str = "fp32",
    model_cfg: ModelConfig | None = None,
) -> dict:
    """Run the three methods on the hard questions; print and write (`discovery.json`, `discovery.md`) the table."""
    sampling = {
        "temperature": algo.temperature,
        "max_new_tokens": algo.max_completion_length,
        "batch_size": cfg.attempts_per_step,
    }
    rows = env.dataset(split)
    torch.manual_seed(seed)
    questions = hard_questions(model, tokenizer, env, rows, cfg, sampling)
    if not questions:
        raise ConfigError(
            f"no question of split {split} is hard for this model (pass rate below "
            f"discover.max_pass_rate={cfg.max_pass_rate} over {cfg.probe_samples} attempts among the "
            f"first {cfg.max_candidates}); raise discover.max_pass_rate or discover.max_candidates"
        )
    results: dict[str, list[list[float]]] = {method: [] for method in METHODS}
    workdir = Path(tempfile.mkdtemp(prefix="discover-", dir=run_dir))
    try:
        progress = tqdm(total=len(questions) * cfg.runs, desc="discover")
        for row in questions:
            runs: dict[str, list[float]] = {method: [] for method in METHODS}
            for r in range(cfg.runs):
                run_seed = seed * 1000 + r
                torch.manual_seed(run_seed)
                runs["best-of-k"].append(best_of_k(model, tokenizer, env, row, cfg, sampling))
                torch.manual_seed(run_seed)
                runs["multi-turn"].append(multi_turn(model, tokenizer, env, row, cfg, sampling))
                runs["sdpo"].append(sdpo_run(model, tokenizer, env, row, cfg, algo, run_seed, workdir, precision, model_cfg))
                progress.update()
            for method in METHODS:
                results[method].append(runs[method])
        progress.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text, numbers = table(results, cfg)
    header = (
        f"discovery@k on env={env.name} split={split}: {len(questions)} hard question(s) "
        f"(pass rate < {cfg.max_pass_rate} over {cfg.probe_samples} attempts), {cfg.runs} run(s) each, "
        f"budget {cfg.budget}, {cfg.attempts_per_step} attempts per step; [{cfg.confidence:.0%} bootstrap CI]"
    )
    say(header + "\n" + text)
    report = {
        "split": split,
        "questions": [{"prompt": _question_text(q["prompt"]), "probe_pass_rate": q.get("probe_pass_rate")} for q in questions],
        # discovery times per question and run (null: not found within the budget); best-of-k: successes of budget
        "times": {m: [[None if t == math.inf else t for t in runs] for runs in results[m]] for m in METHODS},
        "discovery": {m: {str(k): v for k, v in numbers[m].items()} for m in METHODS},
        "config": dataclasses.asdict(cfg),
    }
    (run_dir / "discovery.json").write_text(json.dumps(report, indent=2))
    (run_dir / "discovery.md").write_text(header + "\n\n```\n" + text + "\n```\n")
    return report
