"""Jackpot: GRPO on rollouts from a different actor, corrected by optimal budgeted rejection sampling (OBRS).

"Jackpot: Optimal Budgeted Rejection Sampling for Extreme Actor-Policy Mismatch Reinforcement Learning"
(arXiv 2602.06107; specs/jackpot.md). A cheap actor (a smaller model, a stale copy of the policy,
or the vLLM engine's numerics) writes the rollouts; the policy trains on them. Notation, per completion token t
at decoding state s_t: q = p_actor(.|s_t) the distribution the token y_t was sampled from (at the sampling
temperature), p = p_target(.|s_t) the distribution OBRS aligns q to (the old policy p_ref by default).

Acceptance. y_t is kept with probability

    a_t = min(1, p(y_t) / (lambda * q(y_t))),        M_t ~ Bernoulli(a_t)

The kept tokens follow q~(x) = min(q(x), p(x)/lambda) / Z with Z = sum_x min(q(x), p(x)/lambda) = E_q[a], the
expected acceptance rate. Of all rules that accept a share Z, this one brings q~ closest to p in KL(p || q~);
a larger lambda rejects more and aligns better; lambda -> 0 accepts everything; lambda = 1 is the speculative
decoding rule (Z = 1 - TV(p, q)).

OBRS weight. The weight that turns kept tokens back into samples of p is

    w_t = p(y_t) / q~(y_t) = Z_t * max(lambda, p(y_t) / q(y_t)),     rho_t = min(w_t, c1)          (target "ref")
    rho_t = min(w_t, c1) * min(p_ref(y_t) / p_new(y_t), c2),  w from p = p_new.detach()            (target "new")

c1 (`max_weight`) truncates w as TIS truncates its ratio; c2 (`max_ref_ratio`) bounds the stale-anchor factor
when the target is the current policy (Algorithm 1 of the paper).

Z from the top-k. Z_t is a sum over the vocabulary. It is estimated on the actor's top-k ids (k = 20) plus the
sampled id, Z~_t = sum_{x in ids} min(q(x), p(x)/lambda) <= Z_t (ids in the policy's top-k but not the actor's have
no q(x), so count 0), and the bias is removed with the batch's realised acceptance:

    kappa = accepted tokens / proposed tokens  /  mean_t Z~_t,         Z_t = kappa * Z~_t

(`acceptance_estimator: expected` uses mean a_t instead of the Bernoulli count). `z_estimate: exact` sums over the
whole vocabulary instead (HF generation, where both models' logits are at hand).

With GRPO. Per token the loss is TRL's clipped objective, masked and reweighted:

    l_t = -M_t * SG(rho_t) * min(r_t A, clip(r_t, 1 - eps, 1 + eps) A),      r_t = p_new(y_t) / p_ref(y_t)

Because rho_t >= 0 it can ride in the advantage (A * rho_t inside the min is rho_t times the min), so the override
is small: `_generate_single_turn` lets the actor generate and records its log-probs (the sampled token's and the
top-k, at the sampling temperature); `_generate_and_score_completions` adds one no-grad pass of the policy over the
rollouts (each prompt's forward runs once, its KV cache shared by its completions) for log p at the sampled and the
candidate ids, samples M, computes rho, and folds M into TRL's loss mask (`tool_mask`; rejected tokens stay in the
attention context); `_get_per_token_logps_and_entropies`, called inside `_compute_loss`, hands TRL the advantages
A * rho (recomputing rho from p_new for target "new"). `level: sequence` accepts and weighs whole completions with
the sequence ratio (Z is then the batch acceptance rate itself; no top-k). `correction: tis` replaces OBRS by TRL's
token-level truncated importance sampling min(p_ref / q, c1) (TRL's own code when vLLM generates), `none` by 1.

The actor. `actor: self` with `actor_lag: 0` is the policy itself; with `actor_lag: N` a copy refreshed every N
steps after generating (rollouts from a policy 1 to N steps old); a model config mapping (the fields of conf/model/*.yaml) or a hub id / checkpoint path loads a separate
model that must share the policy's tokenizer (in HF generation a logits processor records its log-probs; with
`z_estimate: exact` the actor runs again over the rollouts instead). With `use_vllm`, vLLM generates and returns
`logprobs=k` entries per token, sorted by rank: the first is the top-1 token, not the sampled one, so the sampled
token's entry is found by its id (`actor_logprobs_from_vllm`). That path is tested offline on vLLM-shaped output
only, never with vLLM on a GPU.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable

import torch
import torch.nn.functional as F
from transformers import LogitsProcessor, LogitsProcessorList
from trl import GRPOTrainer
from trl.extras.profiling import profiling_context
from trl.trainer.utils import pad

from rlexp.algos import register
from rlexp.algos.grpo import GRPO
from rlexp.errors import ConfigError
from rlexp.models import ModelConfig, check_available

LOSS_TYPES = ("grpo", "dapo", "bnpo", "dr_grpo")
# logits rows projected at once in the scoring pass: about 64 MB of fp32 logits whatever the vocabulary
LOGIT_ELEMENTS_PER_CHUNK = 2**24


# ---------------------------------------------------------------- the math, as pure functions (tested one by one)


def log_acceptance(logp_target: torch.Tensor, logp_actor: torch.Tensor, lam: float) -> torch.Tensor:
    """log a = min(0, log p - log q - log lambda), in log space so that p/q never overflows."""
    return torch.clamp(logp_target - logp_actor - math.log(lam), max=0.0)


def z_sum(logp_actor: torch.Tensor, logp_target: torch.Tensor, lam: float) -> torch.Tensor:
    """sum_x min(q(x), p(x)/lambda) over the last dim: candidate ids (the top-k estimate) or the whole vocabulary
    (exact Z). Entries at -inf (padding, duplicate ids) add nothing."""
    return torch.exp(torch.minimum(logp_actor, logp_target - math.log(lam))).sum(-1)


def topk_candidates(logp_actor: torch.Tensor, sampled: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The actor's top-k ids and the sampled id, (N, k+1), with their log-probs; a sampled id already in the top-k
    gets -inf in its extra column, so no id counts twice in Z~."""
    top = logp_actor.topk(min(k, logp_actor.size(-1)), dim=-1)
    sampled = sampled[:, None]
    duplicate = (top.indices == sampled).any(-1, keepdim=True)
    sampled_logp = logp_actor.gather(1, sampled).masked_fill(duplicate, float("-inf"))
    return torch.cat([top.indices, sampled], 1), torch.cat([top.values, sampled_logp], 1)


