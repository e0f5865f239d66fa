"""Evaluation: sample completions for each eval split, score them with the environment, and
report success, mean reward, pass@k (unbiased) and error categories.

With `env.max_attempts` > 1 each sample is an episode (rlexp/episodes.py): success is the share of episodes solved
within the attempts (the paper's success@5 for GeneralPoints), pass@k counts solved episodes, mean_reward is the
mean episode return (its attempts' rewards summed), and first_try_success and mean_attempts are reported too;
category rates are over attempts."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import torch
from tqdm.auto import tqdm

from rlexp import episodes
from rlexp.envs import Env, Score
from rlexp.models import generation_inputs, text_tokenizer


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k = 1 - C(n-c, k) / C(n, k) for n samples of which c are correct (k <= n), in the
    numerically stable product form of Chen et al. 2021 (arXiv 2107.03374)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def sampling_kwargs(temperature: float) -> dict:
    """`generate`'s sampling arguments: plain sampling at `temperature`, or greedy decoding at 0."""
    return {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0} if temperature > 0 else {"do_sample": False}


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list,
    num_samples: int,
    temperature: float,
    max_new_tokens: int,
    batch_size: int,
    desc: str,
    images: list | None = None,
) -> list[list[str]]:
    """`num_samples` completions for each chat prompt, as text; `images`, a list per prompt, need a processor as `tokenizer`."""
    jobs = [i for i in range(len(prompts)) for _ in range(num_samples)]
    tok = text_tokenizer(tokenizer)
    out: list[list[str]] = [[] for _ in prompts]
    sampling = sampling_kwargs(temperature)
    model.eval()
    for start in tqdm(range(0, len(jobs), batch_size), desc=desc, leave=False):
        batch = jobs[start : start + batch_size]
        batch_images = None if images is None else [images[i] for i in batch]
        enc = generation_inputs(tokenizer, [prompts[i] for i in batch], batch_images).to(model.device)
        ids = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            **sampling,
        )
        for i, row in zip(batch, ids[:, enc["input_ids"].shape[1] :]):
            out[i].append(tok.decode(row, skip_special_tokens=True))
    return out


@torch.no_grad()
def generate_ids(model, tokenizer, sequences: list[list[int]], temperature: float, max_new_tokens: int, batch_size: int):
    """New tokens for each token sequence (through the first end-of-sequence token), and no log-probs."""
    sampling = sampling_kwargs(temperature)
    model.eval()
    out = []
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        enc = tokenizer.pad({"input_ids": batch}, return_tensors="pt", padding_side="left").to(model.device)
        ids = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **sampling,
        )
        for row in ids[:, enc["input_ids"].shape[1] :].tolist():
            end = row.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in row else len(row)
            out.append(row[:end])
    return out, None


def _summary(per_row: list[list[Score]], cfg, categories: bool = True) -> dict[str, float]:
    """Success with its standard error over prompts, mean reward, pass@k and category rates."""
    n = cfg.num_samples
    # a prompt none of whose samples could be scored (a broken row: reward None) says nothing about the model
    unscored = sum(all(s.reward is None for s in scores) for scores in per_row)
    per_row = [scores for scores in per_row if not all(s.reward is None for s in scores)] or per_row
    successes = [sum(s.success for s in scores) for scores in per_row]
    rewards = [s.reward for scores in per_row for s in scores if s.reward is not None]
    per_prompt = np.array(successes) / n
    metrics = {
        "success": float(per_prompt.mean()),
        # over prompts: the samples of one prompt are not independent draws
        "success_se": float(per_prompt.std(ddof=1) / math.sqrt(len(per_row))) if len(per_row) > 1 else 0.0,
        "mean_reward": float(np.mean(rewards)) if rewards else float("nan"),
        "n_prompts": len(per_row),
        "n_samples": n,
    }
    for k in cfg.k:
        metrics[f"pass@{k}"] = float(np.mean([pass_at_k(n, c, k) for c in successes]))
    if unscored:
        metrics["n_unscored"] = unscored
    if categories:
        counts = Counter(s.info.get("category", "") for scores in per_row for s in scores)
        for category, count in sorted(counts.items()):
            if category:
                metrics[f"category/{category}"] = count / (n * len(per_row))
    return metrics


