"""`GRPOTrainer` with one hook for the algorithms that change what its loss sees (rlexp/algos/luffy.py, jackpot.py)."""

from __future__ import annotations

import torch
from trl import GRPOTrainer


class GRPOTrainerWithLossHook(GRPOTrainer):
    """`GRPOTrainer` with one hook for algorithms that change what its loss sees (LUFFY, Jackpot).

    `rewrite_loss_inputs(logps, inputs)` runs once per loss, right after the loss's own forward, with the policy's
    per-token log-probs and the batch the loss reads. It may replace entries of the batch (advantages, old
    log-probs) and returns the log-probs the loss uses. The batch is a shallow copy, so TRL's buffered generation
    batch stays as generated for the next iterations over it (`num_iterations` > 1)."""

    _loss_inputs: dict | None = None

    def rewrite_loss_inputs(self, logps: torch.Tensor, inputs: dict) -> torch.Tensor:
        return logps

    def _compute_loss(self, model, inputs):
        self._loss_inputs = dict(inputs)
        try:
            return super()._compute_loss(model, self._loss_inputs)
        finally:
            self._loss_inputs = None

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        logps, entropies, *rest = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        inputs, self._loss_inputs = self._loss_inputs, None  # the loss's own forward, not TRL's other passes
        if inputs is not None:
            logps = self.rewrite_loss_inputs(logps, inputs)
        return (logps, entropies, *rest)
