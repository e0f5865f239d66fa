"""Rollouts written by an actor, with the actor's log-probs: what an off-policy correction (Jackpot) needs.

The actor is the model that samples the training completions when it is not the policy being trained: a smaller
model, a copy of the policy some steps stale, or the vLLM engine with its own numerics. To correct for the mismatch,
an algorithm needs per completion token y_t, with q the actor's and p the policy's distribution at the sampling
temperature T (log softmax(logits / T)):

    log q(y_t), log p(y_t)                      the sampled token under both models
    log q(x), log p(x) for x in candidates_t    the actor's top-k ids and the sampled id, no id twice

Where they come from:

- HF generation: `ActorLogprobRecorder`, a logits processor, records q's numbers while the actor generates.
- vLLM: the engine returns `logprobs=k` entries per token, sorted by rank. The first is the top-1 token, not the
  sampled one, so `actor_logprobs_from_vllm` finds the sampled token's entry by its id. That path is tested offline
  on vLLM-shaped output only, never with vLLM on a GPU.
- `ActorRolloutGRPOTrainer._score_rollouts`: one no-grad pass of the policy over the rollouts gives p's numbers (each
  prompt's forward runs once, its KV cache shared by its completions); the actor runs again over the rollouts only
  where it reported nothing (a statistic of its whole distribution, or the policy generating in HF).
"""

from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from transformers import AutoTokenizer, LogitsProcessor, LogitsProcessorList
from trl import GRPOTrainer
from trl.extras.profiling import profiling_context
from trl.trainer.utils import pad

from rlexp import models
from rlexp.errors import ConfigError
from rlexp.schema import ModelConfig
from rlexp.trainers.offload import cpu_copy, on_device

# what each checkpoint holds besides the Trainer's: the rollout machinery's counters, and a stale actor copy's weights
ROLLOUT_STATE_FILE = "rollout_state.json"
ACTOR_FILE = "actor.safetensors"
# logits rows projected at once in the scoring pass: about 64 MB of fp32 logits whatever the vocabulary
LOGIT_ELEMENTS_PER_CHUNK = 2**24


