"""iw-SFT's weights and trainer; the algorithm, its math and its hyperparameters are rlexp/algos/iwsft.py."""

from __future__ import annotations

import torch

from rlexp.algos.iwsft import IWSFT
from rlexp.trainers.sft import WeightedSFTTrainer


def iwsft_weights(logp_theta: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor, algo: IWSFT) -> torch.Tensor:
    """Per-token weights [batch, length], 0 where `mask` is 0; inputs aligned per token, pi_theta detached; the
    level, temperature and clips are `algo`'s."""
    mask = mask.to(torch.float32)
    log_ratio = (logp_theta.detach().float() - logp_ref.float()) * mask
    if algo.level == "token":
        return log_ratio.exp().clamp(*algo.token_clip) * mask
    mean = log_ratio.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1)
    return (algo.temp * mean).exp().clamp(*algo.sequence_clip) * mask


class IWSFTTrainer(WeightedSFTTrainer):
    """`SFTTrainer` whose per-token log-probs are multiplied by the iw-SFT weight before TRL's NLL sums them."""

    column = "ref_logps"

    def __init__(self, *args, iwsft: IWSFT, **kwargs):
        self.iwsft = iwsft
        super().__init__(*args, **kwargs)

    def token_weights(self, log_probs, ref_logps, label_mask, mode):
        weights = iwsft_weights(log_probs, ref_logps, label_mask, self.iwsft)
        mask = label_mask.bool()
        if mask.any():
            w = weights[mask]
            cap = self.iwsft.token_clip[1] if self.iwsft.level == "token" else self.iwsft.sequence_clip[1]
            for name, value in (
                ("iwsft/w_mean", w.mean()),
                ("iwsft/w_max", w.max()),
                ("iwsft/frac_w_at_cap", (w >= cap).float().mean()),
            ):
                self._metrics[mode][name].append(value.item())
        return weights
