"""SDPO's TRL config, teacher-context builder, trainer and distillation loss; the algorithm, its math and its
hyperparameters are rlexp/algos/sdpo.py."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from accelerate.utils import gather_object, is_peft_model
from safetensors.torch import load_file, load_model, save_file, save_model
from transformers import TrainerCallback
from trl.experimental.sdpo import SDPOConfig, SDPOTrainer
from trl.experimental.sdpo.loss_utils import add_tail_bucket, apply_importance_sampling_clipping, compute_divergence
from trl.experimental.sdpo.sdpo_trainer import SuccessfulRolloutTeacherContextBuilder
from trl.experimental.sdpo.teacher_sync import SyncTeacherModelCallback
from trl.models import prepare_deepspeed
from trl.trainer.utils import pad, selective_log_softmax

from rlexp import episodes
from rlexp.algos.sdpo import SDPO, TRUNCATION_NOTICE, join_nonempty, remove_thinking
from rlexp.trainers.grpo import widest_over_processes
from rlexp.trainers.offload import autocast_like, cpu_copy, ema_update_in_cpu_memory, on_device


@dataclass
class FeedbackSDPOConfig(SDPOConfig):
    """TRL's `SDPOConfig` plus what the paper does and TRL does not: the knobs of the same names in `SDPO`
    (rlexp/algos/sdpo.py), where they are documented, with its defaults."""

    distillation_reduction: str = SDPO.distillation_reduction
    advantage_clip: Optional[float] = SDPO.advantage_clip
    truncation_feedback: bool = SDPO.truncation_feedback
    # also append the dataset's `privileged_context` column to each completion's feedback (algo.trl.merge_privileged_context)
    merge_privileged_context: bool = False
    reprompt_template: str = SDPO.reprompt_template
    solution_template: str = SDPO.solution_template
    feedback_template: str = SDPO.feedback_template
    # with vLLM: the rollout correction (named as GRPOConfig names TRL's; set from generation.importance_sampling_*)
    vllm_importance_sampling_correction: bool = True
    vllm_importance_sampling_mode: str = SDPO.importance_sampling_mode
    vllm_importance_sampling_clip_max: float = SDPO.importance_sampling_clip_max
    teacher_offload: bool = SDPO.teacher_offload


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
        tokenizer = trainer.processing_class
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
            if trainer._solving_attempts is not None:
                trainer.processing_class = SolvingAttemptDecoder(tokenizer, trainer._solving_attempts)
            context = self._build_without_trls_thinking_removal(output, prompts, rewards, feedbacks)
        finally:
            trainer.processing_class = tokenizer
            trainer._rollout_feedback = trainer._rollout_success = None
        trainer.rollout_columns = teacher_columns(trainer, rewards, context["self_distillation_mask"])
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


def teacher_columns(trainer, success: torch.Tensor, with_teacher: torch.Tensor) -> dict[str, list]:
    """The completion tables' own columns (rlexp/tracking.py) for this process's completions: whether each had a
    teacher context, and its kind: `solution` (a sibling that succeeded, as TRL's builder picks one) or
    `feedback_only`. `success` is this process's 0/1 flags, `with_teacher` the builder's mask."""
    args = trainer.args
    group = trainer.num_generations if trainer.model.training else trainer.num_generations_eval
    solved = (trainer.accelerator.gather(success) >= args.success_reward_threshold).tolist()
    start = trainer.accelerator.process_index * len(success)
    kinds = []
    for i, used in zip(range(start, start + len(success)), with_teacher.tolist()):
        siblings = range(i - i % group, i - i % group + group)
        solution = args.use_successful_as_teacher and any(
            solved[j] for j in siblings if not (args.dont_reprompt_on_self_success and j == i)
        )
        kinds.append(("solution" if solution else "feedback_only") if used else "")
    return {"teacher_context": [bool(k) for k in kinds], "teacher_context_kind": kinds}


class SolvingAttemptDecoder:
    """Stands in for the tokenizer while TRL's builder runs on multi-turn episodes: a successful sibling's
    demonstration is the attempt that solved it, not its whole transcript with the failed attempts and feedback
    turns. Everything but decoding those transcripts goes to the tokenizer."""

    def __init__(self, tokenizer, solving_attempts: dict[tuple, str]):
        self.tokenizer, self.solving_attempts = tokenizer, solving_attempts

    def decode(self, ids, **kwargs) -> str:
        key = tuple(ids.tolist()) if hasattr(ids, "tolist") else tuple(ids)
        return self.solving_attempts[key] if key in self.solving_attempts else self.tokenizer.decode(ids, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


TEACHER_FILE = "teacher.safetensors"  # the EMA teacher's weights, in each checkpoint


class EMAInCpuMemory(TrainerCallback):
    """TRL's SyncTeacherModelCallback for a teacher kept in CPU memory (teacher_offload): the same EMA on the same
    steps, computed there."""

    def __init__(self, trainer: FeedbackSDPOTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % args.teacher_sync_steps == 0:
            student = self.trainer.accelerator.unwrap_model(kwargs["model"])
            ema_update_in_cpu_memory(self.trainer.teacher_model, student, args.teacher_update_rate)


class FeedbackSDPOTrainer(SDPOTrainer):
    """`SDPOTrainer` whose teacher reads each rollout's own environment feedback and successful siblings."""

    def __init__(self, *args, **kwargs):
        self._rollout_feedback: Optional[list] = None
        self._rollout_success: Optional[torch.Tensor] = None
        # multi-turn episodes (EpisodeSDPOTrainer): each solved episode's transcript ids -> its solving attempt's text
        self._solving_attempts: Optional[dict[tuple, str]] = None
        self._offloaded_teacher_logits: Optional[torch.Tensor] = None  # the teacher's pass, run before the student's
        super().__init__(*args, **kwargs)
        self.args.success_reward_threshold = 1.0  # the builder sees 0/1 success flags
        self.teacher_context_builder = FeedbackContextBuilder(self)
        self._sampling_logps: Optional[list[list[float]]] = None  # vLLM's log-prob of each sampled token
        if self.use_vllm and self.args.vllm_importance_sampling_correction:
            self.vllm_generation.logprobs = 0  # TRL's SDPOTrainer asks for none; the sampled token's is what w needs

    # -- vLLM: the rollout correction --------------------------------------------------------------------------

    def _generate_vllm(self, prompt_ids, num_generations: Optional[int] = None):
        """TRL's, keeping vLLM's log-prob of each sampled token for the rollout correction. `num_generations`: the
        copies of each prompt in `prompt_ids` (TRL's server generates them from one), the run's by default."""
        if self.state.global_step != self._last_loaded_step:
            self.vllm_generation.sync_weights()
            self._last_loaded_step = self.state.global_step
        if num_generations is None:
            num_generations = self.num_generations if self.model.training else self.num_generations_eval
        prompt_ids_out, completion_ids, logprobs, _ = self.vllm_generation.generate(
            prompts=prompt_ids, images=None, num_generations=num_generations
        )
        self._sampling_logps = None if logprobs is None else [[lp[0] for lp in seq] for seq in logprobs]
        return prompt_ids_out, completion_ids

    def _prepare_training_batch(self, inputs):
        batch = super()._prepare_training_batch(inputs)
        sampling, self._sampling_logps = self._sampling_logps, None
        if sampling is not None and self.model.training and self.args.vllm_importance_sampling_correction:
            batch["rollout_is_weights"] = self._rollout_is_weights(batch, sampling)
        return batch

    @torch.no_grad()
    def _rollout_is_weights(self, batch, sampling: list[list[float]]) -> torch.Tensor:
        """w = pi_old / pi_vllm per completion token (or per completion), bounded as generation.importance_sampling_*
        say; pi_old is the trainer's policy now, at rollout time (TRL keeps its log-probs only for off-policy steps)."""
        old = batch.get("old_per_token_logps")
        if old is None:
            ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
            mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
            logits = self._forward_logits(self.model, ids, mask, batch["completion_ids"].size(1))
            old = selective_log_softmax(logits, batch["completion_ids"])
        width = old.size(1)
        rows = [torch.tensor((s + [float("nan")] * width)[:width], dtype=torch.float32) for s in sampling]
        sampled = torch.stack(rows).to(old.device)
        mask = batch["completion_mask"] * batch.get("env_mask", 1)  # an episode's feedback turns were not sampled
        weights = rollout_is_weights(old, sampled, mask, self.args.vllm_importance_sampling_mode,
                                     self.args.vllm_importance_sampling_clip_max)  # fmt: skip
        per_token = weights.expand_as(mask)[mask.bool()]
        for stat, fn in (("min", torch.min), ("mean", torch.mean), ("max", torch.max)):  # TRL's GRPO names them so
            value = fn(per_token) if per_token.numel() else torch.tensor(1.0, device=mask.device)
            self._metrics["train"][f"sampling/importance_sampling_ratio/{stat}"].append(
                fn(self.accelerator.gather(value.reshape(1))).item()
            )
        return weights

    def _compute_policy_loss(self, inputs, student_logits):
        weights = inputs.get("rollout_is_weights")
        if weights is not None:  # w >= 0 rides in the advantage: -min(r A w, clip(r) A w) = w * -min(r A, clip(r) A)
            advantages = inputs["advantages"]
            inputs = {**inputs, "advantages": (advantages[:, None] if advantages.dim() == 1 else advantages) * weights}
        return super()._compute_policy_loss(inputs, student_logits)

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

    # -- checkpoints: the EMA teacher is state of its own, which a resumed run needs (under ZeRO-3 too) -----------

    def _teacher_is_sharded(self) -> bool:
        return self.is_deepspeed_enabled and self.accelerator.state.deepspeed_plugin.zero_stage == 3

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.teacher_model_kind != "ema":
            return
        folder = Path(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
        teacher = self.accelerator.unwrap_model(self.teacher_model)
        if not self._teacher_is_sharded():
            if self.args.should_save:
                save_model(teacher, str(folder / TEACHER_FILE))
            return
        import deepspeed

        # ZeRO-3 shards the teacher's weights over the processes: every process takes part in gathering them
        with deepspeed.zero.GatheredParameters(list(teacher.parameters())):
            if self.args.should_save:
                whole = {name: p.detach().cpu().clone() for name, p in teacher.named_parameters()}
                save_file(whole, str(folder / TEACHER_FILE))

    def _load_optimizer_and_scheduler(self, checkpoint):
        # where the Trainer restores a checkpoint's state under every backend (under DeepSpeed it never calls
        # _load_from_checkpoint): the teacher's weights are restored with the optimizer's
        super()._load_optimizer_and_scheduler(checkpoint)
        saved = Path(checkpoint, TEACHER_FILE) if checkpoint else None
        if self.args.teacher_model_kind != "ema" or saved is None or not saved.is_file():
            return
        teacher = self.accelerator.unwrap_model(self.teacher_model)
        if not self._teacher_is_sharded():
            load_model(teacher, str(saved))
            return
        import deepspeed

        # the main process writes the whole weights; leaving the block shards them out to every process again
        with deepspeed.zero.GatheredParameters(list(teacher.parameters()), modifier_rank=0):
            if self.accelerator.is_main_process:
                weights = load_file(str(saved))
                for name, p in teacher.named_parameters():
                    p.data.copy_(weights[name])

    # -- teacher -----------------------------------------------------------------------------------------------

    def _setup_teacher_model(self) -> None:
        """TRL loads the frozen teacher from the model's path; a model built from a config (`model=tiny`) has none,
        so outside ZeRO-3 the teacher is a copy of the starting model instead."""
        kind = self.args.teacher_model_kind
        if kind == "live" or is_peft_model(self.model) or self._teacher_is_sharded():
            if kind == "trust_region":
                raise ValueError("teacher_model_kind=trust_region is not available with PEFT or ZeRO-3 here")
            if self._teacher_is_sharded():
                import deepspeed

                # the teacher is loaded sharded (deepspeed.zero.Init), which needs DeepSpeed's process group before
                # the student's is made in train(); on GPUs accelerate has made it already, on CPUs not
                deepspeed.init_distributed()
            return super()._setup_teacher_model()
        if self.args.teacher_offload:
            if self._teacher_is_sharded():
                raise ValueError("teacher_offload is not for ZeRO-3, which shards the teacher already")
            # in CPU memory between its passes (on_device moves it for each); accelerate never prepares it
            self.teacher_model = cpu_copy(self.accelerator.unwrap_model(self.model))
            if kind == "ema":
                self.add_callback(EMAInCpuMemory(self))
            return
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
        if self.args.teacher_offload:
            # the teacher's pass first, while the student holds no activations, and the teacher back in CPU memory
            # before the student's pass; TRL's teacher pass below takes these logits (_forward_logits)
            device = self.accelerator.device
            with torch.no_grad(), self._get_teacher_context_for_self_distillation(), on_device(teacher_model, device), \
                    autocast_like(self.args, device):  # fmt: skip
                # in fp32, as accelerate returns a prepared model's outputs under mixed precision
                self._offloaded_teacher_logits = self._forward_logits(
                    teacher_model, inputs["teacher_input_ids"], inputs["teacher_attention_mask"], inputs["completion_ids"].size(1)
                ).float()
        try:
            logits = super()._compute_teacher_student_logits(model, teacher_model, inputs)
        finally:
            self._offloaded_teacher_logits = None  # used by the teacher's pass in there, or dropped with its failure
        if self.args.teacher_model_kind == "trust_region":
            # q proportional to exp((1 - a) log q_base + a log q_live), as lerp of the logits
            # (arXiv 2601.20802 appendix A.2)
            with torch.no_grad():
                live = self._forward_logits(
                    model, inputs["teacher_input_ids"], inputs["teacher_attention_mask"], inputs["completion_ids"].size(1)
                )
            logits.teacher_logits = torch.lerp(logits.teacher_logits, live, self.args.teacher_update_rate)
        return logits

    def _forward_logits(self, model, input_ids, attention_mask, logits_to_keep):
        if model is self.teacher_model and self._offloaded_teacher_logits is not None:
            logits, self._offloaded_teacher_logits = self._offloaded_teacher_logits, None
            return logits
        return super()._forward_logits(model, input_ids, attention_mask, logits_to_keep)

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

        weights = inputs.get("rollout_is_weights")
        if weights is not None:
            per_token = per_token * weights

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


class EpisodeSDPOTrainer(FeedbackSDPOTrainer):
    """`FeedbackSDPOTrainer` on multi-turn episodes (rlexp/episodes.py, env.max_attempts > 1).

    Each rollout is one episode: up to `env.max_attempts` attempts with the environment's feedback as the user turn
    between them. The student's completion is the whole transcript after the prompt; the teacher reads the same
    transcript after its reprompt, built from the episode's last feedback (the feedback on its last failed attempt)
    and, as a solution, the solving attempt of a sibling episode that succeeded. Both the distillation loss and the
    policy term cover the model's own tokens only: the feedback turns stay in both forwards (the model reads them)
    and out of every loss. An episode's reward, success and feedback reach the reward function as its `episode`
    column (rlexp/rewards.py)."""

    def __init__(self, *args, episode_env, **kwargs):
        self.episode_env = episode_env
        self._rows: Optional[list[dict]] = None
        self._played: Optional[list[episodes.Episode]] = None
        super().__init__(*args, **kwargs)
        episodes.feedback_turn_ids(self._tokenizer, "?")  # a chat template that cannot take feedback turns fails here

    def sample_rollouts(self, inputs):
        self._rows = inputs  # the episodes need the rows (cards, tests ...) to score attempts; _generate gets ids only
        try:
            batch = super().sample_rollouts(inputs)
        finally:
            self._rows = None
        played, self._played = self._played, None
        for row, episode in zip(inputs, played):
            row["episode"] = episode  # a column the reward function reads
        masks = [torch.tensor(e.env_mask, dtype=torch.long) for e in played]
        env_mask = pad(masks, padding_value=0, padding_side="right").to(batch["completion_ids"].device)
        batch["env_mask"] = env_mask[:, : batch["completion_ids"].size(1)]
        # keyed as TRL's builder sees a sibling's ids: gathered from every process, padding dropped
        pad_id = self._tokenizer.pad_token_id
        solved = [([t for t in e.completion_ids if t != pad_id], e.messages[-1]["content"]) for e in played if e.solved]
        self._solving_attempts = {tuple(ids): text for part in gather_object([solved]) for ids, text in part}
        return batch

    def _prepare_training_batch(self, inputs):
        try:
            return super()._prepare_training_batch(inputs)
        finally:
            self._solving_attempts = None

    def _generate(self, prompt_ids):
        def generate(sequences):
            if not self.use_vllm:
                return self._generate_transformers(sequences)[1], None
            # every transcript of a round is its own prompt: one completion each
            _, completion_ids = self._generate_vllm(sequences, num_generations=1)
            return completion_ids, self._sampling_logps  # vLLM's, for the rollout correction

        self._played = episodes.play(
            self.episode_env, self._tokenizer, self._rows, prompt_ids, generate,
            widest=widest_over_processes(self.accelerator),
        )  # fmt: skip
        self._sampling_logps = None if self._played[0].logprobs is None else [e.logprobs for e in self._played]
        return [e.prompt_ids for e in self._played], [e.completion_ids for e in self._played]

    def _compute_teacher_student_logits(self, model, teacher_model, inputs):
        logits = super()._compute_teacher_student_logits(model, teacher_model, inputs)
        # after both forwards, which attend to the feedback turns: the losses leave them out
        logits.loss_mask = logits.loss_mask * inputs["env_mask"]
        logits.completion_mask = logits.completion_mask * inputs["env_mask"]
        return logits

    def _compute_policy_loss(self, inputs, student_logits):
        own_tokens = inputs["completion_mask"] * inputs["env_mask"]
        return super()._compute_policy_loss({**inputs, "completion_mask": own_tokens}, student_logits)


def rollout_is_weights(old: torch.Tensor, sampled: torch.Tensor, mask: torch.Tensor, mode: str, clip_max: float) -> torch.Tensor:
    """The rollout correction w = pi_old / pi_vllm from log-probs (B, T), in TRL's four forms (its GRPOTrainer's
    vllm_importance_sampling_mode): per token (B, T) or per completion (B, 1, the product over its tokens),
    truncated at `clip_max` or zero above it. A token vLLM did not score (NaN) counts as ratio 1."""
    diff = torch.nan_to_num((old - sampled) * mask, nan=0.0)
    if mode.startswith("sequence"):
        diff = diff.sum(-1, keepdim=True)
    ratio = diff.exp()
    if mode.endswith("truncate"):
        return ratio.clamp(max=clip_max)
    return ratio.masked_fill(ratio > clip_max, 0.0)


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
