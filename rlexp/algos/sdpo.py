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

Teacher prompts use the templates as the authors' YAML loads them (block scalars drop the trailing newlines), and
thinking removal deletes each `<think>...</think>` block and the whitespace after it, nothing else.

The override is small: `_calculate_rewards` keeps each completion's feedback and success from the reward function,
the teacher-context builder uses them in place of TRL's one-per-prompt column (and removes thinking as the authors'
code does), and the distillation loss adds the token-mean reduction, the advantage clip and the shared normalisation
of the mixture.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Optional

import torch
from accelerate.utils import is_peft_model
from trl.experimental.sdpo import SDPOConfig, SDPOTrainer
from trl.experimental.sdpo.loss_utils import add_tail_bucket, apply_importance_sampling_clipping, compute_divergence
from trl.experimental.sdpo.sdpo_trainer import SuccessfulRolloutTeacherContextBuilder
from trl.experimental.sdpo.teacher_sync import SyncTeacherModelCallback
from trl.models import prepare_deepspeed
from trl.trainer.utils import selective_log_softmax

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


@dataclass
class FeedbackSDPOConfig(SDPOConfig):
    """TRL's `SDPOConfig` plus what the paper does and TRL does not."""

    # row_mean: the mean of per-completion token means (TRL's, and what the authors' runs compute);
    # token_mean: the sum over distilled tokens divided by their number
    distillation_reduction: str = "row_mean"
    # bound on the per-token advantage log q - log pi (reverse KL only); None: no bound
    advantage_clip: Optional[float] = None
    # tell a completion that hit max_completion_length that it was cut off
    truncation_feedback: bool = True
    # also append the dataset's `privileged_context` column to each completion's feedback
    merge_privileged_context: bool = False
    reprompt_template: str = REPROMPT_TEMPLATE
    solution_template: str = SOLUTION_TEMPLATE
    feedback_template: str = FEEDBACK_TEMPLATE


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


class ThinkingFreeSolution:
    """Stands in for the solution template while TRL's builder runs: TRL's own thinking removal also strips the whole
    demonstration, so it is switched off and the demonstration is cleaned here before it is formatted."""

    def __init__(self, template: str):
        self.template = template

    def format(self, successful_previous_attempt: str) -> str:
        return self.template.format(successful_previous_attempt=remove_thinking(successful_previous_attempt))


class FeedbackContextBuilder(SuccessfulRolloutTeacherContextBuilder):
    """TRL's teacher prompts, built from each completion's own feedback and success instead of TRL's per-prompt
    `privileged_context` column. TRL's builder marks sibling j as a solution when its "reward" is at least
    `success_reward_threshold` (1.0 here); it is handed the 0/1 success flags as that reward, so partial credit
    never counts as a solution."""

    def build(self, output, prompts, rewards, feedbacks=None):
        trainer = self.trainer
        try:
            feedback, success = trainer._rollout_feedback, trainer._rollout_success
            if feedback is not None:
                if len(feedback) != len(prompts):
                    raise ValueError(f"{len(feedback)} feedback texts for {len(prompts)} completions")
                if feedbacks is not None and trainer.args.merge_privileged_context:
                    feedback = [join_nonempty(p, f) or None for p, f in zip(feedbacks, feedback)]
                feedbacks = feedback
            if success is not None:
                rewards = success.to(rewards.device)
            context = self._build_without_trls_thinking_removal(output, prompts, rewards, feedbacks)
        finally:
            trainer._rollout_feedback = trainer._rollout_success = None
        m = self.last_metrics
        with_context = m["self_distillation/reprompt_sample_fraction"]
        with_solution = m["self_distillation/success_sample_fraction"]
        m["sdpo/context_fraction"] = with_context
        m["sdpo/context_with_solution"] = with_solution / with_context if with_context else 0.0
        m["sdpo/context_feedback_only"] = (with_context - with_solution) / with_context if with_context else 0.0
        return context

    def _build_without_trls_thinking_removal(self, output, prompts, rewards, feedbacks):
        args = self.trainer.args
        if not args.remove_thinking_from_demonstration:
            return super().build(output, prompts, rewards, feedbacks)
        template = args.solution_template
        args.remove_thinking_from_demonstration, args.solution_template = False, ThinkingFreeSolution(template)
        try:
            return super().build(output, prompts, rewards, feedbacks)
        finally:
            args.remove_thinking_from_demonstration, args.solution_template = True, template


