"""Evaluation: sample completions for each eval split, score them with the environment, and
report success, mean reward, pass@k (unbiased) and error categories.

With `env.max_attempts` > 1 each sample is an episode (rlexp/episodes.py): success is the share of episodes solved
within the attempts (the paper's success@5 for GeneralPoints), pass@k counts solved episodes, mean_reward is the
mean episode return (its attempts' rewards summed), and first_try_success and mean_attempts are reported too;
category rates are over attempts.

Every rank evaluates a share of the prompts and the scores are gathered, so the metrics do not depend on how many
ranks there are. The seeding rule: a split's first `eval.num_prompts` prompts are cut into fixed chunks, in order,
of `eval.batch_size // eval.num_samples` prompts (at least 1; with vLLM, which seeds each request, 1 prompt); the
chunk whose first prompt is prompt i of split s is sampled from the seed `chunk_seed(run seed, s, i)`, whichever
rank takes it (rank r takes chunks r, r + W, r + 2W ... of W ranks). transformers' `generate` seeds torch with it
before the chunk's one batch, continuous batching passes it as the batch's seed, vLLM gives each prompt's
SamplingParams that seed (an episode's attempt t of sample j: chunk_seed(that seed, j, t)). A chunk is generated as
one batch, so its padding, and with it every number, is the same whatever the number of ranks.
"""

from __future__ import annotations

import gc
import itertools
import math
import os
import tempfile
import zlib
from collections import Counter
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm
from trl.data_utils import prepare_multimodal_messages

from rlexp import episodes
from rlexp.envs import Env, Score
from rlexp.models import generation_inputs, text_tokenizer
from rlexp.rewards import message_text


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
def generate_ids(
    model,
    tokenizer,
    sequences: list[list[int]],
    temperature: float,
    max_new_tokens: int,
    batch_size: int,
    images: list | None = None,
):
    """New tokens for each token sequence (through the first end-of-sequence token), and no log-probs; with
    `images` (episodes.play's: each sequence's prompt images and the processor's outputs for them), each sequence's
    image goes with it."""
    sampling = sampling_kwargs(temperature)
    tokenizer = text_tokenizer(tokenizer)
    model.eval()
    out = []
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        enc = tokenizer.pad({"input_ids": batch}, return_tensors="pt", padding_side="left")
        if images is not None:
            width = enc["input_ids"].shape[1]
            for key, value in episodes.image_inputs(images[start : start + batch_size], batch)[1].items():
                if isinstance(value, list):  # per token: left-padded as the ids are
                    enc[key] = torch.tensor([[0] * (width - len(row)) + row for row in value])
                else:
                    enc[key] = torch.as_tensor(value)
        enc = enc.to(model.device)
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


def chunk_seed(seed: int, *where) -> int:
    """A 32-bit seed for one chunk of samples: (run seed, split name, prompt index) or (chunk seed, sample, attempt).
    Text is hashed (crc32), so the seed is the same in every process."""
    parts = [zlib.crc32(w.encode()) if isinstance(w, str) else int(w) & 0xFFFFFFFF for w in (seed, *where)]
    return int(np.random.SeedSequence(parts).generate_state(1)[0])