def allsum_local(x: torch.Tensor) -> torch.Tensor:
    return x


@dataclass
class OBRSResult:
    accept_prob: torch.Tensor  # a_t, (B, C); 1 on padding
    accepted: torch.Tensor  # M_t in {0, 1}, (B, C); 0 on padding
    log_weight: torch.Tensor  # log w_t before the c1 clip, (B, C) or (B, 1) at sequence level
    rho: torch.Tensor  # min(w_t, c1), (B, C) or (B, 1)
    z: torch.Tensor  # kappa * Z~_t, (B, C), or the batch acceptance (scalar) at sequence level
    kappa: float
    accept_rate: float  # realised share of accepted tokens (or sequences)
    expected_accept_rate: float  # mean a_t


def obrs_token_weights(
    logp_target: torch.Tensor,
    logp_actor: torch.Tensor,
    z_approx: torch.Tensor,
    mask: torch.Tensor,
    uniform: torch.Tensor,
    *,
    lam: float,
    max_weight: float,
    estimator: str = "count",
    bias_correction: bool = True,
    allsum: Callable[[torch.Tensor], torch.Tensor] = allsum_local,
) -> OBRSResult:
    """Token-level OBRS on (B, C) tensors: acceptance, the Bernoulli mask from `uniform`, kappa-calibrated Z, w, rho.

    Only positions with mask = 1 count in the batch means, so padding never changes a weight. `allsum` sums a
    tensor over processes, so kappa is the same on every rank."""
    valid = mask.bool()
    validf = valid.float()
    log_ratio = (logp_target - logp_actor).float().masked_fill(~valid, 0.0)
    accept_prob = log_acceptance(log_ratio, torch.zeros_like(log_ratio), lam).exp().masked_fill(~valid, 1.0)
    accepted = (uniform < accept_prob) & valid
    totals = allsum(torch.stack([validf.sum(), accepted.float().sum(), (accept_prob * validf).sum(), (z_approx.float() * validf).sum()]))
    n = totals[0].clamp(min=1.0)
    accept_rate, expected = (totals[1] / n).item(), (totals[2] / n).item()
    z_approx_mean = (totals[3] / n).item()
    target_rate = accept_rate if estimator == "count" else expected
    kappa = target_rate / z_approx_mean if bias_correction and z_approx_mean > 0 else 1.0
    z = kappa * z_approx.float()
    log_weight = torch.log(z.clamp(min=1e-30)) + torch.clamp(log_ratio, min=math.log(lam))
    rho = torch.exp(torch.clamp(log_weight, max=math.log(max_weight)))
    return OBRSResult(accept_prob, accepted.int(), log_weight, rho, z, kappa, accept_rate, expected)


