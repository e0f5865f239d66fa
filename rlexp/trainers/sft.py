"""The SFT trainers the SFT family shares (rlexp/algos/sft.py, pear.py, iwsft.py): a collator that carries a per-token
log-prob column, and `SFTTrainer` with per-token weights on its NLL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from trl import SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling


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
