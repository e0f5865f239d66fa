"""What every algorithm shares: the common hyperparameters and the way they reach TRL."""

from __future__ import annotations

import abc
import dataclasses
import importlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Dict, Optional

from rlexp.errors import ConfigError
from rlexp.generation import OWNED_FIELDS
from rlexp.schema import GenerationConfig, ModelConfig

if TYPE_CHECKING:  # an algorithm's config is read before any of them loads: only its trainer imports them
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainingArguments

    from rlexp.envs import Env


# the TRL config fields a user sets through the model, never through algo.trl: field -> the model key
MODEL_OWNED = {
    "activation_checkpointing": "model.activation_checkpointing",
    "gradient_checkpointing": "model.activation_checkpointing",  # transformers' old name of the same switch
    "use_liger_kernel": "model.use_liger_kernel",
}


def run_owned(output_dir, seed: int, precision: str, model: ModelConfig | None = None) -> dict[str, Any]:
    """The TRL config fields rlexp sets from the run itself, for every stage and for mode=discover: a user
    sets them through the run (seed=, precision=, hydra.run.dir=) and the model (MODEL_OWNED), never through algo.*."""
    import torch

    model = model or ModelConfig()
    return {
        "output_dir": str(output_dir),
        "seed": seed,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": not torch.cuda.is_available(),
        "report_to": "none",  # rlexp's Tracker logs, on one step axis across stages
        "save_strategy": "steps",  # every algo.save_steps; each stage also saves its final model itself
        "activation_checkpointing": model.activation_checkpointing,
        "use_liger_kernel": model.use_liger_kernel,
    }


