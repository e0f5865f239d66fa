"""Jackpot: GRPO on rollouts from a different actor, corrected by optimal budgeted rejection sampling (OBRS).

"Jackpot: Optimal Budgeted Rejection Sampling for Extreme Actor-Policy Mismatch Reinforcement Learning"
(arXiv 2602.06107). A cheap actor (a smaller model, a stale copy of the policy, or the vLLM engine's numerics)
writes the rollouts; the policy trains on them. Notation, per completion token t at decoding state s_t:
q = p_actor(.|s_t) the distribution the token y_t was sampled from (at the sampling temperature),
p = p_target(.|s_t) the distribution OBRS aligns q to (the old policy p_ref by default).

Acceptance (section 3, Def. 3.2). y_t is kept with probability

    a_t = min(1, p(y_t) / (lambda * q(y_t))),        M_t ~ Bernoulli(a_t)

The kept tokens follow q~(x) = min(q(x), p(x)/lambda) / Z with Z = sum_x min(q(x), p(x)/lambda) = E_q[a], the
expected acceptance rate. Of all rules that accept a share Z, this one brings q~ closest to p in KL(p || q~)
(Thm 3.4); a larger lambda rejects more and aligns better; lambda -> 0 accepts everything; lambda = 1 is the
speculative decoding rule (Z = 1 - TV(p, q)).

OBRS weight (Algorithm 1, line 23). The weight that turns kept tokens back into samples of p is

    w_t = p(y_t) / q~(y_t) = Z_t * max(lambda, p(y_t) / q(y_t)),     rho_t = min(w_t, c1)          (target "ref")
    rho_t = min(w_t, c1) * min(p_ref(y_t) / p_new(y_t), c2),  w from p = p_new.detach()            (target "new")

c1 (`max_weight`) truncates w as TIS truncates its ratio; c2 (`max_ref_ratio`) bounds the stale-anchor factor
when the target is the current policy (Algorithm 1 of the paper).

Z from the top-k (section 4.4). Z_t is a sum over the vocabulary. It is estimated on the actor's top-k ids
(k = 20) plus the sampled id, Z~_t = sum_{x in ids} min(q(x), p(x)/lambda) <= Z_t (ids in the policy's top-k but
not the actor's have no q(x), so count 0), and the bias is removed with the batch's realised acceptance:

    kappa = accepted tokens / proposed tokens  /  mean_t Z~_t,         Z_t = kappa * Z~_t

(`acceptance_estimator: expected` uses mean a_t instead of the Bernoulli count). `z_estimate: exact` sums over the
whole vocabulary instead (HF generation, where both models' logits are at hand).

With GRPO (eq. 5). Per token the loss is TRL's clipped objective, masked and reweighted:

    l_t = -M_t * SG(rho_t) * min(r_t A, clip(r_t, 1 - eps, 1 + eps) A),      r_t = p_new(y_t) / p_ref(y_t)

Because rho_t >= 0 it can ride in the advantage (A * rho_t inside the min is rho_t times the min), so the override
is small (rlexp/trainers/jackpot.py): the actor writes the rollouts and one no-grad pass of the policy scores them (rlexp/trainers/actor_rollouts.py);
`_apply_jackpot` samples M, computes rho and folds M into TRL's loss mask (`tool_mask`; rejected tokens stay in the
attention context); `rewrite_loss_inputs` hands TRL's loss A * rho (rho recomputed from p_new for target "new").
`level: sequence` accepts and weighs whole completions with the sequence ratio (Z is then the batch acceptance rate;
no top-k). `correction: tis` is TRL's token-level truncated importance sampling min(p_ref / q, c1) (TRL's own code
when vLLM generates); `none` is rho = 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from rlexp.algos import register
from rlexp.algos.actor import actor_model_config, check_actor, check_actor_engine
from rlexp.algos.grpo import GRPO
from rlexp.errors import ConfigError
from rlexp.schema import VLLM_MODES, ModelConfig

LOSS_TYPES = ("grpo", "dapo", "bnpo", "dr_grpo")


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
    # keep the actor (a separate model, or the actor_lag copy: a whole copy of the policy) in CPU memory between its
    # passes: it moves to the GPU to generate the rollouts (and to score them with z_estimate=exact) and back after.
    # Frees its bytes on the GPU for the policy's training step, for two transfers of the actor per generation batch
    # (scripts/bench_gpu.py measures both). HF generation only: with vLLM the engine holds the actor
    actor_offload: bool = False

    # the actor generates single attempts; its multi-turn rollouts are not wired up
    trains_on_episodes: ClassVar[bool] = False

    def actor_model_config(self) -> ModelConfig | None:
        return actor_model_config(self.actor)

    def generation_fields(self, generation) -> dict:
        fields = super().generation_fields(generation)
        if fields["use_vllm"]:  # every correction is Jackpot's, except TIS, which is TRL's own token_truncate
            fields.update(
                vllm_importance_sampling_correction=self.correction == "tis",
                vllm_importance_sampling_mode="token_truncate",
                vllm_importance_sampling_clip_max=self.max_weight,
                vllm_importance_sampling_clip_min=None,
            )
        return fields

    def served_model(self, start: str | None) -> str | None:
        """A separate actor is the model the vLLM server runs (the policy's weights never reach it)."""
        actor = self.actor_model_config()
        return start if actor is None else actor.pretrained

    def check_generation(self, generation) -> None:
        vllm = generation.name in VLLM_MODES
        changed = [k for k in ("importance_sampling_mode", "importance_sampling_clip_max") if getattr(generation, k) is not None]
        if not generation.importance_sampling_correction:
            changed.insert(0, "importance_sampling_correction")
        if vllm and changed:
            raise ConfigError(
                f"generation.{changed[0]} is not used by algo=jackpot, which corrects vLLM's rollouts its own way: "
                "choose with algo.correction=jackpot|tis|none and algo.max_weight"
            )
        if vllm and self.z_estimate == "exact":
            raise ConfigError(
                "algo.z_estimate=exact needs the actor's full distribution, which vLLM does not return; use z_estimate=topk"
            )
        if generation.name == "continuous_batching":
            raise ConfigError(
                "algo=jackpot records the actor's log-probs as it generates, which continuous batching does not return; "
                "use generation=hf or a vLLM mode"
            )
        check_actor_engine(self.actor_model_config(), generation.name)
        if vllm and self.actor_offload:
            raise ConfigError(
                f"algo.actor_offload is for HF generation: with generation={generation.name} the engine holds the actor"
            )

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
            raise ConfigError(
                f"algo.loss_type={self.loss_type}: algo=jackpot reweights the clipped objective of {', '.join(LOSS_TYPES)}"
            )
        owned = sorted(k for k in self.trl if k == "vllm_importance_sampling_clip_min" or k == "off_policy_mask_threshold")
        if owned:
            raise ConfigError(
                f"algo.trl.{owned[0]} is set by algo=jackpot; choose the correction with algo.correction=jackpot|tis|none"
            )
        if self.trl.get("importance_sampling_level", "token") != "token":
            raise ConfigError(
                "algo=jackpot needs TRL's token-level PPO ratio; for sequence-level rejection use algo.level=sequence"
            )
        if self.level == "sequence" and self.target == "new":
            raise ConfigError("algo.target=new is token-level only; use algo.level=token or algo.target=ref")
        check_actor(self.actor_model_config(), self.actor_lag, self.trl, "jackpot")
        if self.actor_offload and self.actor == "self" and not self.actor_lag:
            raise ConfigError(
                "algo.actor_offload: with algo.actor=self and no algo.actor_lag the actor is the policy itself, no copy to offload"
            )

    def build_trainer(self, model, tokenizer, env, args):
        from rlexp.trainers.actor_rollouts import load_actor
        from rlexp.trainers.jackpot import JackpotGRPOTrainer

        actor_cfg = self.actor_model_config()
        options = JackpotOptions(**{f.name: getattr(self, f.name) for f in fields(JackpotOptions)})
        return self.env_trainer(
            JackpotGRPOTrainer,
            model,
            tokenizer,
            env,
            args,
            actor=load_actor(actor_cfg, tokenizer, args.use_vllm),
            actor_lag=self.actor_lag,
            actor_offload=self.actor_offload,
            vllm_serves_actor=actor_cfg is not None and args.use_vllm,
            options=options,
        )


register("jackpot")(Jackpot)