def episode_summary(per_row: list[list[episodes.Episode]], cfg) -> dict[str, float]:
    """_summary of episodes (success: solved within the attempts), with first-try success, mean attempts and
    category rates over every attempt."""
    as_scores = [[Score(e.episode_return(), e.solved, "") for e in row] for row in per_row]
    metrics = _summary(as_scores, cfg, categories=False)
    flat = [e for row in per_row for e in row]
    metrics["first_try_success"] = float(np.mean([e.scores[0].success for e in flat]))
    metrics["mean_attempts"] = float(np.mean([e.attempts for e in flat]))
    counts = Counter(s.info.get("category", "") for e in flat for s in e.scores)
    for category, count in sorted(counts.items()):
        if category:
            metrics[f"category/{category}"] = count / sum(e.attempts for e in flat)
    return metrics


def _episodes(model, tokenizer, env: Env, rows, cfg, desc: str) -> list[list[episodes.Episode]]:
    """cfg.num_samples episodes per row, played in batches of prompts."""
    texts = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in rows["prompt"]]
    prompt_ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    jobs = [(row, ids) for row, ids in zip(rows, prompt_ids) for _ in range(cfg.num_samples)]

    def generate(sequences):
        return generate_ids(model, tokenizer, sequences, cfg.temperature, cfg.max_new_tokens, cfg.batch_size)

    played = []
    for start in tqdm(range(0, len(jobs), cfg.batch_size), desc=desc, leave=False):
        batch = jobs[start : start + cfg.batch_size]
        played += episodes.play(env, tokenizer, [r for r, _ in batch], [ids for _, ids in batch], generate)
    return [played[i * cfg.num_samples : (i + 1) * cfg.num_samples] for i in range(len(rows))]


def evaluate(model, tokenizer, env: Env, cfg) -> dict[str, dict[str, float]]:
    """Metrics per split: {split: {success, mean_reward, pass@k ..., n_prompts, n_samples ...}}."""
    results = {}
    for split in list(cfg.splits) or env.eval_splits():
        rows = env.dataset(split)
        rows = rows.select(range(min(cfg.num_prompts, len(rows))))
        if env.max_attempts > 1:
            per_row, summary = _episodes(model, tokenizer, env, rows, cfg, f"eval {split}"), episode_summary
            attempts = [s for episodes_ in per_row for e in episodes_ for s in e.scores]
        else:
            per_row, summary = _single_attempts(model, tokenizer, env, rows, cfg, f"eval {split}"), _summary
            attempts = [s for scores in per_row for s in scores]
        metrics = summary(per_row, cfg)
        metrics.update(env.split_metrics(attempts))
        if "split_key" in rows.column_names:
            metrics["n_distinct"] = len(set(rows["split_key"]))
        for column in env.group_columns:
            for value in sorted({v for v in rows[column] if v not in ("", None)}):
                members = [scored for scored, v in zip(per_row, rows[column]) if v == value]
                for key, number in summary(members, cfg).items():
                    if key != "n_samples" and not key.startswith("category/"):
                        metrics[f"{value}/{key}"] = number
        results[split] = metrics
    return results


def _single_attempts(model, tokenizer, env: Env, rows, cfg, desc: str) -> list[list[Score]]:
    """cfg.num_samples scored completions per row."""
    images = rows["images"] if "images" in rows.column_names else None
    completions = generate(
        model, tokenizer, rows["prompt"], cfg.num_samples, cfg.temperature, cfg.max_new_tokens, cfg.batch_size, desc, images
    )
    texts = [text for samples in completions for text in samples]
    repeated = [row for row in rows for _ in range(cfg.num_samples)]
    # in chunks: a slow environment's deadline for one batch (livecode's batch_timeout_s) covers one chunk
    scores = [
        s
        for i in range(0, len(texts), cfg.batch_size)
        for s in env.score_batch(texts[i : i + cfg.batch_size], repeated[i : i + cfg.batch_size])
    ]
    return [scores[i * cfg.num_samples : (i + 1) * cfg.num_samples] for i in range(len(rows))]
