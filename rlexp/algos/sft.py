"""Supervised fine-tuning on the environment's demonstrations, with TRL's `SFTTrainer`.

Loss: the mean negative log-likelihood of the demonstration's answer tokens given its prompt
(the prompt is not trained on). TRL's other losses come through `loss_type`, e.g.
`algo.loss_type=dft` (Dynamic Fine-Tuning, arXiv 2508.05629: each token's loss scaled by its own
detached probability).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import datasets
import torch
from trl import SFTConfig, SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

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
        demos = env.demonstrations(self.data_split)
        check_fits(demos, tokenizer, self.max_length)
        return SFTTrainer(model=model, args=args, train_dataset=as_prompt_completion(demos), processing_class=tokenizer)


def check_fits(demos: datasets.Dataset, tokenizer, max_length: int) -> None:
    """Truncation keeps the start, so a demonstration longer than `max_length` loses its answer: refuse that."""
    lengths = [len(tokenizer.apply_chat_template(m, tokenize=True, return_dict=True)["input_ids"]) for m in demos["messages"]]
    too_long = [n for n in lengths if n > max_length]
    if too_long:
        raise ConfigError(
            f"algo.max_length={max_length} would cut the answer off {len(too_long)} of {len(lengths)} demonstrations "
            f"(the longest has {max(too_long)} tokens); raise algo.max_length (with model=tiny, also "
            f"model.max_position_embeddings)"
        )


@dataclass
class LogpsCollator(DataCollatorForLanguageModeling):
    """TRL's collator, plus a per-token log-prob column right-padded with 0 like the input ids."""

    column: str = "behavior_logps"

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        logps = [torch.tensor(e.pop(self.column), dtype=torch.float32) for e in examples]
        batch = super().torch_call(examples)
        padded = torch.zeros(batch["input_ids"].shape, dtype=torch.float32)
        for i, row in enumerate(logps):
            padded[i, : len(row)] = row
        batch[self.column] = padded
        return batch


class WeightedSFTTrainer(SFTTrainer):
    """`SFTTrainer` whose per-token log-probs are multiplied by a stop-gradient weight before TRL's own NLL sums
    them. A subclass sets `column`, the per-token log-prob column its weights need, and defines
    `token_weights(log_probs, column_values, label_mask, mode)`, which returns weights aligned with the fused
    head's log-probs of input_ids[:, 1:] (PEAR and iw-SFT)."""

    column: str = ""

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self.column not in self._signature_columns:  # else remove_unused_columns drops it
            self._signature_columns = [*self._signature_columns, self.column]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        column = inputs.pop(self.column)[:, 1:]  # aligned with the fused head's log-probs of ids[1:]
        mode = "train" if self.model.training else "eval"

        def reweight(module, args, kwargs, outputs):
            if kwargs.get("fused_lm_head"):
                weights = self.token_weights(outputs.log_probs.detach(), column, outputs.label_mask, mode)
                outputs.log_probs = outputs.log_probs * weights.detach()
            return outputs

        handle = model.register_forward_hook(reweight, with_kwargs=True)
        try:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            handle.remove()


register("sft")(SFT)
