"""A test double of vLLM for the offline tests: the few names TRL's vLLM path imports (`LLM`, `SamplingParams`,
`RequestOutput`), which record what they are asked and answer with outputs of vLLM's shape.

Put `tests/fake_vllm` first on the path (PYTHONPATH for a subprocess, the `fake_vllm` fixture of tests/conftest.py in
process) and TRL finds "vllm 0.24.0" installed. Every engine, call and weight load is appended to `RECORD`, and
written as a JSON line to the file named by FAKE_VLLM_LOG when it is set (one file for every process of a run).

What it generates: completion token ids drawn from the prompt's own ids (so they are ids of the model's vocabulary,
whatever the tokenizer), `max_tokens` long, from a generator seeded by the engine's seed, the request's seed and the
engine's call count -- so two engines with the same seeds answer alike, as vLLM does, and different seeds differ.
Log-probs, when asked for, are made-up negative numbers: the sampled token first with rank 1 when it is the top
token, else with a rank after the top `logprobs` others, as vLLM returns them.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field

import numpy as np

__version__ = "0.24.0"

RECORD: list[dict] = []


def record(event: str, **data) -> None:
    entry = {"event": event, "pid": os.getpid(), "rank": int(os.environ.get("RANK", "0")), **data}
    RECORD.append(entry)
    path = os.environ.get("FAKE_VLLM_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(entry, default=str) + "\n")


class SamplingParams:
    """vLLM's sampling parameters: keeps every keyword it is given."""

    def __init__(self, n: int = 1, max_tokens: int = 16, logprobs: int | None = None, seed: int | None = None, **kwargs):
        self.n, self.max_tokens, self.logprobs, self.seed = n, max_tokens, logprobs, seed
        self.kwargs = kwargs

    def as_dict(self) -> dict:
        return {"n": self.n, "max_tokens": self.max_tokens, "logprobs": self.logprobs, "seed": self.seed, **self.kwargs}


@dataclass
class Logprob:
    logprob: float
    rank: int
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    token_ids: list[int]
    logprobs: list[dict[int, Logprob]] | None
    text: str = ""
    finish_reason: str = "length"


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput] = field(default_factory=list)


class _Model:
    """Where TRL's colocated weight sync loads each parameter (llm.llm_engine.model_executor.driver_worker.model_runner.model)."""

    def __init__(self, engine: "LLM"):
        self.engine = engine

    def load_weights(self, weights) -> None:
        for name, tensor in weights:
            self.engine.loaded[name] = float(tensor.detach().float().sum())
            record("load_weights", engine=self.engine.id, name=name, sum=self.engine.loaded[name])


class _Namespace:
    def __init__(self, **attrs):
        self.__dict__.update(attrs)


class LLM:
    """vLLM's offline engine: records its arguments, its weight loads and each generate call."""

    _count = 0

    def __init__(self, model: str = "", seed: int | None = 0, max_model_len: int | None = None, **kwargs):
        LLM._count += 1
        self.id = f"{os.getpid()}-{LLM._count}"
        self.model, self.seed, self.kwargs = model, seed, kwargs
        self.calls = 0
        self.loaded: dict[str, float] = {}
        runner = _Namespace(model=_Model(self))
        self.llm_engine = _Namespace(
            model_executor=_Namespace(driver_worker=_Namespace(model_runner=runner)),
            model_config=_Namespace(max_model_len=max_model_len or 2048),
        )
        record("init", engine=self.id, model=model, seed=seed, max_model_len=max_model_len, **kwargs)

    def generate(self, prompts, sampling_params=None, use_tqdm: bool = True, **kwargs):
        """`sampling_params`: one SamplingParams for every prompt, or a list of them, one per prompt; a request
        with a seed of its own is drawn from that seed alone (as in vLLM, whatever else the call holds)."""
        params = sampling_params or SamplingParams()
        each = params if isinstance(params, list) else [params] * len(prompts)
        self.calls += 1
        record(
            "generate",
            engine=self.id,
            call=self.calls,
            num_prompts=len(prompts),
            prompts=[p["prompt_token_ids"] for p in prompts],
            sampling=[p.as_dict() for p in params] if isinstance(params, list) else params.as_dict(),
            multi_modal=[len(p.get("multi_modal_data", {})) for p in prompts],
            weights_loaded=len(self.loaded),
        )
        first = each[0] if each else SamplingParams()
        seed = [self.seed or 0, first.seed if first.seed is not None else 2**31, self.calls]
        rng = np.random.default_rng(seed)
        outputs = []
        for prompt, params in zip(prompts, each):
            if isinstance(sampling_params, list) and params.seed is not None:
                rng = np.random.default_rng(params.seed)
            ids = list(prompt["prompt_token_ids"])
            request = RequestOutput(prompt_token_ids=ids)
            for index in range(params.n):
                tokens = [int(t) for t in rng.choice(ids, size=params.max_tokens)]
                request.outputs.append(CompletionOutput(index, tokens, self._logprobs(tokens, ids, params.logprobs, rng)))
            outputs.append(request)
        return outputs

    @staticmethod
    def _logprobs(tokens, vocabulary, top: int | None, rng) -> list[dict[int, Logprob]] | None:
        if top is None:
            return None
        others = sorted(set(vocabulary))
        out = []
        for token in tokens:
            sampled = -float(rng.exponential(1.0))
            entry = {}
            for rank, other in enumerate([o for o in others if o != token][:top], start=2):
                entry[other] = Logprob(sampled - 0.1 * rank, rank)
            entry[token] = Logprob(sampled, 1)
            out.append(entry)
        return out

    def reset_prefix_cache(self) -> bool:
        record("reset_prefix_cache", engine=self.id)
        return True

    def sleep(self, level: int = 1) -> None:
        record("sleep", engine=self.id, level=level)

    def wake_up(self, tags=None) -> None:
        record("wake_up", engine=self.id, tags=tags)


def checksum(tokens: list[int]) -> int:
    """A short fingerprint of a token sequence, for tests comparing rollouts across seeds."""
    return zlib.crc32(np.asarray(tokens, dtype=np.int64).tobytes())