class FeedbackSDPOTrainer(SDPOTrainer):
    """`SDPOTrainer` whose teacher reads each rollout's own environment feedback and successful siblings."""

    def __init__(self, *args, **kwargs):
        self._rollout_feedback: Optional[list] = None
        self._rollout_success: Optional[torch.Tensor] = None
        super().__init__(*args, **kwargs)
        self.args.success_reward_threshold = 1.0  # the builder sees 0/1 success flags
        self.teacher_context_builder = FeedbackContextBuilder(self)

    # -- feedback ----------------------------------------------------------------------------------------------

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        for func in self.reward_funcs:
            if hasattr(func, "last_feedback"):
                func.last_feedback = func.last_success = None
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        n = len(prompts)
        texts: list[list[str]] = [[] for _ in range(n)]
        success: Optional[list[bool]] = None
        for func in self.reward_funcs:
            feedback, solved = getattr(func, "last_feedback", None), getattr(func, "last_success", None)
            for name, values in (("last_feedback", feedback), ("last_success", solved)):
                if values is not None and len(values) != n:
                    raise ValueError(f"reward function {func!r} set {name} for {len(values)} of {n} completions")
            if feedback is not None:
                for i, text in enumerate(feedback):
                    texts[i].append(text)
            if solved is not None:
                success = list(solved) if success is None else [a and b for a, b in zip(success, solved)]
        if success is None:  # a reward function without success flags: TRL's threshold on the summed reward
            local = rewards_per_func[self.accelerator.process_index * n :][:n]
            reward = (local * self.reward_weights.to(local.device)).nansum(dim=1)
            success = (reward >= self.args.success_reward_threshold).tolist()
        if self.args.truncation_feedback:
            notice = TRUNCATION_NOTICE.format(n=self.max_completion_length)
            for i, ids in enumerate(completion_ids_list):
                if len(ids) >= self.max_completion_length and ids[-1] not in self.eos_token_ids:
                    texts[i].append(notice)
        # a solved completion has nothing left to learn from feedback (the authors' feedback is empty on success:
        # lasgroup/SDPO, verl/utils/reward_score/feedback/)
        self._rollout_feedback = [None if solved else (join_nonempty(*parts) or None) for parts, solved in zip(texts, success)]
        self._rollout_success = torch.tensor(success, dtype=torch.float32, device=self.accelerator.device)
        mode = "train" if self.model.training else "eval"
        gathered = self.accelerator.gather(self._rollout_success)
        self._metrics[mode]["success"].append(gathered.mean().item())
        reward = (rewards_per_func * self.reward_weights.to(rewards_per_func.device)).nansum(dim=1)
        self._metrics[mode]["reward"].append(reward.mean().item())
        self._metrics[mode]["reward_std"].append(reward.std().item() if reward.numel() > 1 else 0.0)
        return rewards_per_func

    # -- teacher -----------------------------------------------------------------------------------------------

    def _setup_teacher_model(self) -> None:
        """TRL loads the frozen teacher from the model's path; a model built from a config (`model=tiny`) has none,
        so outside ZeRO-3 the teacher is a copy of the starting model instead."""
        kind = self.args.teacher_model_kind
        zero3 = self.is_deepspeed_enabled and self.accelerator.state.deepspeed_plugin.zero_stage == 3
        if kind == "live" or is_peft_model(self.model) or zero3:
            if kind == "trust_region":
                raise ValueError("teacher_model_kind=trust_region is not available with PEFT or ZeRO-3 here")
            return super()._setup_teacher_model()
        teacher = copy.deepcopy(self.accelerator.unwrap_model(self.model))
        teacher.requires_grad_(False)
        teacher.eval()
        if self.is_deepspeed_enabled:
            self.teacher_model = prepare_deepspeed(teacher, self.accelerator)
        else:
            self.teacher_model = self.accelerator.prepare_model(teacher, evaluation_mode=True)
        if kind == "ema":
            self.add_callback(SyncTeacherModelCallback(teacher_model=self.teacher_model, accelerator=self.accelerator))

    def _compute_teacher_student_logits(self, model, teacher_model, inputs):
        logits = super()._compute_teacher_student_logits(model, teacher_model, inputs)
        if self.args.teacher_model_kind == "trust_region":
            # q proportional to exp((1 - a) log q_base + a log q_live), as lerp of the logits
            # (arXiv 2601.20802 appendix A.2)
            with torch.no_grad():
                live = self._forward_logits(
                    model, inputs["teacher_input_ids"], inputs["teacher_attention_mask"], inputs["completion_ids"].size(1)
                )
            logits.teacher_logits = torch.lerp(logits.teacher_logits, live, self.args.teacher_update_rate)
        return logits

    # -- loss --------------------------------------------------------------------------------------------------

    def _compute_self_distillation_loss(self, model, inputs, logits):
        mode = "train" if model.training else "eval"
        args = self.args
        ids, mask, completion_mask = logits.completion_ids, logits.loss_mask, logits.completion_mask
        if mask.sum() == 0:
            self._log_self_distillation_metric(mode, 0.0)
            self._metrics[mode]["sdpo/teacher_minus_student_logp"].append(0.0)
            return logits.student_logits.sum() * 0.0  # keeps the graph: backward gives zero gradients
        student_logps = selective_log_softmax(logits.student_logits, ids)
        with torch.no_grad():
            teacher_logps = selective_log_softmax(logits.teacher_logits, ids)
            gap = ((teacher_logps - student_logps) * mask).sum() / mask.sum()
        self._metrics[mode]["sdpo/teacher_minus_student_logp"].append(self.accelerator.gather(gap).mean().item())

        per_token = distillation_per_token(
            logits.student_logits,
            logits.teacher_logits,
            ids,
            mode=args.distillation_mode,
            topk=args.distillation_topk,
            add_tail=args.distillation_add_tail,
            alpha=args.distillation_alpha,
            advantage_clip=args.advantage_clip,
        )
        old_logps = inputs.get("old_per_token_logps")
        if args.distillation_is_clip is not None and old_logps is not None:
            per_token = apply_importance_sampling_clipping(per_token, student_logps, old_logps, args.distillation_is_clip)

        if args.distillation_reduction == "row_mean":
            loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
        elif args.distillation_weight < 1.0:
            loss = self._policy_reduction(per_token * mask, completion_mask)  # the policy term's own normaliser
        else:
            loss = (per_token * mask).sum() / mask.sum()
        mean = (per_token.detach() * mask).sum() / mask.sum()
        self._log_self_distillation_metric(mode, self.accelerator.gather(mean).mean().item())
        return loss

    def _policy_reduction(self, per_token: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
        """Sum `per_token` (already masked) the way `_compute_policy_loss` sums its terms for `loss_type`."""
        if self.loss_type == "grpo":
            return (per_token.sum(-1) / completion_mask.sum(-1).clamp(min=1.0)).mean()
        if self.loss_type == "dr_grpo":
            return per_token.sum() / (per_token.size(0) * self.max_completion_length)
        return per_token.sum() / completion_mask.sum().clamp(min=1.0)  # dapo, bnpo


def support_logps(student_logits, teacher_logits, *, mode: str, topk: Optional[int], add_tail: bool):
    """Student and teacher log-probs over the support the divergence is taken on (last dim)."""
    student = torch.log_softmax(student_logits, dim=-1)
    teacher = torch.log_softmax(teacher_logits, dim=-1)
    if mode == "full_logits":
        return student, teacher
    # the student's top-K, as the paper (K beyond the vocabulary is the whole vocabulary)
    index = torch.topk(student_logits, k=min(topk, student_logits.size(-1)), dim=-1).indices
    student, teacher = student.gather(-1, index), teacher.gather(-1, index)
    if add_tail:
        return add_tail_bucket(student), add_tail_bucket(teacher)
    return (student - student.logsumexp(-1, keepdim=True)), (teacher - teacher.logsumexp(-1, keepdim=True))


def distillation_per_token(
    student_logits,
    teacher_logits,
    ids,
    *,
    mode: str,
    topk: Optional[int],
    add_tail: bool,
    alpha: float,
    advantage_clip: Optional[float],
) -> torch.Tensor:
    """The per-token distillation loss (B, T). Teacher logits carry no gradient.

    With `advantage_clip` c (reverse KL only) the loss is the surrogate sum_v sg(S_v) sg(clip(log S_v - log T_v, c))
    log S_v, whose gradient is reverse KL's with each per-token advantage bounded by c; its value is not the KL."""
    teacher_logits = teacher_logits.detach()
    if mode == "sampled_token":
        student = selective_log_softmax(student_logits, ids)
        teacher = selective_log_softmax(teacher_logits, ids)
        ratio = (student - teacher).detach()
        if advantage_clip is not None:
            ratio = ratio.clamp(-advantage_clip, advantage_clip)
        return ratio * student
    student, teacher = support_logps(student_logits, teacher_logits, mode=mode, topk=topk, add_tail=add_tail)
    if advantage_clip is None:
        return compute_divergence(student, teacher, alpha)
    advantage = (student - teacher).detach().clamp(-advantage_clip, advantage_clip)
    return (student.detach().exp() * advantage * student).sum(-1)


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

    config_class = FeedbackSDPOConfig

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
        if self.trl.get("use_vllm"):
            raise ConfigError("algo=sdpo runs with HF generation here; vLLM (TRL's SDPO teacher server) is not wired up")

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
        return self.env_trainer(FeedbackSDPOTrainer, model, tokenizer, env, args)


register("sdpo")(SDPO)