@dataclass
class Algo(abc.ABC):
    """Base of every algorithm's config. Fields named like a TRL config field are passed to it."""

    name: str = ""
    # > Optimisation
    # peak learning rate of AdamW
    learning_rate: float = 1e-5
    # transformers' schedule: constant, linear, cosine, constant_with_warmup ...
    lr_scheduler_type: str = "constant"
    # steps of linear warm-up, for schedules that have one (constant ignores it)
    warmup_steps: int = 0
    # AdamW's decoupled weight decay
    weight_decay: float = 0.0
    # gradients are clipped to this global norm
    max_grad_norm: float = 1.0
    # optimisation steps in this stage
    max_steps: int = 100
    # sequences per process and micro-step (GRPO family: completions, i.e. prompts x num_generations)
    per_device_train_batch_size: int = 8
    # micro-steps summed into one optimisation step
    gradient_accumulation_steps: int = 1
    # log metrics every this many steps
    logging_steps: int = 1
    # > Checkpoints, to resume from (rlexp/checkpoints.py)
    # save the stage's full state (model, optimizer, scheduler, RNG, data position) every this many steps and at
    # its end; null: every tenth of max_steps
    save_steps: Optional[int] = None
    # checkpoints kept per stage, the newest; at least 2, so that a kill while one is written leaves one to resume
    save_total_limit: int = 2
    # any other field of the TRL config class (e.g. {adam_beta2: 0.99}); checked against it before anything loads
    trl: Dict[str, Any] = field(default_factory=dict)

    # the TRL config class these hyperparameters fill, as "module.Class" ("trl.GRPOConfig"): imported only when a run
    # starts, or when algo.trl must be checked against its fields
    trl_config: ClassVar[str]
    # the algorithm trains on rows with images (a vision-language environment's `images` column, e.g. env.visual=true
    # of generalpoints). Read from the class itself, never inherited: a subclass's trainer handles batches its own way,
    # so it says for itself whether images reach its model
    takes_images: ClassVar[bool] = False
    # the algorithm samples its own training data (the RL family), as the run's `generation` group says
    generates: ClassVar[bool] = False

    @classmethod
    def reads_images(cls) -> bool:
        return vars(cls).get("takes_images", False)

    @classmethod
    def config_class(cls) -> type[TrainingArguments]:
        module, _, name = cls.trl_config.rpartition(".")
        return getattr(importlib.import_module(module), name)

    def trl_kwargs(self) -> dict[str, Any]:
        """This algorithm's hyperparameters as keyword arguments of `config_class`."""
        config_class = self.config_class()
        accepted = {f.name for f in dataclasses.fields(config_class)}
        ours = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name in accepted}
        unknown = sorted(set(self.trl) - accepted)
        if unknown:
            raise ConfigError(
                f"algo.trl has {', '.join(unknown)}, which {config_class.__name__} does not take; "
                f"see its fields in TRL's documentation"
            )
        owned = {**OWNED_FIELDS, **MODEL_OWNED}  # set through the generation group or the model
        shadowed = sorted(set(self.trl) & (set(ours) | set(run_owned("", 0, "fp32")) | set(owned)))
        if shadowed:
            key = shadowed[0]
            where = f"use algo.{key}" if key in ours else f"use {owned[key]}" if key in owned else None
            raise ConfigError(
                f"algo.trl.{key} is set elsewhere: " + (where or "rlexp sets it from the run (seed, precision, run dir)")
            )
        return {**ours, **self.trl}

    def training_args(
        self,
        output_dir,
        seed: int,
        precision: str,
        generation: Optional[GenerationConfig] = None,
        model: Optional[ModelConfig] = None,
        **extra,
    ) -> TrainingArguments:
        """This algorithm's TRL config for a run: its hyperparameters, the run's own fields (those of `model` too),
        how it generates (`generation`: the run's group, if the algorithm generates), and `extra`."""
        kwargs = {**self.trl_kwargs(), "save_steps": self.save_steps or max(1, math.ceil(self.max_steps / 10))}
        if generation is not None:
            kwargs.update(self.generation_fields(generation))
        return self.config_class()(**kwargs, **run_owned(output_dir, seed, precision, model), **extra)

    def generation_fields(self, generation: GenerationConfig) -> dict[str, Any]:
        """The TRL config fields that make this algorithm generate as `generation` says: none for an algorithm that
        trains on fixed data (sft, iwsft, pear), which ignores the group (a pipeline's RL stage uses it)."""
        return {}

    def check_generation(self, generation: GenerationConfig) -> None:
        """Checks of this algorithm against the run's `generation` group, before any model loads. Raise ConfigError."""

    def served_model(self, start: Optional[str]) -> Optional[str]:
        """The model a generation server runs for this stage, which starts from `start` (a path or hub id)."""
        return start

    def check(self, world_size: int) -> None:
        """Cross-field checks that must fail before any model loads. Raise ConfigError."""
        if self.trl:  # checked against the TRL config class's fields, which loads TRL: only when there is something to check
            self.trl_kwargs()
        if self.save_steps is not None and self.save_steps < 1:
            raise ConfigError(f"algo.save_steps={self.save_steps} must be at least 1 (or null: every tenth of max_steps)")
        if self.save_total_limit < 2:
            raise ConfigError(
                f"algo.save_total_limit={self.save_total_limit}: keep at least 2 checkpoints, so that a kill while one "
                "is written leaves a complete one to resume from"
            )
        if self.warmup_steps and self.lr_scheduler_type == "constant":
            raise ConfigError(
                f"algo.warmup_steps={self.warmup_steps} does nothing with algo.lr_scheduler_type=constant, "
                "which keeps the rate fixed from the first step; use constant_with_warmup, or drop warmup_steps"
            )

    def check_launcher(self, launcher: str) -> None:
        """Checks of this algorithm against the run's launcher (`launcher.name`), before any model loads. Raise
        ConfigError."""

    def check_env(self, env: Env) -> None:
        """Checks of this algorithm against the run's environment, before any model loads. Raise ConfigError."""

    @abc.abstractmethod
    def build_trainer(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, env: Env, args: TrainingArguments
    ) -> Trainer:
        """The TRL trainer that runs this algorithm on `env`."""
