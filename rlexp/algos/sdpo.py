"""SDPO: self-distillation from rich environment feedback, on TRL's `SDPOTrainer`.

"Reinforcement Learning via Self-Distillation" (Huebotter et al., arXiv 2601.20802). For each completion y_i of a
prompt x the environment returns a success flag and a feedback text f_i (a failing test, a wrong move, a format
error). The self-teacher is the same network, re-prompted with what that completion taught:

    q(. | x, c_i, y_<t) = pi_teacher(. | reprompt(x, c_i), y_<t)
    c_i = a successful sibling y_j (j != i, chosen by Score.success, never by a reward threshold) and/or f_i,

and the student is pulled toward it, token by token, on its own rollout (the teacher under stop-gradient):

    L_SDPO = sum over tokens t of completions with a context c_i of  D( pi(. | x, y_<t) || q(. | x, c_i, y_<t) )

averaged per completion, then over the batch (`distillation_reduction: row_mean`, TRL's), a completion without a
context counting as zero. That is what the authors' runs compute (lasgroup/SDPO, compute_self_distillation_loss
in verl/trainer/ppo/core_algos.py): their loss is a token mean within each micro-batch, but each micro-batch is one
completion (`ppo_micro_batch_size_per_gpu: 1`), scaled by 1 / gradient-accumulation steps. `token_mean` (the sum
over distilled tokens divided by their number) is kept as an option. The student's own attempt never enters the
teacher prompt. D is reverse KL (`distillation_alpha` 1; the paper's eq. 1), forward KL (0) or the alpha-mixture
(0.5 is JSD), over
    topk_logits    the student's top-K tokens plus one tail bucket (eq. 11; the paper's K = 20 with feedback),
    full_logits    the whole vocabulary,
    sampled_token  the sampled token only: sg(log pi - log q) log pi, whose gradient is reverse KL's.
The gradient is a policy gradient with a per-token advantage A_t(v) = log q(v) - log pi(v) (Prop. 2.1, eq. 6);
`advantage_clip` bounds it to [-c, c] (the paper's test-time runs, section 5, use 5). A completion with no context
(no sibling succeeded and the environment said nothing) gets no distillation loss.

Mixed with GRPO (`distillation_weight` w = 1 - lambda; the paper's hybrid, eq. 3 and section 4.5, is lambda = 0.9,
w = 0.1):
    L = (1 - w) L_GRPO(A = r - mean r) + w L_SDPO,
both terms normalised alike, so the gradient is one policy gradient with A = lambda A_GRPO + (1 - lambda) A_SDPO:
`row_mean` goes with `loss_type: grpo` (per-completion means in both terms); with `token_mean` the distillation term
takes the policy term's normaliser, whatever `loss_type`. w = 0 is TRL's GRPO-style loss.

Teacher (`teacher_model_kind`): `ema` of the student (rate `teacher_update_rate` 0.01, updated once per generation
batch), `base` (the frozen starting model), `live` (the student itself; it diverges in the paper) or `trust_region`
(logits (1 - a) base + a live, a = `teacher_update_rate`; appendix A.2). The paper's rich-feedback runs (section 4)
take one optimiser step per question (8 completions) and 32 per generation batch: `per_device_train_batch_size: 8`,
`trl.steps_per_generation: 32`. TRL then keeps the rollout-time log-probs, so the importance clip acts from the
second step of each batch on, and the EMA teacher still moves once per batch, after its last step.

Multi-turn (`env.max_attempts` > 1, rlexp/episodes.py): each rollout y_i is a whole episode, its attempts with the
environment's feedback as the user turn between them, and c_i is built from the episode's last feedback (on its
last failed attempt) and, as the solution, the solving attempt of a sibling episode. The student and the teacher read
the whole transcript; the loss covers the model's own tokens of every attempt and no feedback token.

Teacher prompts use the templates as the authors' YAML loads them (block scalars drop the trailing newlines), and
thinking removal deletes each `<think>...</think>` block and the whitespace after it, nothing else.

The override is small (rlexp/trainers/sdpo.py): `_calculate_rewards` keeps each completion's feedback and success from the reward function,
the teacher-context builder uses them in place of TRL's one-per-prompt column (and removes thinking as the authors'
code does), and the distillation loss adds the token-mean reduction, the advantage clip and the shared normalisation
of the mixture.

With vLLM (generation=vllm_*) the rollouts come from an engine whose probabilities differ slightly from the
trainer's; as the authors' runs do (verl's rollout correction, `rollout_is: token`, threshold 2, multiplied into both
the distillation and the policy loss: compute_self_distillation_loss and compute_policy_loss), every token's loss is
multiplied by w_t = min(pi_old(y_t) / pi_vllm(y_t), 2), pi_old being the trainer's policy at rollout time
(generation.importance_sampling_mode and _clip_max choose another of TRL's four forms).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Optional

from rlexp.algos import register
from rlexp.algos.grpo import GRPO
from rlexp.errors import ConfigError

MODES = ("topk_logits", "full_logits", "sampled_token")
TEACHERS = ("ema", "base", "live", "trust_region")
REDUCTIONS = ("row_mean", "token_mean")
# the templates as the authors' YAML loads them (verl/trainer/config/actor/actor.yaml: `|-` block scalars, which drop
# the trailing newlines that their Python defaults and TRL's have)
REPROMPT_TEMPLATE = "{prompt}{solution}{feedback}\n\nCorrectly solve the original question."
SOLUTION_TEMPLATE = "\nCorrect solution:\n\n{successful_previous_attempt}"
FEEDBACK_TEMPLATE = "\nThe following is feedback from your unsuccessful earlier attempt:\n\n{feedback_raw}"
THINKING = re.compile(r"<think>.*?</think>\s*", flags=re.DOTALL)
TRUNCATION_NOTICE = (
    "Your answer was cut off: it reached the limit of {n} tokens before it ended. "
    "Give a shorter answer that ends within the limit."
)


def join_nonempty(*parts: Optional[str]) -> str:
    """The non-blank parts, joined by a blank line. A single part is kept as it is, as the authors' code passes the
    environment's feedback to the template unchanged."""
    kept = [p for p in parts if isinstance(p, str) and p.strip()]
    if len(kept) == 1:
        return kept[0]
    return "\n\n".join(p.strip() for p in kept)


