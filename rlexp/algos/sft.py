"""Supervised fine-tuning on the environment's demonstrations, with TRL's `SFTTrainer`.

Loss: the mean negative log-likelihood of the demonstration's answer tokens given its prompt
(the prompt is not trained on). TRL's other losses come through `loss_type`, e.g.
`algo.loss_type=dft` (Dynamic Fine-Tuning: each token's loss scaled by its own detached
probability).
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
from trl import SFTConfig, SFTTrainer

from rlexp.algos import register
from rlexp.algos.base import Algo
from rlexp.errors import ConfigError


def as_prompt_completion(demos: datasets.Dataset) -> datasets.Dataset:
    """Split each `messages` row into the conversation so far and the final assistant turn."""

    def split(row):
        return {"prompt": row["messages"][:-1], "completion": row["messages"][-1:]}

    return demos.map(split, remove_columns=demos.column_names)


@dataclass
class SFT(Algo):
    learning_rate: float = 2e-5
    # > Parameters that control the loss
    # "nll" (plain SFT) or "dft"
    loss_type: str = "nll"
    # sequences longer than this many tokens are truncated
    max_length: int = 1024
    # demonstrations come from this split of the environment
    data_split: str = "train"

    config_class = SFTConfig

    def check(self, world_size: int) -> None:
        super().check(world_size)
        if self.loss_type not in ("nll", "dft"):
            raise ConfigError(f"algo.loss_type={self.loss_type} is not one of TRL's SFT losses: nll, dft")

    def build_trainer(self, model, tokenizer, env, args):
        data = as_prompt_completion(env.demonstrations(self.data_split))
        return SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)


register("sft")(SFT)