def obrs_sequence_weights(
    logp_target: torch.Tensor,
    logp_actor: torch.Tensor,
    mask: torch.Tensor,
    uniform: torch.Tensor,
    *,
    lam: float,
    max_weight: float,
    estimator: str = "count",
    allsum: Callable[[torch.Tensor], torch.Tensor] = allsum_local,
) -> OBRSResult:
    """Sequence-level OBRS: one accept/reject and one weight per completion, from the summed log ratio.

    No top-k estimate exists over sequences; Z is the batch's acceptance rate (count or mean a)."""
    valid = mask.bool()
    log_ratio = ((logp_target - logp_actor).float() * valid).sum(-1, keepdim=True)  # (B, 1)
    has_tokens = valid.any(-1, keepdim=True)
    accept_prob = log_acceptance(log_ratio, torch.zeros_like(log_ratio), lam).exp().masked_fill(~has_tokens, 1.0)
    accepted = (uniform[:, :1] < accept_prob) & has_tokens
    totals = allsum(torch.stack([has_tokens.float().sum(), accepted.float().sum(), (accept_prob * has_tokens).sum()]))
    n = totals[0].clamp(min=1.0)
    accept_rate, expected = (totals[1] / n).item(), (totals[2] / n).item()
    z = torch.tensor(accept_rate if estimator == "count" else expected)
    log_weight = torch.log(z.clamp(min=1e-30)) + torch.clamp(log_ratio, min=math.log(lam))
    rho = torch.exp(torch.clamp(log_weight, max=math.log(max_weight)))
    return OBRSResult(accept_prob.expand_as(mask).float(), (accepted & valid).int(), log_weight, rho, z, 1.0, accept_rate, expected)