def topk_candidates(logp_actor: torch.Tensor, sampled: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The actor's top-k ids and the sampled id, (N, k+1), with their log-probs; a sampled id already in the top-k
    gets -inf in its extra column, so no id counts twice in a sum over the candidates."""
    top = logp_actor.topk(min(k, logp_actor.size(-1)), dim=-1)
    sampled = sampled[:, None]
    duplicate = (top.indices == sampled).any(-1, keepdim=True)
    sampled_logp = logp_actor.gather(1, sampled).masked_fill(duplicate, float("-inf"))
    return torch.cat([top.indices, sampled], 1), torch.cat([top.values, sampled_logp], 1)


# ---------------------------------------------------------------- what the actor reports while it generates


@dataclass
class ActorLogprobs:
    """What the actor reported per completion token: the sampled token's log-prob and its candidate ids."""

    sampled: list[list[float]]  # per sequence, per token; NaN where vLLM could not score
    candidate_ids: list[list[list[int]]]  # per token: top-k ids and the sampled id, de-duplicated
    candidate_logps: list[list[list[float]]]


def actor_logprobs_from_vllm(logprobs, logprob_token_ids, completion_ids) -> ActorLogprobs:
    """Parse vLLM's `logprobs=k` output, as TRL's `VLLMGeneration.generate` returns it (entries sorted by rank,
    `None` for NaN), into the sampled token's log-prob and the candidate set.

    The pitfall: with k > 0 the first entry is the top-1 token, not the sampled one (TRL keeps `lp[0]`, right only
    for k = 0). The sampled token's entry is the one whose id is the completion's token; vLLM always includes it."""
    sampled, cand_ids, cand_logps = [], [], []
    for seq_logps, seq_ids, seq_tokens in zip(logprobs, logprob_token_ids, completion_ids, strict=True):
        seq_sampled, seq_cand_ids, seq_cand_logps = [], [], []
        for entry_logps, entry_ids, token in zip(seq_logps, seq_ids, seq_tokens, strict=True):
            by_id = {}
            for tid, lp in zip(entry_ids, entry_logps, strict=True):
                by_id.setdefault(int(tid), float("nan") if lp is None else float(lp))
            if int(token) not in by_id:
                raise ValueError(f"vLLM's logprobs at a position do not include the sampled token {token}: {entry_ids}")
            seq_sampled.append(by_id[int(token)])
            seq_cand_ids.append(list(by_id))
            seq_cand_logps.append(list(by_id.values()))
        sampled.append(seq_sampled)
        cand_ids.append(seq_cand_ids)
        cand_logps.append(seq_cand_logps)
    return ActorLogprobs(sampled, cand_ids, cand_logps)


def candidates_to_tensors(actor: ActorLogprobs, width: int, length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, length, width) ids and log-probs, padded with id 0 at log-prob -inf (adds nothing to a sum)."""
    ids = torch.zeros(len(actor.candidate_ids), length, width, dtype=torch.long)
    logps = torch.full((len(actor.candidate_ids), length, width), float("-inf"))
    for b, (seq_ids, seq_logps) in enumerate(zip(actor.candidate_ids, actor.candidate_logps)):
        for t, (tok_ids, tok_logps) in enumerate(zip(seq_ids[:length], seq_logps[:length])):
            n = min(width, len(tok_ids))
            ids[b, t, :n] = torch.tensor(tok_ids[:n])
            logps[b, t, :n] = torch.tensor(tok_logps[:n]).nan_to_num(nan=float("-inf"))
    return ids.to(device), logps.to(device)


def report_from_vllm(actor: ActorLogprobs, device) -> dict[str, torch.Tensor]:
    """The parsed vLLM output as the tensors `ActorLogprobRecorder.report` gives (NaN where vLLM could not score)."""
    length = max((len(s) for s in actor.sampled), default=1)
    width = max((len(ids) for seq in actor.candidate_ids for ids in seq), default=1)
    ids, logps = candidates_to_tensors(actor, width, length, device)
    sampled = pad([torch.tensor(s, dtype=torch.float32) for s in actor.sampled], padding_value=0.0, padding_side="right")
    return {"sampled": sampled.to(device), "candidate_ids": ids, "candidate_logps": logps}


class ActorLogprobRecorder(LogitsProcessor):
    """Records the actor's log-probs while it generates (HF `generate`), as vLLM reports them: per step the top-k
    ids and log-probs and, read one step later from the token that was sampled, the sampled token's log-prob.

    Custom processors run before `generate`'s temperature warper, so it divides by the temperature itself; with
    top_p, top_k, min_p and the repetition penalty off (`check_actor`), that is the sampled distribution.
    Memory: k values per token and one step's full distribution."""

    def __init__(self, k: int, temperature: float):
        self.k, self.temperature = k, temperature
        self.top_ids: list[torch.Tensor] = []
        self.top_logps: list[torch.Tensor] = []
        self.sampled_logps: list[torch.Tensor] = []
        self._previous: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._previous is not None:  # the last input id is the token sampled from the previous step's scores
            self.sampled_logps.append(self._previous.gather(1, input_ids[:, -1:])[:, 0])
        logps = F.log_softmax(scores.float() / self.temperature, -1)
        top = logps.topk(min(self.k, logps.size(-1)), dim=-1)
        self.top_ids.append(top.indices)
        self.top_logps.append(top.values)
        self._previous = logps
        return scores

    def report(self, sequences: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, T) sampled log-probs and (B, T, k+1) candidate ids and log-probs, T = generated steps."""
        steps = len(self.top_ids)
        self.sampled_logps.append(self._previous.gather(1, sequences[:, -1:])[:, 0])
        sampled_ids = sequences[:, sequences.size(1) - steps :]
        sampled = torch.stack(self.sampled_logps, 1)
        top_ids, top_logps = torch.stack(self.top_ids, 1), torch.stack(self.top_logps, 1)
        duplicate = (top_ids == sampled_ids[..., None]).any(-1, keepdim=True)
        return {
            "sampled": sampled,
            "candidate_ids": torch.cat([top_ids, sampled_ids[..., None]], -1),
            "candidate_logps": torch.cat([top_logps, sampled[..., None].masked_fill(duplicate, float("-inf"))], -1),
        }


def fit_length(t: torch.Tensor, length: int, value) -> torch.Tensor:
    """`t` cut or padded with `value` along dim 1 to `length` positions."""
    if t.size(1) >= length:
        return t[:, :length]
    shape = (t.size(0), length - t.size(1), *t.shape[2:])
    return torch.cat([t, torch.full(shape, value, dtype=t.dtype, device=t.device)], 1)


# ---------------------------------------------------------------- the trainer: the actor generates, the policy scores


@dataclass
class RolloutLogprobs:
    """The scoring pass's numbers: per completion token (B, C) and per candidate id (B, C, K)."""

    policy: torch.Tensor  # log p(y_t), 0 off the mask
    actor: torch.Tensor  # log q(y_t), 0 off the mask; NaN where vLLM could not score
    candidate_ids: torch.Tensor  # 0 off the mask
    candidate_actor: torch.Tensor  # log q(x); -inf off the mask, on padding, and on a sampled id already in the top-k
    candidate_policy: torch.Tensor  # log p(x); -inf wherever candidate_actor is
    full_vocabulary: torch.Tensor | None  # the `full_vocabulary_stat` asked for, per token, 0 off the mask


class ActorRolloutGRPOTrainer(GRPOTrainer):
    """`GRPOTrainer` whose training rollouts come from `actor`, which reports its log-probs as it writes them.

    `actor`: a causal LM sharing the policy's tokenizer, or None for the policy itself; `actor_lag` N > 0 makes
    that a copy of the policy refreshed every N steps after generating, so rollouts come from a policy 1 to N steps
    old (with `use_vllm`: the policy's weights are synced into vLLM that way).
    `vllm_serves_actor`: the vLLM server runs a separate actor model, whose weights are never synced.
    `actor_offload`: the actor (a separate model, or the stale copy) stays in CPU memory between its passes, moved to
    the training device to generate and to score, and back after.
    `actor_top_k`: top-k ids recorded per token. `record_while_generating=False`: HF generation records nothing and
    `_score_rollouts` reruns the actor, for statistics of its whole distribution.
    Evaluation samples the policy, as TRL does."""

    def __init__(self, *args, actor=None, actor_lag: int = 0, vllm_serves_actor: bool = False, actor_top_k: int = 20,
                 record_while_generating: bool = True, actor_offload: bool = False, **kwargs):  # fmt: skip
        super().__init__(*args, **kwargs)
        self.actor_lag = actor_lag
        self.vllm_serves_actor = vllm_serves_actor
        self.actor_top_k = actor_top_k
        self.record_while_generating = record_while_generating
        self.actor_is_policy_copy = actor is None and actor_lag > 0 and not self.use_vllm
        self.actor_offload = actor_offload
        if self.actor_is_policy_copy:
            policy = self.accelerator.unwrap_model(self.model)
            actor = cpu_copy(policy) if actor_offload else copy.deepcopy(policy)
        if actor is not None and actor_offload:
            actor = actor.to("cpu")
        elif actor is not None:
            actor = actor.to(self.accelerator.device)
        self.rollout_actor = actor.eval() if actor is not None else None
        if self.rollout_actor is not None:
            self.rollout_actor.requires_grad_(False)
        self._actor_refreshed_step = 0
        self._actor_report: dict[str, torch.Tensor] | None = None  # what the actor reported while generating
        if self.use_vllm:
            self.vllm_generation.logprobs = actor_top_k

    def _actor_placed(self):
        """The actor on the training device for a pass: moved there and back with actor_offload, else where it is."""
        if self.actor_offload and self.rollout_actor is not None:
            return on_device(self.rollout_actor, self.accelerator.device)
        return contextlib.nullcontext()

    # ------------------------------------------------------------ checkpoints: what a resumed run needs of the actor

    def rollout_state(self) -> dict:
        """What a checkpoint keeps of the rollout machinery besides the actor copy's weights (subclasses add theirs)."""
        return {"actor_refreshed_step": self._actor_refreshed_step}

    def load_rollout_state(self, state: dict) -> None:
        self._actor_refreshed_step = state["actor_refreshed_step"]

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            (folder / ROLLOUT_STATE_FILE).write_text(json.dumps(self.rollout_state()))
            if self.actor_is_policy_copy:  # a stale copy of the policy: its weights are state
                save_model(self.rollout_actor, str(folder / ACTOR_FILE))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        folder = Path(resume_from_checkpoint)
        if (folder / ROLLOUT_STATE_FILE).is_file():
            self.load_rollout_state(json.loads((folder / ROLLOUT_STATE_FILE).read_text()))
        if self.actor_is_policy_copy and (folder / ACTOR_FILE).is_file():
            load_model(self.rollout_actor, str(folder / ACTOR_FILE))

    # ------------------------------------------------------------ generation: the actor writes the rollouts

    def _refresh_actor_copy(self) -> None:
        step = self.state.global_step
        if self.actor_is_policy_copy and step - self._actor_refreshed_step >= self.actor_lag:
            self.rollout_actor.load_state_dict(self.accelerator.unwrap_model(self.model).state_dict())
            self._actor_refreshed_step = step

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        self._actor_report = None
        if not self.model.training:  # evaluation samples the policy
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)
        if self.use_vllm:
            return self._generate_with_vllm(prompt_ids, images, num_generations)
        if self.rollout_actor is None:
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)
        completions = self._generate_with_actor(prompt_ids)
        self._refresh_actor_copy()  # after generating, so the rollouts come from a policy 1 to actor_lag steps old
        return completions, None

    def _generate_with_actor(self, prompt_ids: list[list[int]]) -> list[list[int]]:
        device = self.accelerator.device
        prompts = [torch.tensor(ids) for ids in prompt_ids]
        input_ids = pad(prompts, padding_value=self._tokenizer.pad_token_id, padding_side="left").to(device)
        attention_mask = pad([torch.ones_like(p) for p in prompts], padding_value=0, padding_side="left").to(device)
        recorder = ActorLogprobRecorder(self.actor_top_k, self.temperature) if self.record_while_generating else None
        with profiling_context(self, "actor.generate"), torch.no_grad(), self.accelerator.autocast(), self._actor_placed():
            out = self.rollout_actor.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=self.generation_config,
                                              logits_processor=LogitsProcessorList([recorder]) if recorder else None)  # fmt: skip
        self._actor_report = recorder.report(out) if recorder else None
        completions = out[:, input_ids.size(1) :].cpu()
        eos = set(self.eos_token_ids)
        result = []
        for row in completions.tolist():
            end = next((i for i, tok in enumerate(row) if tok in eos), len(row) - 1)
            result.append(row[: end + 1])
        return result

    def _sync_vllm_weights(self) -> None:
        with profiling_context(self, "sync_weights"):
            self.vllm_generation.sync_weights()
        self._last_loaded_step = self.state.global_step

    def _generate_with_vllm(self, prompt_ids, images, num_generations):
        # the engine serves the policy (actor "self": synced each step as TRL does, or every actor_lag steps after
        # generating, so rollouts come from a policy 1 to actor_lag steps old) or a separate actor (never synced)
        step = self.state.global_step
        if not self.vllm_serves_actor and self.actor_lag == 0 and step != self._last_loaded_step:
            self._sync_vllm_weights()
        _, completion_ids, logprobs, token_ids = self.vllm_generation.generate(
            prompts=prompt_ids, images=images, num_generations=num_generations, profiler=profiling_context(self, "vLLM.generate")
        )
        if not self.vllm_serves_actor and self.actor_lag and step - max(self._last_loaded_step, 0) >= self.actor_lag:
            self._sync_vllm_weights()
        parsed = actor_logprobs_from_vllm(logprobs, token_ids, completion_ids)
        self._actor_report = report_from_vllm(parsed, self.accelerator.device)
        return completion_ids, parsed.sampled

    # ------------------------------------------------------------ scoring: log-probs of both models at the same ids

    def _completion_hidden(self, model, prompt_ids, prompt_mask, completion_ids, completion_mask) -> torch.Tensor:
        """The final hidden states that predict each completion token, (B, C, H). Each prompt comes num_generations
        times: its forward runs once and its KV cache is shared by its completions (most of the tokens are prompt)."""
        prompts = torch.cat([prompt_ids, prompt_mask], 1)
        unique, inverse = torch.unique(prompts, dim=0, return_inverse=True)
        P = prompt_ids.size(1)
        with self.accelerator.autocast():
            prefix = model.base_model(input_ids=unique[:, :P], attention_mask=unique[:, P:], use_cache=True)
            last_prompt_state = prefix.last_hidden_state[inverse, -1:]  # predicts the first completion token
            if completion_ids.size(1) == 1:
                return last_prompt_state
            cache = prefix.cache
            cache.reorder_cache(inverse)  # one copy of the prompt's keys and values per completion
            rest = model.base_model(input_ids=completion_ids[:, :-1], cache=cache, use_cache=False,
                                    attention_mask=torch.cat([prompt_mask, completion_mask[:, :-1]], 1)).last_hidden_state  # fmt: skip
        return torch.cat([last_prompt_state, rest], 1)

    def _score_rollouts(
        self, output: dict, full_vocabulary_stat: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    ) -> RolloutLogprobs:
        """`_score_both`, with the actor on the training device when its own pass is needed (it reported nothing)."""
        needs_actor = self._actor_report is None and self.rollout_actor is not None
        with self._actor_placed() if needs_actor else contextlib.nullcontext():
            return self._score_both(output, full_vocabulary_stat)

    @torch.no_grad()
    def _score_both(
        self, output: dict, full_vocabulary_stat: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    ) -> RolloutLogprobs:
        """One no-grad pass: log p (the policy now) at each sampled token and at the actor's candidate ids, only at
        valid completion positions, and log q (the actor) unless it was reported during generation.

        `full_vocabulary_stat(log q, log p)`: a per-token statistic of both whole distributions, (N, V) -> (N,),
        computed while they are at hand; it needs the actor's own pass here (`record_while_generating=False`)."""
        prompt_ids, prompt_mask = output["prompt_ids"], output["prompt_mask"]
        completion_ids, completion_mask = output["completion_ids"], output["completion_mask"]
        mask = completion_mask.bool()
        B, C = completion_ids.shape
        policy = self.accelerator.unwrap_model(self.model)
        report, self._actor_report = self._actor_report, None
        # the actor's side: reported while it generated (vLLM, or the recorder), else from its own pass here
        actor = None if report is not None else (self.rollout_actor or policy)
        if full_vocabulary_stat is not None and actor is None:
            raise ValueError("a statistic of the actor's whole distribution needs its own pass; it reported only its top-k")
        k, T = self.actor_top_k, self.temperature
        device = completion_ids.device
        width = k + 1
        # from the configs: under ZeRO-3 a weight's local shape is empty
        vocab = policy.config.get_text_config().vocab_size
        if actor is not None and actor is not policy:
            vocab = min(vocab, actor.config.get_text_config().vocab_size)
        if report is not None:
            reported_sampled = fit_length(report["sampled"], C, 0.0)
            reported_ids = fit_length(report["candidate_ids"], C, 0)
            reported_logps = fit_length(report["candidate_logps"], C, float("-inf")).masked_fill(
                reported_ids >= vocab, float("-inf")
            )
            reported_ids = reported_ids.clamp(max=vocab - 1)
            width = reported_ids.size(-1)

        logp_policy = torch.zeros(B, C, device=device)
        logp_actor = torch.zeros(B, C, device=device)
        cand_ids = torch.zeros(B, C, width, dtype=torch.long, device=device)
        cand_actor = torch.full((B, C, width), float("-inf"), device=device)
        cand_policy = torch.full((B, C, width), float("-inf"), device=device)
        stat = torch.zeros(B, C, device=device) if full_vocabulary_stat is not None else None
        policy_head = policy.get_output_embeddings()
        actor_head = actor.get_output_embeddings() if actor is not None else None
        rows = self.args.per_device_train_batch_size
        for start in range(0, B, rows):
            sl = slice(start, start + rows)
            m = mask[sl]
            batch = (prompt_ids[sl], prompt_mask[sl], completion_ids[sl], completion_mask[sl])
            h_policy = self._completion_hidden(policy, *batch)[m]  # (N, H), valid positions only
            h_actor = None
            if actor is policy:
                h_actor = h_policy
            elif actor is not None:
                h_actor = self._completion_hidden(actor, *batch)[m]
            tokens = completion_ids[sl][m]
            n = tokens.numel()
            out = {name: [] for name in ("policy", "actor", "ids", "cand_actor", "cand_policy", "stat")}
            step = max(1, LOGIT_ELEMENTS_PER_CHUNK // vocab)
            for s in range(0, n, step):
                e = min(n, s + step)
                lp = F.log_softmax(policy_head(h_policy[s:e].to(policy_head.weight.dtype)).float() / T, -1)[:, :vocab]
                sampled = tokens[s:e, None]
                out["policy"].append(lp.gather(1, sampled)[:, 0])
                if h_actor is None:  # the actor reported its side
                    ids = reported_ids[sl][m][s:e]
                    out["ids"].append(ids)
                    out["cand_actor"].append(reported_logps[sl][m][s:e])
                    out["actor"].append(reported_sampled[sl][m][s:e])
                else:
                    lq = (
                        lp
                        if actor is policy
                        else F.log_softmax(actor_head(h_actor[s:e].to(actor_head.weight.dtype)).float() / T, -1)[:, :vocab]
                    )
                    ids, cand_logps = topk_candidates(lq, sampled[:, 0], k)
                    out["ids"].append(ids)
                    out["cand_actor"].append(cand_logps)
                    out["actor"].append(lq.gather(1, sampled)[:, 0])
                    if stat is not None:
                        out["stat"].append(full_vocabulary_stat(lq, lp))
                out["cand_policy"].append(lp.gather(1, ids))
            if n:
                logp_policy[sl] = logp_policy[sl].masked_scatter(m, torch.cat(out["policy"]))
                logp_actor[sl] = logp_actor[sl].masked_scatter(m, torch.cat(out["actor"]))
                m_cand = m[..., None].expand(-1, -1, cand_ids.size(-1))
                cand_ids[sl] = cand_ids[sl].masked_scatter(m_cand, torch.cat(out["ids"]))
                cand_actor[sl] = cand_actor[sl].masked_scatter(m_cand, torch.cat(out["cand_actor"]))
                cand_policy[sl] = cand_policy[sl].masked_scatter(m_cand, torch.cat(out["cand_policy"]))
                if stat is not None:
                    stat[sl] = stat[sl].masked_scatter(m, torch.cat(out["stat"]))
        cand_policy = cand_policy.masked_fill(torch.isinf(cand_actor), float("-inf"))
        return RolloutLogprobs(logp_policy, logp_actor, cand_ids, cand_actor, cand_policy, stat)


# ---------------------------------------------------------------- loading the actor (its config and checks: rlexp/algos/actor.py)


def load_actor(actor: ModelConfig | None, policy_tokenizer, use_vllm: bool):
    """The actor model HF generation samples from, or None: the policy itself (`actor` None), or a separate actor that
    vLLM holds (only its tokenizer is loaded). Either way a separate actor must have the policy's vocabulary."""
    if actor is None:
        return None
    if use_vllm:
        model, tokenizer = None, AutoTokenizer.from_pretrained(actor.pretrained)
    else:
        model, tokenizer = models.load(actor)
    check_same_vocabulary(policy_tokenizer, tokenizer, actor.name)
    return model


def check_same_vocabulary(policy_tokenizer, actor_tokenizer, actor_name: str) -> None:
    """The two models' probabilities are compared token id by token id: the tokenizers must agree."""
    if policy_tokenizer.get_vocab() != actor_tokenizer.get_vocab():
        raise ConfigError(
            f"algo.actor={actor_name} has a different vocabulary ({len(actor_tokenizer)} tokens) from the policy's "
            f"({len(policy_tokenizer)} tokens); their probabilities are compared token by token, so pick an actor "
            "with the policy's tokenizer"
        )
