"""Jackpot's OBRS math and trainer; the algorithm, its math and its hyperparameters are rlexp/algos/jackpot.py."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from rlexp.algos.jackpot import JackpotOptions
from rlexp.trainers.actor_rollouts import ActorRolloutGRPOTrainer
from rlexp.trainers.grpo import GRPOTrainerWithLossHook

# ---------------------------------------------------------------- the math, as pure functions (tested one by one)


def log_acceptance(logp_target: torch.Tensor, logp_actor: torch.Tensor, lam: float) -> torch.Tensor:
    """log a = min(0, log p - log q - log lambda), in log space so that p/q never overflows."""
    return torch.clamp(logp_target - logp_actor - math.log(lam), max=0.0)


def z_sum(logp_actor: torch.Tensor, logp_target: torch.Tensor, lam: float) -> torch.Tensor:
    """sum_x min(q(x), p(x)/lambda) over the last dim: candidate ids (the top-k estimate) or the whole vocabulary
    (exact Z). Entries at -inf (padding, duplicate ids) add nothing."""
    return torch.exp(torch.minimum(logp_actor, logp_target - math.log(lam))).sum(-1)


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
    totals = allsum(
        torch.stack([validf.sum(), accepted.float().sum(), (accept_prob * validf).sum(), (z_approx.float() * validf).sum()])
    )
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
    return OBRSResult(
        accept_prob.expand_as(mask).float(), (accepted & valid).int(), log_weight, rho, z, 1.0, accept_rate, expected
    )


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


# ---------------------------------------------------------------- the trainer


class JackpotGRPOTrainer(ActorRolloutGRPOTrainer, GRPOTrainerWithLossHook):
    """`GRPOTrainer` on rollouts from an actor (`actor`, `actor_lag`, `vllm_serves_actor`: see
    `ActorRolloutGRPOTrainer`), corrected by OBRS (see the module docstring)."""

    def __init__(self, *args, options: JackpotOptions | None = None, **kwargs):
        options = options or JackpotOptions()
        # with z_estimate=exact the scoring pass needs the actor's whole distribution: it reruns the actor instead
        super().__init__(*args, actor_top_k=options.z_top_k, record_while_generating=options.z_estimate == "topk", **kwargs)
        self.jackpot = options
        self._draws = 0
        self._kappa = 1.0
        # kappa removes the top-k estimate's bias; an exact Z has none, and kappa would only add noise
        self.rescale_z = self.jackpot.bias_correction and self.jackpot.z_estimate == "topk"
        self.jackpot_seconds = 0.0  # time of the last generation batch's Jackpot work (scoring pass and weights)

    # ------------------------------------------------------------ weights, mask, metrics

    def _allsum(self, x: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(x, reduction="sum") if self.accelerator.num_processes > 1 else x

    def rollout_state(self) -> dict:
        return {**super().rollout_state(), "draws": self._draws}  # the acceptance draws go on from there

    def load_rollout_state(self, state: dict) -> None:
        super().load_rollout_state(state)
        self._draws = state["draws"]

    def _uniform(self, shape, device) -> torch.Tensor:
        # seeded per generation batch and per rank, so reruns draw the same masks; drawn position-major, so the
        # draw of (row, position) is number position * rows + row whatever the padded length
        self._draws += 1
        gen = torch.Generator().manual_seed(
            self.jackpot.rejection_seed * 1_000_003 + self._draws * 7_919 + self.accelerator.process_index
        )
        rows, length = shape
        return torch.rand(length, rows, generator=gen).T.contiguous().to(device)

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        return self._apply_jackpot(output) if self.model.training else output

    def _apply_jackpot(self, output: dict) -> dict:
        """Score the rollouts, draw the acceptance mask, and add the weights to TRL's generation batch."""
        started = time.perf_counter()
        opts = self.jackpot
        exact_z = (lambda logq, logp: z_sum(logq, logp, opts.obrs_lambda)) if opts.z_estimate == "exact" else None
        scores = self._score_rollouts(output, full_vocabulary_stat=exact_z)
        candidates = (scores.candidate_actor, scores.candidate_policy)
        z_approx = scores.full_vocabulary if exact_z else z_sum(*candidates, opts.obrs_lambda)
        tv_upper = 1.0 - z_sum(*candidates, 1.0)  # Z~ <= Z = 1 - TV at lambda = 1
        tool_mask = output.get("tool_mask")
        loss_mask = output["completion_mask"] if tool_mask is None else output["completion_mask"] * tool_mask
        # tokens vLLM could not score (NaN) are left uncorrected, as TRL does
        scored = loss_mask.bool() & torch.isfinite(scores.actor)
        logp_target, logp_actor = scores.policy, scores.actor.nan_to_num(nan=0.0)
        uniform = self._uniform(loss_mask.shape, loss_mask.device)
        common = dict(lam=opts.obrs_lambda, max_weight=opts.max_weight, estimator=opts.acceptance_estimator, allsum=self._allsum)
        if opts.level == "sequence":
            result = obrs_sequence_weights(logp_target, logp_actor, scored, uniform, **common)
        else:
            result = obrs_token_weights(
                logp_target, logp_actor, z_approx, scored, uniform, bias_correction=self.rescale_z, **common
            )
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
        output.update(
            jackpot_rho=rho,
            jackpot_logp_actor=logp_actor,
            jackpot_logp_ref=logp_target,
            jackpot_z_approx=z_approx,
            jackpot_scored=scored.int(),
        )
        if opts.correction == "jackpot":  # the completion tables' own column (rlexp/tracking.py); None: no token scored
            tokens = scored.sum(-1)
            accepted = (result.accepted.bool() & scored).sum(-1)
            self.rollout_columns = {"accepted_share": [a / t if t else None for a, t in zip(accepted.tolist(), tokens.tolist())]}
        self._log_generation_metrics(result, z_approx, tv_upper, scored, logp_target, logp_actor)
        self.jackpot_seconds = time.perf_counter() - started
        self._metrics["train"]["jackpot/seconds"].append(self.jackpot_seconds)
        return output

    def _log_generation_metrics(self, result: OBRSResult, z_approx, tv_upper, scored, logp_target, logp_actor) -> None:
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
            (z_approx.float() * validf).sum(),
            (tv_upper.float() * validf).sum(),
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

    def rewrite_loss_inputs(self, logps, inputs):
        if "jackpot_rho" not in inputs:  # evaluation batches are not reweighted
            return logps
        rho = inputs["jackpot_rho"]
        if self.jackpot.target == "new" and self.jackpot.correction == "jackpot":
            rho = self._rho_for_current_policy(logps.detach(), inputs) * (rho > 0)
        advantages = inputs["advantages"]
        advantages = advantages[:, None] if advantages.dim() == 1 else advantages
        # rho >= 0, so rho * min(r A, clip(r) A) = min(r (rho A), clip(r) (rho A)): TRL's loss, reweighted
        inputs["advantages"] = advantages * rho.to(advantages.dtype)
        return logps

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
        log_w = torch.log((kappa * inputs["jackpot_z_approx"]).clamp(min=1e-30)) + torch.clamp(
            logp_new - logp_actor, min=math.log(opts.obrs_lambda)
        )
        anchor = torch.exp(torch.clamp(logp_ref - logp_new, max=math.log(opts.max_ref_ratio)))
        self._metrics["train"]["jackpot/frac_ref_ratio_clipped"].append(
            ((logp_ref - logp_new > math.log(opts.max_ref_ratio)) & scored).float().sum().item() / max(1, scored.sum().item())
        )
        rho = torch.exp(torch.clamp(log_w, max=math.log(opts.max_weight))) * anchor
        return torch.where(scored, rho, torch.ones_like(rho))