def kl_terms(log_ratio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample terms whose means estimate the KL both ways, for x ~ s and log_ratio = log t(x) / s(x):
    r - 1 - log r -> KL(s || t) (the k3 estimator, never negative), r log r -> KL(t || s), since E_s[r f] = E_t[f].
    With s = q and t = p it is the actor-policy KL before rejection; on accepted tokens with log w, after it."""
    r = log_ratio.exp()
    return r - 1 - log_ratio, r * log_ratio


def truncated_importance_weights(logp_target: torch.Tensor, logp_actor: torch.Tensor, mask: torch.Tensor, max_weight: float):
    """TRL's `vllm_importance_sampling_mode="token_truncate"` ratio with clip_min=None: min(p/q, c1), 1 on padding."""
    diff = torch.nan_to_num((logp_target - logp_actor) * mask, nan=0.0)
    return torch.clamp(torch.exp(diff), max=max_weight)


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
    """(B, length, width) ids and log-probs, padded with id 0 at log-prob -inf (adds nothing to Z~)."""
    ids = torch.zeros(len(actor.candidate_ids), length, width, dtype=torch.long)
    logps = torch.full((len(actor.candidate_ids), length, width), float("-inf"))
    for b, (seq_ids, seq_logps) in enumerate(zip(actor.candidate_ids, actor.candidate_logps)):
        for t, (tok_ids, tok_logps) in enumerate(zip(seq_ids[:length], seq_logps[:length])):
            n = min(width, len(tok_ids))
            ids[b, t, :n] = torch.tensor(tok_ids[:n])
            logps[b, t, :n] = torch.tensor(tok_logps[:n]).nan_to_num(nan=float("-inf"))
    return ids.to(device), logps.to(device)


class ActorLogprobRecorder(LogitsProcessor):
    """Records the actor's log-probs while it generates (HF `generate`), as vLLM reports them: per step the top-k
    ids and log-probs and, read one step later from the token that was sampled, the sampled token's log-prob.

    Custom processors run before `generate`'s temperature warper, so it divides by the temperature itself; with
    top_p, top_k, min_p and the repetition penalty off (the algorithm's check), that is the sampled distribution.
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


def report_from_vllm(actor: ActorLogprobs, device) -> dict[str, torch.Tensor]:
    """The parsed vLLM output as the tensors `ActorLogprobRecorder.report` gives (NaN where vLLM could not score)."""
    length = max((len(s) for s in actor.sampled), default=1)
    width = max((len(ids) for seq in actor.candidate_ids for ids in seq), default=1)
    ids, logps = candidates_to_tensors(actor, width, length, device)
    sampled = pad([torch.tensor(s, dtype=torch.float32) for s in actor.sampled], padding_value=0.0, padding_side="right")
    return {"sampled": sampled.to(device), "candidate_ids": ids, "candidate_logps": logps}


# ---------------------------------------------------------------- the trainer


@dataclass
class JackpotOptions:
    # lambda of a = min(1, p / (lambda q)): larger rejects more and aligns better; 1 is the speculative-decoding rule
    obrs_lambda: float = 1.0
    # k of the top-k estimate of Z (the paper's 20)
    z_top_k: int = 20
    # c1: truncation of the OBRS weight w (and of TIS's ratio under correction=tis)
    max_weight: float = 3.0
    # c2: truncation of p_ref / p_new, used with target=new only
    max_ref_ratio: float = 3.0
    # token | sequence: accept and weigh each token, or each completion as a whole
    level: str = "token"
    # jackpot | tis (TRL's token-truncated importance sampling) | none: the correction applied
    correction: str = "jackpot"
    # ref | new: what OBRS aligns the actor to; "new" differs only when weights change within a generation batch
    target: str = "ref"
    # count (accepted / proposed, as in the paper) | expected (mean a_t): the acceptance that calibrates kappa
    acceptance_estimator: str = "count"
    # rescale the top-k Z by kappa (the paper's bias correction; an exact Z is used as it is)
    bias_correction: bool = True
    # topk | exact: Z from the actor's top-k ids, or summed over the vocabulary (HF generation only)
    z_estimate: str = "topk"
    # count rejected tokens in the loss normaliser (as zeros) instead of dropping them from it
    rejected_in_normalizer: bool = False
    # seed of the Bernoulli acceptance draws
    rejection_seed: int = 0


class JackpotGRPOTrainer(GRPOTrainer):
    """`GRPOTrainer` whose rollouts come from `actor` and are corrected by OBRS (see the module docstring).

    `actor`: a causal LM sharing the policy's tokenizer, or None for the policy itself; `actor_lag` N > 0 makes
    that a copy of the policy refreshed every N steps after generating, so rollouts come from a policy 1 to N steps
    old (with `use_vllm`: the policy's weights are synced into vLLM that way).
    `vllm_serves_actor`: the vLLM server runs a separate actor model, whose weights are never synced."""

    def __init__(self, *args, actor=None, actor_lag: int = 0, vllm_serves_actor: bool = False,
                 options: JackpotOptions | None = None, **kwargs):  # fmt: skip
        super().__init__(*args, **kwargs)
        self.jackpot = options or JackpotOptions()
        self.actor_lag = actor_lag
        self.vllm_serves_actor = vllm_serves_actor
        self.actor_is_policy_copy = actor is None and actor_lag > 0 and not self.use_vllm
        if self.actor_is_policy_copy:
            actor = copy.deepcopy(self.accelerator.unwrap_model(self.model))
        self.rollout_actor = actor.to(self.accelerator.device).eval() if actor is not None else None
        if self.rollout_actor is not None:
            self.rollout_actor.requires_grad_(False)
        self._actor_refreshed_step = 0
        self._actor_report: dict[str, torch.Tensor] | None = None  # what the actor reported while generating
        self._loss_inputs: dict | None = None
        self._draws = 0
        self._kappa = 1.0
        # kappa removes the top-k estimate's bias; an exact Z has none, and kappa would only add noise
        self.rescale_z = self.jackpot.bias_correction and self.jackpot.z_estimate == "topk"
        self.jackpot_seconds = 0.0  # time of the last generation batch's Jackpot work (scoring pass and weights)
        if self.use_vllm:
            self.vllm_generation.logprobs = self.jackpot.z_top_k

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
        # with z_estimate=exact the scoring pass needs the actor's whole distribution: it reruns the actor instead
        recorder = ActorLogprobRecorder(self.jackpot.z_top_k, self.temperature) if self.jackpot.z_estimate == "topk" else None
        with profiling_context(self, "jackpot.actor_generate"), torch.no_grad(), self.accelerator.autocast():
            out = self.rollout_actor.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=self.generation_config,
                                              logits_processor=LogitsProcessorList([recorder]) if recorder else None)  # fmt: skip
        self._actor_report = recorder.report(out) if recorder else None
        completions = out[:, input_ids.size(1):].cpu()
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

    @torch.no_grad()
    def _score_rollouts(self, output: dict) -> dict[str, torch.Tensor]:
        """One no-grad pass: log p_target (the policy now) at each sampled token and at the actor's candidate ids,
        only at valid completion positions, and log q (the actor) unless it was reported during generation (vLLM,
        or HF generation with the top-k estimate). Returns (B, C[, K]) tensors."""
        prompt_ids, prompt_mask = output["prompt_ids"], output["prompt_mask"]
        completion_ids, completion_mask = output["completion_ids"], output["completion_mask"]
        mask = completion_mask.bool()
        B, C = completion_ids.shape
        policy = self.accelerator.unwrap_model(self.model)
        report, self._actor_report = self._actor_report, None
        # the actor's side: reported while it generated (vLLM, or the recorder), else from its own pass here
        actor = None if report is not None else (self.rollout_actor or policy)
        k, lam, T = self.jackpot.z_top_k, self.jackpot.obrs_lambda, self.temperature
        device = completion_ids.device
        width = k + 1
        # from the configs: under ZeRO-3 a weight's local shape is empty
        vocab = policy.config.get_text_config().vocab_size
        if actor is not None and actor is not policy:
            vocab = min(vocab, actor.config.get_text_config().vocab_size)
        if report is not None:
            sampled_inf_all = fit_length(report["sampled"], C, 0.0)
            cand_ids_all = fit_length(report["candidate_ids"], C, 0)
            cand_inf_all = fit_length(report["candidate_logps"], C, float("-inf")).masked_fill(cand_ids_all >= vocab, float("-inf"))
            cand_ids_all = cand_ids_all.clamp(max=vocab - 1)
            width = cand_ids_all.size(-1)

        logp_tgt = torch.zeros(B, C, device=device)
        logp_inf = torch.zeros(B, C, device=device)
        cand_ids = torch.zeros(B, C, width, dtype=torch.long, device=device)
        cand_inf = torch.full((B, C, width), float("-inf"), device=device)
        cand_tgt = torch.full((B, C, width), float("-inf"), device=device)
        z_exact = torch.zeros(B, C, device=device) if self.jackpot.z_estimate == "exact" else None
        tgt_head = policy.get_output_embeddings()
        inf_head = actor.get_output_embeddings() if actor is not None else None
        rows = self.args.per_device_train_batch_size
        for start in range(0, B, rows):
            sl = slice(start, start + rows)
            batch = (prompt_ids[sl], prompt_mask[sl], completion_ids[sl], completion_mask[sl])
            h_tgt = self._completion_hidden(policy, *batch)[mask[sl]]  # (N, H), valid positions only
            h_inf = None
            if actor is policy:
                h_inf = h_tgt
            elif actor is not None:
                h_inf = self._completion_hidden(actor, *batch)[mask[sl]]
            tokens = completion_ids[sl][mask[sl]]
            n = tokens.numel()
            out = {name: [] for name in ("tgt", "inf", "ids", "cinf", "ctgt", "zex")}
            step = max(1, LOGIT_ELEMENTS_PER_CHUNK // vocab)
            for s in range(0, n, step):
                e = min(n, s + step)
                lt = F.log_softmax(tgt_head(h_tgt[s:e].to(tgt_head.weight.dtype)).float() / T, -1)[:, :vocab]
                sampled = tokens[s:e, None]
                out["tgt"].append(lt.gather(1, sampled)[:, 0])
                if h_inf is None:  # the actor reported its side
                    ids = cand_ids_all[sl][mask[sl]][s:e]
                    out["ids"].append(ids)
                    out["cinf"].append(cand_inf_all[sl][mask[sl]][s:e])
                    out["inf"].append(sampled_inf_all[sl][mask[sl]][s:e])
                else:
                    li = lt if actor is policy else F.log_softmax(inf_head(h_inf[s:e].to(inf_head.weight.dtype)).float() / T, -1)[:, :vocab]
                    ids, cand_logps = topk_candidates(li, sampled[:, 0], k)
                    out["ids"].append(ids)
                    out["cinf"].append(cand_logps)
                    out["inf"].append(li.gather(1, sampled)[:, 0])
                    if z_exact is not None:
                        out["zex"].append(z_sum(li, lt, lam))
                out["ctgt"].append(lt.gather(1, ids))
            m = mask[sl]
            if n:
                logp_tgt[sl] = logp_tgt[sl].masked_scatter(m, torch.cat(out["tgt"]))
                logp_inf[sl] = logp_inf[sl].masked_scatter(m, torch.cat(out["inf"]))
                w = cand_ids.size(-1)
                cand_ids[sl] = cand_ids[sl].masked_scatter(m[..., None].expand(-1, -1, w), torch.cat(out["ids"]))
                cand_inf[sl] = cand_inf[sl].masked_scatter(m[..., None].expand(-1, -1, w), torch.cat(out["cinf"]))
                cand_tgt[sl] = cand_tgt[sl].masked_scatter(m[..., None].expand(-1, -1, w), torch.cat(out["ctgt"]))
                if z_exact is not None:
                    z_exact[sl] = z_exact[sl].masked_scatter(m, torch.cat(out["zex"]))
        cand_tgt = cand_tgt.masked_fill(torch.isinf(cand_inf), float("-inf"))
        z_approx = z_exact if z_exact is not None else z_sum(cand_inf, cand_tgt, lam)
        tv_upper = 1.0 - z_sum(cand_inf, cand_tgt, 1.0)
        return {"logp_target": logp_tgt, "logp_actor": logp_inf, "z_approx": z_approx, "tv_upper": tv_upper}

    # ------------------------------------------------------------ weights, mask, metrics

    def _allsum(self, x: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(x, reduction="sum") if self.accelerator.num_processes > 1 else x

    def _uniform(self, shape, device) -> torch.Tensor:
        # seeded per generation batch and per rank, so reruns draw the same masks; drawn position-major, so the
        # draw of (row, position) is number position * rows + row whatever the padded length
        self._draws += 1
        gen = torch.Generator().manual_seed(self.jackpot.rejection_seed * 1_000_003 + self._draws * 7_919 + self.accelerator.process_index)
        rows, length = shape
        return torch.rand(length, rows, generator=gen).T.contiguous().to(device)

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        return self._apply_jackpot(output) if self.model.training else output

    def _apply_jackpot(self, output: dict) -> dict:
        """Score the rollouts, draw the acceptance mask, and add the weights to TRL's generation batch."""
        started = time.perf_counter()
        scores = self._score_rollouts(output)
        opts = self.jackpot
        tool_mask = output.get("tool_mask")
        loss_mask = output["completion_mask"] if tool_mask is None else output["completion_mask"] * tool_mask
        # tokens vLLM could not score (NaN) are left uncorrected, as TRL does
        scored = loss_mask.bool() & torch.isfinite(scores["logp_actor"])
        logp_target, logp_actor = scores["logp_target"], scores["logp_actor"].nan_to_num(nan=0.0)
        uniform = self._uniform(loss_mask.shape, loss_mask.device)
        if opts.level == "sequence":
            result = obrs_sequence_weights(logp_target, logp_actor, scored, uniform, lam=opts.obrs_lambda,
                                           max_weight=opts.max_weight, estimator=opts.acceptance_estimator, allsum=self._allsum)  # fmt: skip
        else:
            result = obrs_token_weights(logp_target, logp_actor, scores["z_approx"], scored, uniform, lam=opts.obrs_lambda,
                                        max_weight=opts.max_weight, estimator=opts.acceptance_estimator,
                                        bias_correction=self.rescale_z, allsum=self._allsum)  # fmt: skip
        self._kappa = result.kappa
        if opts.correction == "jackpot":
            keep = result.accepted | (loss_mask.bool() & ~scored).int()  # unscored tokens are kept, weight 1
            rho = torch.where(scored, result.rho.expand_as(loss_mask), torch.ones_like(logp_target))
            if opts.rejected_in_normalizer:
                rho = rho * keep
            else:
                tool_mask = keep if tool_mask is None else tool_mask * keep
                output["tool_mask"] = tool_mask
                output["num_items_in_batch"] = self.accelerator.gather((output["completion_mask"] * tool_mask).sum()).sum()
        elif opts.correction == "tis" and not self.use_vllm:
            rho = truncated_importance_weights(logp_target, logp_actor, scored, opts.max_weight)
        else:  # none, or tis done by TRL itself on the vLLM path
            rho = torch.ones_like(logp_target)
        output["jackpot_rho"] = rho
        output["jackpot_logp_actor"] = logp_actor
        output["jackpot_logp_ref"] = logp_target
        output["jackpot_z_approx"] = scores["z_approx"]
        output["jackpot_scored"] = scored.int()
        self._log_generation_metrics(result, scores, scored, logp_target, logp_actor)
        self.jackpot_seconds = time.perf_counter() - started
        self._metrics["train"]["jackpot/seconds"].append(self.jackpot_seconds)
        return output

    def _log_generation_metrics(self, result: OBRSResult, scores, scored, logp_target, logp_actor) -> None:
        opts, metrics = self.jackpot, self._metrics["train"]
        validf = scored.float()
        log_r = (logp_target - logp_actor).clamp(-30.0, 30.0) * validf
        r = log_r.exp()
        token_level = opts.level == "token"
        log_w = result.log_weight.expand_as(log_r).clamp(-30.0, 30.0)
        w = log_w.exp()
        accf = result.accepted.float() * validf
        clip_source = w if opts.correction == "jackpot" else r
        kl_actor_before, kl_policy_before = kl_terms(log_r)  # sampled tokens, x ~ q
        kl_actor_after, kl_policy_after = kl_terms(log_w)  # kept tokens, x ~ q~, w = p / q~
        sums = self._allsum(torch.stack([
            validf.sum(), accf.sum(),
            (kl_actor_before * validf).sum(), (kl_policy_before * validf).sum(),
            (kl_actor_after * accf).sum(), (kl_policy_after * accf).sum(),
            (w * validf).sum(),
            ((clip_source > opts.max_weight).float() * validf).sum(),
            (scores["z_approx"].float() * validf).sum(),
            (scores["tv_upper"].float() * validf).sum(),
        ]))  # fmt: skip
        n, n_acc = sums[0].clamp(min=1.0), sums[1].clamp(min=1.0)
        w_max = (w * validf).max() if validf.any() else torch.zeros((), device=w.device)
        if self.accelerator.num_processes > 1:
            w_max = self.accelerator.gather(w_max[None]).max()
        metrics["jackpot/tv_upper"].append((sums[9] / n).item())
        metrics["jackpot/kl_actor_policy_before"].append((sums[2] / n).item())
        metrics["jackpot/kl_policy_actor_before"].append((sums[3] / n).item())
        metrics["jackpot/frac_clipped"].append((sums[7] / n).item())  # w > c1 (jackpot), or p/q > c1 (tis, none)
        if opts.correction != "jackpot":
            return
        metrics["jackpot/accept_rate"].append(result.accept_rate)
        metrics["jackpot/expected_accept_rate"].append(result.expected_accept_rate)
        metrics["jackpot/kappa"].append(result.kappa)
        metrics["jackpot/Z_approx_mean"].append((sums[8] / n).item() if token_level else result.accept_rate)
        metrics["jackpot/Z_mean"].append((sums[8] / n).item() * result.kappa if token_level else result.accept_rate)
        metrics["jackpot/lambda"].append(opts.obrs_lambda)
        metrics["jackpot/kl_actor_policy_after"].append((sums[4] / n_acc).item())
        metrics["jackpot/kl_policy_actor_after"].append((sums[5] / n_acc).item())
        metrics["jackpot/w_mean"].append((sums[6] / n).item())
        metrics["jackpot/w_max"].append(w_max.item())

    # ------------------------------------------------------------ loss: TRL's, with A * rho and the accepted mask

    def _compute_loss(self, model, inputs):
        self._loss_inputs = dict(inputs)  # a copy: the buffered batch keeps its own advantages for later iterations
        try:
            return super()._compute_loss(model, self._loss_inputs)
        finally:
            self._loss_inputs = None

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        logps, entropies, *rest = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        inputs, self._loss_inputs = self._loss_inputs, None  # only the loss's own forward
        if inputs is not None and "jackpot_rho" in inputs:
            rho = inputs["jackpot_rho"]
            if self.jackpot.target == "new" and self.jackpot.correction == "jackpot":
                rho = self._rho_for_current_policy(logps.detach(), inputs) * (rho > 0)
            advantages = inputs["advantages"]
            advantages = advantages[:, None] if advantages.dim() == 1 else advantages
            # rho >= 0, so rho * min(r A, clip(r) A) = min(r (rho A), clip(r) (rho A)): TRL's loss, reweighted
            inputs["advantages"] = advantages * rho.to(advantages.dtype)
        return (logps, entropies, *rest)

    def _rho_for_current_policy(self, logp_new: torch.Tensor, inputs) -> torch.Tensor:
        """Algorithm 1 with p_target = p_new: min(w_new, c1) * min(p_ref / p_new, c2). kappa is rescaled by the
        change of the mean acceptance, so it equals the generation-time kappa while p_new = p_ref."""
        opts = self.jackpot
        scored = inputs["jackpot_scored"].bool()
        logp_actor, logp_ref = inputs["jackpot_logp_actor"], inputs.get("old_per_token_logps", inputs["jackpot_logp_ref"])
        a_new = log_acceptance(logp_new, logp_actor, opts.obrs_lambda).exp()
        a_ref = log_acceptance(inputs["jackpot_logp_ref"], logp_actor, opts.obrs_lambda).exp()
        sums = self._allsum(torch.stack([(a_new * scored).sum(), (a_ref * scored).sum()]))
        kappa = self._kappa * (sums[0] / sums[1].clamp(min=1e-30)).item() if self.rescale_z else 1.0
        log_w = torch.log((kappa * inputs["jackpot_z_approx"]).clamp(min=1e-30)) + torch.clamp(logp_new - logp_actor, min=math.log(opts.obrs_lambda))
        anchor = torch.exp(torch.clamp(logp_ref - logp_new, max=math.log(opts.max_ref_ratio)))
        self._metrics["train"]["jackpot/frac_ref_ratio_clipped"].append(
            ((logp_ref - logp_new > math.log(opts.max_ref_ratio)) & scored).float().sum().item() / max(1, scored.sum().item())
        )
        rho = torch.exp(torch.clamp(log_w, max=math.log(opts.max_weight))) * anchor
        return torch.where(scored, rho, torch.ones_like(rho))


# ---------------------------------------------------------------- the algorithm's config


# built from a config like model=tiny, so it shares the byte tokenizer; a hub policy needs an actor of its own
DEFAULT_ACTOR = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 256, "init_seed": 1}


@dataclass
class Jackpot(GRPO, JackpotOptions):
    # the rollout actor: "self" (the policy, or a copy `actor_lag` steps stale), a hub id or checkpoint path, or a
    # model config mapping like conf/model/*.yaml; by default a tiny model, smaller than model=tiny, with other weights
    actor: Any = field(default_factory=lambda: dict(DEFAULT_ACTOR))
    # with actor "self": refresh the actor copy every this many steps, after generating, so rollouts come from a
    # policy 1 to actor_lag steps old (0: the actor is the policy itself)
    actor_lag: int = 0

    def _use_vllm(self) -> bool:
        return bool(self.trl.get("use_vllm"))

    def actor_model_config(self):
        """The actor as a ModelConfig, or None for "self"."""
        from rlexp.config import structured  # rlexp.config imports the algorithms: import it when needed

        if self.actor == "self":
            return None
        if isinstance(self.actor, str):
            return ModelConfig(name=self.actor, pretrained=self.actor)
        node = dict(self.actor)
        node.setdefault("name", "actor")
        try:
            return structured(ModelConfig, node)
        except ConfigError as exc:
            raise ConfigError(f"algo.actor: {exc}") from None

    def trl_kwargs(self) -> dict:
        kwargs = super().trl_kwargs()
        # every correction is Jackpot's, except TIS on the vLLM path, which is TRL's own token_truncate
        kwargs.update(
            vllm_importance_sampling_correction=self._use_vllm() and self.correction == "tis",
            vllm_importance_sampling_mode="token_truncate",
            vllm_importance_sampling_clip_min=None,
            vllm_importance_sampling_clip_max=self.max_weight,
        )
        return kwargs

    def check(self, world_size: int) -> None:
        super().check(world_size)
        choices = {"level": ("token", "sequence"), "correction": ("jackpot", "tis", "none"), "target": ("ref", "new"),
                   "acceptance_estimator": ("count", "expected"), "z_estimate": ("topk", "exact")}  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"algo.{name}={getattr(self, name)} is not one of {', '.join(allowed)}")
        for name in ("obrs_lambda", "max_weight", "max_ref_ratio"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"algo.{name} must be positive; got {getattr(self, name)}")
        if self.z_top_k < 1:
            raise ConfigError(f"algo.z_top_k must be at least 1; got {self.z_top_k}")
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError(f"algo.loss_type={self.loss_type}: algo=jackpot reweights the clipped objective of {', '.join(LOSS_TYPES)}")
        owned = sorted(k for k in self.trl if k.startswith("vllm_importance_sampling") or k == "off_policy_mask_threshold")
        if owned:
            raise ConfigError(f"algo.trl.{owned[0]} is set by algo=jackpot; choose the correction with algo.correction=jackpot|tis|none")
        if self.trl.get("importance_sampling_level", "token") != "token":
            raise ConfigError("algo=jackpot needs TRL's token-level PPO ratio; for sequence-level rejection use algo.level=sequence")
        if self.level == "sequence" and self.target == "new":
            raise ConfigError("algo.target=new is token-level only; use algo.level=token or algo.target=ref")
        if self.actor_lag < 0:
            raise ConfigError(f"algo.actor_lag must be 0 or more; got {self.actor_lag}")
        if self.actor_lag and self.actor != "self":
            raise ConfigError("algo.actor_lag makes a stale copy of the policy: it needs algo.actor=self")
        actor = self.actor_model_config()
        if actor is not None:
            try:
                check_available(actor)  # a hub actor, offline and not cached: fail now, not after the policy loads
            except ConfigError as exc:
                raise ConfigError(f"algo.actor: {exc}") from None
        if self._use_vllm():
            if self.z_estimate == "exact":
                raise ConfigError("algo.z_estimate=exact needs the actor's full distribution, which vLLM does not return; use z_estimate=topk")
            if actor is not None and actor.pretrained is None:
                raise ConfigError("with algo.trl.use_vllm the actor is the model vLLM serves: set algo.actor=self or a hub id / path")
            if actor is not None and self.trl.get("vllm_mode", "colocate") != "server":
                raise ConfigError("a separate actor with vLLM needs algo.trl.vllm_mode=server, with the server running the actor")
        else:
            # the actor's log-probs are recorded as softmax(logits / temperature): sampling must not truncate
            plain_sampling = {"top_p": (1.0,), "top_k": (0, None), "min_p": (None, 0.0), "repetition_penalty": (1.0,)}
            for name, plain in plain_sampling.items():
                if self.trl.get(name, plain[0]) not in plain:
                    raise ConfigError(f"algo.trl.{name}={self.trl[name]}: algo=jackpot records the actor's log-probs at the sampling "
                                      f"temperature only; leave {name} at {plain[0]}")  # fmt: skip

    def build_trainer(self, model, tokenizer, env, args):
        actor_cfg = self.actor_model_config()
        actor = None
        if actor_cfg is not None:
            from rlexp import models

            if self._use_vllm():  # vLLM holds the actor; only its tokenizer is compared
                from transformers import AutoTokenizer

                actor_tokenizer = AutoTokenizer.from_pretrained(actor_cfg.pretrained)
            else:
                actor, actor_tokenizer = models.load(actor_cfg)
            check_same_vocabulary(tokenizer, actor_tokenizer, actor_cfg.name)
        options = JackpotOptions(**{f.name: getattr(self, f.name) for f in fields(JackpotOptions)})
        return self.env_trainer(JackpotGRPOTrainer, model, tokenizer, env, args, actor=actor, actor_lag=self.actor_lag,
                                vllm_serves_actor=actor_cfg is not None and self._use_vllm(), options=options)


def check_same_vocabulary(policy_tokenizer, actor_tokenizer, actor_name: str) -> None:
    """Jackpot compares the two models' probabilities token id by token id: the tokenizers must agree."""
    if policy_tokenizer.get_vocab() != actor_tokenizer.get_vocab():
        raise ConfigError(
            f"algo.actor={actor_name} has a different vocabulary ({len(actor_tokenizer)} tokens) from the policy's "
            f"({len(policy_tokenizer)} tokens); Jackpot compares their probabilities token by token, so pick an actor "
            "with the policy's tokenizer"
        )


register("jackpot")(Jackpot)