def remove_thinking(text: str) -> str:
    """`text` without its `<think>...</think>` blocks and the whitespace after each; the rest is left as it is."""
    return THINKING.sub("", text)


@dataclass
class SDPO(GRPO):
    learning_rate: float = 1e-6
    # prompts longer than this are cut from the left; null keeps them whole
    max_prompt_length: Optional[int] = None
    # > The distillation loss
    # topk_logits (the paper's) | full_logits | sampled_token (TRL's default)
    distillation_mode: str = "topk_logits"
    # K: the student's top tokens the topk_logits loss distils
    distillation_topk: Optional[int] = 20
    # one bucket for the probability mass outside the top K
    distillation_add_tail: bool = True
    # 1 reverse KL (the paper's with feedback), 0 forward KL, 0.5 JSD
    distillation_alpha: float = 1.0
    # per-token importance weight pi / pi_old is clipped at this (off-policy steps only)
    distillation_is_clip: Optional[float] = 2.0
    # row_mean (the authors' runs, TRL's) | token_mean
    distillation_reduction: str = "row_mean"
    # bound on the per-token advantage log q - log pi (reverse KL only); None: no bound
    advantage_clip: Optional[float] = None
    # w in (1 - w) GRPO + w SDPO; the paper's SDPO + GRPO hybrid is 0.1 (lambda = 0.9); 0 is GRPO
    distillation_weight: float = 1.0
    # advantages of the GRPO term: r - mean(r), no std (the paper's)
    scale_rewards: str = "none"
    # > The teacher
    # ema | base | live | trust_region
    teacher_model_kind: str = "ema"
    # EMA rate of the ema teacher, once per generation batch; the weight of the live model in trust_region
    teacher_update_rate: float = 0.01
    # keep the teacher (ema, base, trust_region's base: a whole copy of the model) in CPU memory between its passes:
    # it moves to the GPU for its forward on each micro-batch, before the student's, and back after it, and the EMA
    # update runs in CPU memory. Frees the copy's bytes on the GPU for the student's activations, for about two
    # transfers of the copy per micro-batch (scripts/bench_gpu.py measures both). Not under launcher=zero3, which
    # shards the teacher over the GPUs already
    teacher_offload: bool = False
    # > The teacher's prompt
    # show each failed completion's own environment feedback to its teacher
    include_environment_feedback: bool = True
    # feedback only when no sibling succeeded (the sibling's solution is the stronger signal)
    environment_feedback_only_without_solution: bool = True
    # show a successful sibling from the same group as the solution
    use_successful_as_teacher: bool = True
    # a successful completion learns from a different successful sibling, never from itself
    dont_reprompt_on_self_success: bool = True
    # drop <think>...</think> (and the whitespace after it) from a sibling's solution
    remove_thinking_from_demonstration: bool = True
    # tell a completion that hit max_completion_length that it was cut off
    truncation_feedback: bool = True
    # teacher prompts longer than this keep their last tokens
    max_reprompt_len: int = 10240
    # the teacher's prompt: {prompt}, {solution}, {feedback}
    reprompt_template: str = REPROMPT_TEMPLATE
    # fills {solution}: {successful_previous_attempt}
    solution_template: str = SOLUTION_TEMPLATE
    # fills {feedback}: {feedback_raw}
    feedback_template: str = FEEDBACK_TEMPLATE

    trl_config = "rlexp.trainers.sdpo.FeedbackSDPOConfig"
    # with vLLM, the rollout correction of the authors' runs (verl's rollout_is=token, rollout_is_threshold 2.0)
    importance_sampling_mode: ClassVar[str] = "token_truncate"
    importance_sampling_clip_max: ClassVar[float] = 2.0

    def check(self, world_size: int) -> None:
        super().check(world_size)
        for knob, value, valid in (
            ("distillation_mode", self.distillation_mode, MODES),
            ("teacher_model_kind", self.teacher_model_kind, TEACHERS),
            ("distillation_reduction", self.distillation_reduction, REDUCTIONS),
        ):
            if value not in valid:
                raise ConfigError(f"algo.{knob}={value} is not one of {', '.join(valid)}")
        if self.distillation_mode == "topk_logits" and not (self.distillation_topk or 0) >= 1:
            raise ConfigError("algo.distillation_mode=topk_logits needs algo.distillation_topk >= 1")
        if self.distillation_mode == "sampled_token" and self.distillation_alpha != 1.0:
            raise ConfigError("algo.distillation_mode=sampled_token is reverse KL only: set algo.distillation_alpha=1")
        if not 0.0 <= self.distillation_alpha <= 1.0:
            raise ConfigError(f"algo.distillation_alpha={self.distillation_alpha} must be in [0, 1]")
        if self.advantage_clip is not None and (self.advantage_clip <= 0 or self.distillation_alpha != 1.0):
            raise ConfigError("algo.advantage_clip needs a positive bound and reverse KL (algo.distillation_alpha=1)")
        if not 0.0 <= self.distillation_weight <= 1.0:
            raise ConfigError(f"algo.distillation_weight={self.distillation_weight} must be in [0, 1] (0 is GRPO, 1 pure SDPO)")
        hybrid = 0.0 < self.distillation_weight < 1.0
        if hybrid and self.distillation_reduction == "row_mean" and self.loss_type != "grpo":
            raise ConfigError(
                f"algo.distillation_weight={self.distillation_weight} mixes GRPO and SDPO as one policy "
                f"gradient only if both terms are normalised alike: with algo.distillation_reduction="
                f"row_mean set algo.loss_type=grpo (not {self.loss_type}), or use "
                f"algo.distillation_reduction=token_mean"
            )
        micro_steps = self.steps_per_generation(world_size) * self.num_iterations
        if self.teacher_model_kind == "ema" and micro_steps % self.gradient_accumulation_steps:
            raise ConfigError(
                f"the EMA teacher moves once per generation batch, after its last optimiser step: the "
                f"batch's {micro_steps} micro-steps (steps_per_generation x num_iterations) must be a "
                f"multiple of algo.gradient_accumulation_steps={self.gradient_accumulation_steps}"
            )
        if not 0.0 <= self.teacher_update_rate <= 1.0:
            raise ConfigError(f"algo.teacher_update_rate={self.teacher_update_rate} must be in [0, 1]")
        if "success_reward_threshold" in self.trl:
            raise ConfigError(
                "algo.trl.success_reward_threshold is not used: a sibling is a solution when the "
                "environment's Score.success says so, never by a reward threshold"
            )
        for knob, keys in (
            ("reprompt_template", {"prompt": "", "solution": "", "feedback": ""}),
            ("solution_template", {"successful_previous_attempt": ""}),
            ("feedback_template", {"feedback_raw": ""}),
        ):
            try:
                getattr(self, knob).format(**keys)
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(f"algo.{knob} may only use the fields {{{'}, {'.join(keys)}}}: {exc!r}") from None
        if self.teacher_offload and self.teacher_model_kind == "live":
            raise ConfigError(
                "algo.teacher_offload keeps a copy of the model off the GPU; the live teacher is the student itself"
            )

    def check_launcher(self, launcher: str) -> None:
        if self.teacher_offload and launcher == "zero3":
            raise ConfigError(
                "algo.teacher_offload with launcher=zero3: ZeRO-3 shards the teacher over the GPUs already; drop "
                "algo.teacher_offload, or use launcher=zero2 or ddp"
            )

    def check_generation(self, generation) -> None:
        if generation.name == "continuous_batching":
            raise ConfigError(
                "algo=sdpo generates with TRL's SDPOTrainer, which has no continuous batching; use generation=hf or a vLLM mode"
            )

    def steps_per_generation(self, world_size: int) -> int:
        """Training micro-steps per generation batch, as SDPOConfig will resolve them."""
        if self.trl.get("steps_per_generation") is not None:
            return self.trl["steps_per_generation"]
        if self.trl.get("generation_batch_size") is not None:
            return self.trl["generation_batch_size"] // (self.per_device_train_batch_size * world_size)
        return self.gradient_accumulation_steps

    def build_trainer(self, model, tokenizer, env, args):
        # the EMA teacher follows the student once per generation batch, after its last optimiser step, as the
        # authors' code does (TRL: every optimiser step); teacher_sync_steps counts optimiser steps
        micro_steps = args.steps_per_generation * args.num_iterations
        args.teacher_sync_steps = max(1, micro_steps // args.gradient_accumulation_steps)
        if env.max_attempts > 1:
            from rlexp.trainers.sdpo import EpisodeSDPOTrainer

            return self.env_trainer(EpisodeSDPOTrainer, model, tokenizer, env, args, episode_env=env)
        from rlexp.trainers.sdpo import FeedbackSDPOTrainer

        return self.env_trainer(FeedbackSDPOTrainer, model, tokenizer, env, args)


register("sdpo")(SDPO)