class HFGenerator:
    """transformers' `generate`, one batch per chunk of prompts, seeded once per chunk."""

    def __init__(self, model, tokenizer, cfg):
        self.model, self.tokenizer, self.cfg = model, tokenizer, cfg
        # prompts per chunk: a chunk's samples are one batch
        self.chunk_size = max(1, cfg.batch_size // cfg.num_samples)

    def sample(self, chunks: list[tuple[int, list, Optional[list]]], desc: str) -> list[list[str]]:
        """cfg.num_samples completions of each prompt of `chunks`, (seed, chat prompts, their images or None) each."""
        cfg, out = self.cfg, []
        for seed, prompts, images in tqdm(chunks, desc=desc, leave=False):
            torch.manual_seed(seed)
            out += generate(self.model, self.tokenizer, prompts, cfg.num_samples, cfg.temperature, cfg.max_new_tokens,
                            cfg.batch_size, desc, images)  # fmt: skip
        return out

    def generate_ids(self, sequences: list[list[int]], seed: int, images: list | None = None):
        torch.manual_seed(seed)
        cfg = self.cfg
        return generate_ids(self.model, self.tokenizer, sequences, cfg.temperature, cfg.max_new_tokens, cfg.batch_size, images)

    def play(self, env: Env, chunks: list[tuple], desc: str) -> list[episodes.Episode]:
        """cfg.num_samples episodes of each row of `chunks`, (seed, rows, prompt ids, the rows' images or None) each;
        a chunk's episodes are played together, each round one batch, round t seeded chunk_seed(seed, t)."""
        played, n = [], self.cfg.num_samples
        for seed, rows, prompt_ids, images in tqdm(chunks, desc=desc, leave=False):
            rows, prompt_ids = [r for r in rows for _ in range(n)], [ids for ids in prompt_ids for _ in range(n)]
            images = None if images is None else [own for own in images for _ in range(n)]
            played += episodes.play(
                env, text_tokenizer(self.tokenizer), rows, prompt_ids, self.seeded_rounds(seed), images=images
            )
        return played

    def seeded_rounds(self, seed: int) -> episodes.Generate:
        """episodes.play's `generate`, its round t seeded chunk_seed(seed, t)."""
        rounds = itertools.count(1)
        return lambda sequences, images=None: self.generate_ids(sequences, chunk_seed(seed, next(rounds)), images)

    def close(self) -> None:
        """Free the model's memory for the training that follows."""
        self.model = None
        free_memory()


class ContinuousBatchingGenerator(HFGenerator):
    """transformers' continuous batching (`generate_batch`), one call per chunk, the chunk's seed as its seed."""

    def generate_ids(self, sequences: list[list[int]], seed: int, images=None):
        from transformers import GenerationConfig
        from transformers.generation import ContinuousBatchingConfig

        cfg, tok = self.cfg, text_tokenizer(self.tokenizer)
        config = GenerationConfig(max_new_tokens=cfg.max_new_tokens, eos_token_id=tok.eos_token_id,
                                  pad_token_id=tok.pad_token_id, **sampling_kwargs(cfg.temperature))  # fmt: skip
        sizes = {}
        if self.model.device.type == "cpu":
            # sized from the memory it finds, the cache on a CPU fills most of the RAM, and takes seconds to allocate
            page = 64
            longest = max(map(len, sequences)) + cfg.max_new_tokens
            sizes = {"page_size": page, "num_blocks": len(sequences) * -(-longest // page), "max_batch_tokens": 4096}
        self.model.eval()
        with torch.no_grad():
            outputs = self.model.generate_batch(
                sequences, generation_config=config, continuous_batching_config=ContinuousBatchingConfig(seed=seed, **sizes),
                progress_bar=False,
            )  # fmt: skip
        return [list(o.generated_tokens) for o in outputs.values()], None

    def sample(self, chunks, desc: str) -> list[list[str]]:
        tok, n, out = text_tokenizer(self.tokenizer), self.cfg.num_samples, []
        for seed, prompts, _ in tqdm(chunks, desc=desc, leave=False):
            ids = [prompt_ids(self.tokenizer, p) for p in prompts for _ in range(n)]
            new, _ = self.generate_ids(ids, seed)
            texts = [tok.decode(row, skip_special_tokens=True) for row in new]
            out += [texts[i * n : (i + 1) * n] for i in range(len(prompts))]
        return out


def prompt_ids(tokenizer, prompt: list) -> list[int]:
    """The token ids of a chat prompt with its generation prompt (a processor's image placeholders unexpanded)."""
    text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    return text_tokenizer(tokenizer)(text, add_special_tokens=False)["input_ids"]


class VLLMGenerator:
    """A vLLM engine: all of a rank's samples of a split in one `generate` call, each prompt's SamplingParams
    seeded with its own seed (n = cfg.num_samples); multi-turn episodes one call per round, each episode's attempt
    with its own seed."""

    chunk_size = 1  # vLLM seeds each request: the seed of a prompt is its own

    def __init__(self, llm, tokenizer, cfg):
        self.llm, self.tokenizer, self.cfg = llm, tokenizer, cfg

    def params(self, seed: int, n: int):
        from vllm import SamplingParams

        return SamplingParams(n=n, max_tokens=self.cfg.max_new_tokens, temperature=self.cfg.temperature, seed=seed)

    def sample(self, chunks: list[tuple[int, list, Optional[list]]], desc: str) -> list[list[str]]:
        requests, params = [], []
        for seed, prompts, images in chunks:
            for k, prompt in enumerate(prompts):
                request = {"prompt_token_ids": prompt_ids(self.tokenizer, prompt)}
                if images is not None and images[k]:
                    request["multi_modal_data"] = {"image": images[k] if len(images[k]) > 1 else images[k][0]}
                requests.append(request)
                params.append(self.params(seed, self.cfg.num_samples))
        if not requests:
            return []
        tok = text_tokenizer(self.tokenizer)
        outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=False)
        return [[tok.decode(o.token_ids, skip_special_tokens=True) for o in output.outputs] for output in outputs]

    def generate_ids(self, sequences: list[list[int]], seeds: list[int], images=None):
        requests = [{"prompt_token_ids": ids} for ids in sequences]
        for request, (own, _) in zip(requests, images or []):
            request["multi_modal_data"] = {"image": own if len(own) > 1 else own[0]}
        outputs = self.llm.generate(requests, sampling_params=[self.params(s, 1) for s in seeds], use_tqdm=False)
        return [list(output.outputs[0].token_ids) for output in outputs], None

    def play(self, env: Env, chunks: list[tuple], desc: str) -> list[episodes.Episode]:
        n, attempts = self.cfg.num_samples, range(1, env.max_attempts + 1)
        rows = [r for _, rows, _, _ in chunks for r in rows for _ in range(n)]
        ids = [p for _, _, prompt_ids, _ in chunks for p in prompt_ids for _ in range(n)]
        seeds = [[chunk_seed(seed, j, t) for t in attempts] for seed, rows_, _, _ in chunks for _ in rows_ for j in range(n)]
        images = None
        if chunks and chunks[0][3] is not None:
            images = [own for _, _, _, images_ in chunks for own in images_ for _ in range(n)]
        tokenizer = text_tokenizer(self.tokenizer)
        return episodes.play(env, tokenizer, rows, ids, self.generate_ids, seeds, images=images) if rows else []

    def close(self) -> None:
        """Free the engine's memory for the training that follows."""
        self.llm = None
        free_memory()


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def vllm_engine(source: str, process_index: int, local_process_index: int, num_processes: int):
    """vLLM's offline engine on this rank's GPU, set up as TRL sets up its colocated one (distributed_executor_backend
    external_launcher: each training process holds its own engine)."""
    from trl.trainer.utils import ensure_master_addr_port
    from vllm import LLM

    os.environ["RANK"], os.environ["LOCAL_RANK"] = str(process_index), str(local_process_index)
    os.environ["WORLD_SIZE"] = str(num_processes)
    ensure_master_addr_port()
    # the engine is the only model on the GPU while it evaluates: the training state is freed before it starts. Its own
    # seed reaches no sample: every request carries its prompt's seed (chunk_seed)
    return LLM(model=source, gpu_memory_utilization=VLLM_GPU_MEMORY, distributed_executor_backend="external_launcher",
               seed=process_index)  # fmt: skip


# share of the GPU's memory the evaluation's vLLM engine takes (weights, activations, KV cache)
VLLM_GPU_MEMORY = 0.8


def load_generator(engine: str, model_cfg, checkpoint: Optional[str], cfg, state):
    """The generator evaluation uses (`engine` hf | continuous_batching | vllm), loaded whole on this rank's device."""
    from rlexp import models

    device = torch.device("cuda", state.local_process_index) if torch.cuda.is_available() else torch.device("cpu")
    free_memory()  # the last stage's trainer, optimizer and engines
    if engine != "vllm":
        model, tokenizer = models.load(model_cfg, checkpoint)
        kind = ContinuousBatchingGenerator if engine == "continuous_batching" else HFGenerator
        return kind(model.to(device), tokenizer, cfg)
    source = checkpoint or model_cfg.pretrained
    tokenizer = models.load_tokenizer(model_cfg, checkpoint)  # the model is vLLM's to load
    with tempfile.TemporaryDirectory() as built:
        if source is None:  # the tiny model built from its config: vLLM reads a directory
            model, _ = models.load(model_cfg)
            model.save_pretrained(built)
            tokenizer.save_pretrained(built)
            del model
            source = built
        llm = vllm_engine(source, state.process_index, state.local_process_index, state.num_processes)
    return VLLMGenerator(llm, tokenizer, cfg)


def evaluate(
    model, tokenizer, env: Env, cfg, seed: int = 0, shard: tuple[int, int] = (0, 1), gather=None, samples: dict | None = None
) -> dict:
    """Metrics per split: {split: {success, mean_reward, pass@k ..., n_prompts, n_samples ...}}.

    `model` is a generator (HFGenerator, ContinuousBatchingGenerator, VLLMGenerator) or a transformers model
    (generating with HFGenerator). This process samples the share of rank `shard[0]` of `shard[1]` ranks; `gather`
    takes [its share] and returns every rank's (accelerate's gather_object), so every rank computes the metrics.
    `samples`, a dict, gets this process's samples of each split as rows (prompt, completion, reward, success,
    feedback ...), prompt by prompt."""
    generator = model if hasattr(model, "play") else HFGenerator(model, tokenizer, cfg)
    mine = share(generator, env, cfg, seed, shard, samples)
    everyone = {split: {} for split in mine}
    for part in gather([mine]) if gather is not None else [mine]:
        for split, scored in part.items():
            everyone[split].update(scored)
    return {
        split: split_metrics(env, eval_rows(env, split, cfg), [scored[i] for i in range(len(scored))], cfg)
        for split, scored in everyone.items()
    }


def eval_rows(env: Env, split: str, cfg):
    rows = env.dataset(split)
    return rows.select(range(min(cfg.num_prompts, len(rows))))


def share(generator, env: Env, cfg, seed: int, shard: tuple[int, int], samples: dict | None = None) -> dict[str, dict[int, list]]:
    """Rank shard[0]'s share of each split, of shard[1] ranks: {split: {prompt index: its scores (or episodes)}};
    `samples` (a dict) gets its sample rows per split."""
    rank, ranks = shard
    size, out = generator.chunk_size, {}
    for split in list(cfg.splits) or env.eval_splits():
        rows = eval_rows(env, split, cfg)
        mine = [list(range(i, min(i + size, len(rows)))) for i in range(rank * size, len(rows), ranks * size)]
        sample = _episodes if env.max_attempts > 1 else _single_attempts
        sample_rows = None if samples is None else samples.setdefault(split, [])
        seeds = [chunk_seed(seed, split, c[0]) for c in mine]
        out[split] = sample(generator, env, rows, mine, seeds, f"eval {split}", sample_rows)
    return out


def split_metrics(env: Env, rows, per_row: list, cfg) -> dict[str, float]:
    """A split's metrics from each row's scores (or episodes), with the environment's own and per group column."""
    if env.max_attempts > 1:
        summary, attempts = episode_summary, [s for played in per_row for e in played for s in e.scores]
    else:
        summary, attempts = _summary, [s for scores in per_row for s in scores]
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
    return metrics


def _episodes(
    generator, env: Env, rows, chunks: list[list[int]], seeds: list[int], desc: str, sample_rows=None
) -> dict[int, list]:
    """cfg.num_samples episodes per row of `chunks`, by row index; kept light for gathering (their scores). Each
    episode's sample row is added to `sample_rows`, a list."""
    n, images = generator.cfg.num_samples, None
    if "images" in rows.column_names:  # a vision-language prompt: its image tokens expanded, its pixels kept for it
        ids, images = [], []
        for prompt, own in zip(rows["prompt"], rows["images"]):
            inputs = generator.tokenizer.apply_chat_template(
                [prepare_multimodal_messages(prompt, images=own)], add_generation_prompt=True, tokenize=True, return_dict=True
            )
            ids.append(inputs["input_ids"][0])
            images.append((own, {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}))
    else:
        ids = [prompt_ids(generator.tokenizer, p) for p in rows["prompt"]]
    asked = [
        (s, [rows[i] for i in c], [ids[i] for i in c], None if images is None else [images[i] for i in c])
        for s, c in zip(seeds, chunks)
    ]
    played = generator.play(env, asked, desc)
    if sample_rows is not None:
        sample_rows += [episode_row(e) for e in played]
    light = [episodes.Episode({}, [], [], scores=e.scores) for e in played]
    indices = [i for c in chunks for i in c]
    return {i: light[k * n : (k + 1) * n] for k, i in enumerate(indices)}


def sample_row(prompt, score: Score, completion: str) -> dict:
    return {"prompt": message_text(prompt), "completion": completion, "reward": score.reward, "success": bool(score.success),
            "feedback": score.feedback, "category": score.info.get("category", "")}  # fmt: skip


def episode_row(episode: episodes.Episode) -> dict:
    """An episode as a sample row: its attempts and the feedback between them as the completion, its return as the
    reward, its last attempt's feedback."""
    prompt_turns = len(episode.messages) - 2 * episode.attempts + 1
    last = episode.scores[-1]
    return {"prompt": message_text(episode.messages[:prompt_turns]), "completion": message_text(episode.messages[prompt_turns:]),
            "reward": episode.episode_return(), "success": episode.solved, "feedback": last.feedback,
            "category": last.info.get("category", ""), "attempts": episode.attempts}  # fmt: skip


def _single_attempts(
    generator, env: Env, rows, chunks: list[list[int]], seeds: list[int], desc: str, sample_rows=None
) -> dict[int, list]:
    """cfg.num_samples scored completions per row of `chunks`, by row index. Each one's sample row is added to
    `sample_rows`, a list."""
    cfg = generator.cfg
    images = rows["images"] if "images" in rows.column_names else None
    asked = [
        (s, [rows[i]["prompt"] for i in c], None if images is None else [images[i] for i in c]) for s, c in zip(seeds, chunks)
    ]
    completions = generator.sample(asked, desc)
    indices = [i for c in chunks for i in c]
    texts = [text for samples in completions for text in samples]
    repeated = [rows[i] for i in indices for _ in range(cfg.num_samples)]
    # in chunks: a slow environment's deadline for one batch (livecode's batch_timeout_s) covers one chunk
    scores = [
        s
        for i in range(0, len(texts), cfg.batch_size)
        for s in env.score_batch(texts[i : i + cfg.batch_size], repeated[i : i + cfg.batch_size])
    ]
    if sample_rows is not None:
        sample_rows += [sample_row(row["prompt"], s, text) for row, s, text in zip(repeated, scores, texts)]
    return {i: scores[k * cfg.num_samples : (k + 1) * cfg.num_samples] for k, i in enumerate(indices)}
