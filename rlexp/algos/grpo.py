"""Group Relative Policy Optimization (DeepSeekMath, arXiv 2402.03300) with TRL's `GRPOTrainer`, rewarded by the
environment.

For each prompt the policy samples G = `num_generations` completions; each gets the
environment's reward r_i and the group-normalised advantage A_i = (r_i - mean(r)) / std(r)
(`scale_rewards`); the loss is the clipped surrogate
    -min(rho_t A_i, clip(rho_t, 1 - epsilon, 1 + epsilon) A_i),   rho_t = pi(y_t) / pi_old(y_t),
averaged over tokens as `loss_type` says, plus `beta` times the KL to the reference model.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlexp.algos import register
from rlexp.algos.base import Algo
from rlexp.errors import ConfigError
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

    trl_config = "trl.GRPOConfig"
    takes_images = True  # TRL's GRPOTrainer puts an `images` column into the prompts it generates from and trains on

    def check(self, world_size: int) -> None:
        super().check(world_size)
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

    def build_trainer(self, model, tokenizer, env, args):
        from trl import GRPOTrainer

        return self.env_trainer(GRPOTrainer, model, tokenizer, env, args)

    def env_trainer(self, trainer_class, model, tokenizer, env, args, **extra):
        """`trainer_class` (GRPOTrainer or a relative) on `data_split`'s prompts, rewarded by `env`."""
        return trainer_class(
            model=model,
            reward_funcs=[EnvReward.for_env(env)],
            args=args,
            train_dataset=env.dataset(self.data_split),
            processing_class=tokenizer,
            **extra,
        )


register("grpo")(GRPO)
