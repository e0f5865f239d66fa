"""Demonstrations with their behaviour log-probs: what PEAR (and other off-policy corrections) train on.

A behaviour model samples answers to the environment's prompts at a temperature; the correct ones (by
`env.score`, i.e. rejection sampling) are kept, tokenised once with the student's tokenizer, and the behaviour
model's per-token log-probs at that same temperature are recorded on exactly those token ids:

    input_ids        the chat prompt (with the generation prompt) followed by the sampled answer and EOS
    completion_mask  1 on the answer tokens, which are the ones trained on
    behavior_logps   entry t = log pi_beta(input_ids[t] | input_ids[<t]) / at temperature tau; 0 where not trained

The result is a `datasets.Dataset`, saved with `save_to_disk` and reusable by path.
"""

from __future__ import annotations

import logging
from pathlib import Path

import datasets
import torch
from tqdm.auto import tqdm

from rlexp.errors import ConfigError

log = logging.getLogger(__name__)
COLUMNS = ("input_ids", "completion_mask", "behavior_logps")


@torch.no_grad()
def token_logps(model, input_ids: list[int], temperature: float) -> list[float]:
    """log softmax(logits / temperature) of each token given the ones before it; entry 0 is 0."""
    ids = torch.tensor([input_ids], device=model.device)
    logits = model(input_ids=ids).logits[0, :-1].float() / temperature
    picked = torch.log_softmax(logits, dim=-1).gather(-1, ids[0, 1:, None])[:, 0]
    return [0.0] + picked.tolist()


@torch.no_grad()
def sample_demonstrations(
    model,
    tokenizer,
    env,
    split: str,
    num_samples: int,
    temperature: float,
    max_new_tokens: int,
    keep: str = "correct",
    limit: int = 0,
) -> datasets.Dataset:
    """Sample `num_samples` answers per prompt from `model`, keep the correct ones (or all), record log-probs."""
    rows = env.dataset(split)
    if limit:
        rows = rows.select(range(min(limit, len(rows))))
    model.eval()
    out = {name: [] for name in COLUMNS}
    kept = total = 0
    for row in tqdm(rows, desc="behaviour samples", leave=False):
        prompt_ids = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True)[
            "input_ids"
        ]
        prompt = torch.tensor([prompt_ids] * num_samples, device=model.device)
        generated = model.generate(
            prompt,
            do_sample=True,
            temperature=temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )[:, len(prompt_ids) :]
        answers = []
        for ids in generated.tolist():
            if tokenizer.eos_token_id in ids:  # keep the EOS: the student learns to stop
                ids = ids[: ids.index(tokenizer.eos_token_id) + 1]
            else:
                ids = [i for i in ids if i != tokenizer.pad_token_id]
            answers.append(ids)
        texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in answers]
        scores = env.score_batch(texts, [row] * len(texts))
        total += len(texts)
        for ids, score in zip(answers, scores):
            if keep == "correct" and not score.success:
                continue
            kept += 1
            input_ids = prompt_ids + ids
            logps = token_logps(model, input_ids, temperature)
            mask = [0] * len(prompt_ids) + [1] * len(ids)
            out["input_ids"].append(input_ids)
            out["completion_mask"].append(mask)
            out["behavior_logps"].append([lp if m else 0.0 for lp, m in zip(logps, mask)])
    log.info("behaviour samples: kept %d of %d", kept, total)
    if not kept:
        raise ConfigError(
            f"the behaviour model solved none of {total} samples, so there is nothing to imitate; use a stronger "
            "behaviour model, more samples, or algo.behaviour_keep=all"
        )
    return datasets.Dataset.from_dict(out)


def tokenize_demonstrations(tokenizer, demos: datasets.Dataset) -> datasets.Dataset:
    """`messages` rows as the ids the student trains on: the chat prompt, then the last (assistant) turn."""
    out = {"input_ids": [], "completion_mask": []}
    for messages in demos["messages"]:
        prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True, return_dict=True)[
            "input_ids"
        ]
        full = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
        if full[: len(prompt)] != prompt:
            raise ConfigError(
                "the chat template renders the prompt differently once the answer follows it, so the "
                "answer's tokens cannot be told apart; use a model whose template keeps the prefix"
            )
        out["input_ids"].append(full)
        out["completion_mask"].append([0] * len(prompt) + [1] * (len(full) - len(prompt)))
    return datasets.Dataset.from_dict(out)


def with_logps(model, data: datasets.Dataset, column: str, temperature: float = 1.0) -> datasets.Dataset:
    """`data` plus `column`: `model`'s log-prob of each trained token (0 elsewhere)."""
    model.eval()
    values = [
        [lp if m else 0.0 for lp, m in zip(token_logps(model, ids, temperature), mask)]
        for ids, mask in tqdm(zip(data["input_ids"], data["completion_mask"]), total=len(data), desc=f"{column}", leave=False)
    ]
    return data.add_column(column, values)


def load_demonstrations(path: str, column: str = "behavior_logps") -> datasets.Dataset:
    """A saved behaviour dataset (or any dataset with the same columns), checked for alignment."""
    if not Path(path).exists():
        raise ConfigError(f"algo.behaviour_data: no dataset at {path}")
    data = datasets.load_from_disk(path)
    check(data, path, column)
    return data


def check(data: datasets.Dataset, where: str, column: str = "behavior_logps") -> None:
    """One clear line when a column is missing or does not line up with `input_ids`."""
    needed = ("input_ids", "completion_mask", column)
    missing = [c for c in needed if c not in data.column_names]
    if missing:
        raise ConfigError(f"{where} has no {', '.join(missing)} column(s); it needs {', '.join(needed)}")
    for i, row in enumerate(data):
        n = len(row["input_ids"])
        if len(row["completion_mask"]) != n or len(row[column]) != n:
            raise ConfigError(
                f"{where}: row {i} has {n} input_ids but {len(row['completion_mask'])} completion_mask and "
                f"{len(row[column])} {column} entries; they must line up token by token"
            )
        if any(lp > 1e-6 for lp in row[column]):
            raise ConfigError(f"{where}: row {i} has a positive log-prob; {column} must be log-probabilities")
