"""Group Relative Policy Optimization (DeepSeekMath, arXiv 2402.03300) with TRL's `GRPOTrainer`, rewarded by the
environment.

For each prompt the policy samples G = `num_generations` completions; each gets the
environment's reward r_i and the group-normalised advantage A_i = (r_i - mean(r)) / std(r)
(`scale_rewards`); the loss is the clipped surrogate
    -min(rho_t A_i, clip(rho_t, 1 - epsilon, 1 + epsilon) A_i),   rho_t = pi(y_t) / pi_old(y_t),
averaged over tokens as `loss_type` says, plus `beta` times the KL to the reference model.

With `env.max_attempts` > 1 each completion is a whole episode (rlexp/episodes.py, the protocol of arXiv
2501.17161 §5): attempts with the environment's feedback as the user turn between them. r_i is then the episode's
return, sum_t gamma^(t-1) r_t over its attempts (`episode_return=sum`) or 1 if it was solved (`final`), normalised
over the G episodes of one prompt; the loss covers the tokens of every assistant turn and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlexp.algos import register
from rlexp.algos.base import Algo
from rlexp.errors import ConfigError
from rlexp.generation import trl_fields
from rlexp.rewards import EnvReward


@dataclass
class GRPO(Algo):
    learning_rate: float = 1e-6
    # > Parameters that control generation
    # completions sampled per prompt (the group); at least 2
    num_generations: int = 8
    # tokens a completion may have; longer ones are cut off
    max_completion_length: int = 256
    # sampling temperature of the rollouts
    temperature: float = 1.0
    # > Parameters that control the loss
    # KL coefficient to the reference model (0 loads no reference model)
    beta: float = 0.0
    # clip range of the probability ratio: [1 - epsilon, 1 + epsilon]
    epsilon: float = 0.2
    # "dapo", "grpo", "dr_grpo", "bnpo" ... (TRL's choices)
    loss_type: str = "dapo"
    # "group", "batch" or "none": how advantages are scaled
    scale_rewards: str = "group"
    # optimisation steps per generation batch
    num_iterations: int = 1
    # prompts come from this split of the environment
    data_split: str = "train"
    # > Parameters of multi-turn episodes (env.max_attempts > 1)
    # an episode's reward: "sum" of its attempts' rewards (discounted by gamma) or "final" (1 if solved, else 0)
    episode_return: str = "sum"
    # discount per attempt in the "sum" return; the paper's PPO used 0.9 (arXiv 2501.17161, App. B)
    gamma: float = 1.0

    trl_config = "trl.GRPOConfig"
    generates = True
    # the correction of vLLM's sampling mismatch where generation.importance_sampling_* are null: TRL's defaults
    importance_sampling_mode: ClassVar[str] = "sequence_mask"
    importance_sampling_clip_max: ClassVar[float] = 3.0
    # trains on multi-turn episodes (so does sdpo); luffy and jackpot, which change what GRPO's loss sees, do not
    trains_on_episodes: ClassVar[bool] = True
    takes_images = True  # TRL's GRPOTrainer puts an `images` column into the prompts it generates from and trains on

    def check(self, world_size: int) -> None:
        super().check(world_size)
        if self.episode_return not in ("sum", "final"):
            raise ConfigError(f"algo.episode_return={self.episode_return} is not one of sum, final")
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"algo.gamma={self.gamma} must be in (0, 1]")
        if self.num_generations < 2:
            raise ConfigError(f"algo.num_generations={self.num_generations}: GRPO needs at least 2 completions per prompt")
        # the rule GRPOConfig applies once the model is loaded, checked here before
        batch = self.per_device_train_batch_size * world_size
        generation_batch = self.trl.get("generation_batch_size")
        steps = self.trl.get("steps_per_generation")
        if generation_batch is not None and steps is not None:
            raise ConfigError("set one of algo.trl.generation_batch_size and algo.trl.steps_per_generation, not both")
        if generation_batch is None:
            knob = "steps_per_generation" if steps is not None else "gradient_accumulation_steps"
            steps = steps if steps is not None else self.gradient_accumulation_steps
            generation_batch = batch * steps
            how = f"per_device_train_batch_size {self.per_device_train_batch_size} x {world_size} process(es) x {knob} {steps}"
        elif generation_batch % batch:
            raise ConfigError(
                f"algo.trl.generation_batch_size={generation_batch} must be divisible by per_device_train_batch_size "
                f"{self.per_device_train_batch_size} x {world_size} process(es) = {batch}"
            )
        else:
            how = "algo.trl.generation_batch_size"
        if generation_batch % self.num_generations:
            raise ConfigError(
                f"the generation batch ({generation_batch} = {how}) is not divisible by "
                f"algo.num_generations={self.num_generations}; change one so it divides"
            )

    def generation_fields(self, generation):
        return trl_fields(generation, self.importance_sampling_mode, self.importance_sampling_clip_max)

    def check_env(self, env) -> None:
        if env.max_attempts > 1 and not self.trains_on_episodes:
            raise ConfigError(
                f"algo={self.name} trains on single attempts; env.max_attempts={env.max_attempts} (multi-turn "
                "episodes) trains with algo=grpo or algo=sdpo"
            )

    def build_trainer(self, model, tokenizer, env, args):
        if env.max_attempts > 1:
            from rlexp.trainers.grpo import EpisodeGRPOTrainer

            return self.env_trainer(EpisodeGRPOTrainer, model, tokenizer, env, args, episode_env=env)
        from trl import GRPOTrainer

        return self.env_trainer(GRPOTrainer, model, tokenizer, env, args)

    def env_trainer(self, trainer_class, model, tokenizer, env, args, **extra):
        """`trainer_class` (GRPOTrainer or a relative) on `data_split`'s prompts, rewarded by `env`."""
        reward = EnvReward.for_env(env, episode_return=self.episode_return, gamma=self.gamma)
        return trainer_class(
            model=model,
            reward_funcs=[reward],
            args=args,
            train_dataset=env.dataset(self.data_split),
            processing_class=tokenizer,
            **extra,
        )


register("grpo")(GRPO)
