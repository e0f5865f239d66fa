"""PEAR's weights and trainer; the algorithm, its math and its hyperparameters are rlexp/algos/pear.py."""

from __future__ import annotations

import math

import torch

from rlexp.algos.pear import PEAR
from rlexp.trainers.sft import WeightedSFTTrainer


def reverse_cumsum(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1).cumsum(-1).flip(-1)


def pear_log_weights(
    logp_theta: torch.Tensor, logp_beta: torch.Tensor, mask: torch.Tensor, algo: PEAR
) -> tuple[torch.Tensor, torch.Tensor]:
    """(clipped log G, unclipped delta), both [batch, length] and 0 where `mask` is 0. Inputs are aligned
    per token: log-probs of the same token under pi_theta and pi_beta, and 1 where the token is trained. The level,
    gamma, block size and clips are `algo`'s."""
    level, block_size = algo.level, algo.block_size
    mask = mask.to(torch.float32)
    raw_delta = (logp_theta.detach().float() - logp_beta.float()) * mask
    delta = raw_delta.clamp(*algo.delta_clip) * mask
    log_gamma = math.log(algo.gamma)
    if level == "sequence":
        log_g = delta.sum(-1, keepdim=True).expand_as(delta)
    else:
        size = 1 if level == "token" else block_size
        rank = (mask.cumsum(-1) - 1).clamp(min=0)  # position among the example's trained tokens, from 0
        total = mask.sum(-1, keepdim=True)  # T
        block = torch.div(rank, size, rounding_mode="floor").long()
        n_blocks = int(block.max().item()) + 1 if block.numel() else 1
        rho = torch.zeros(delta.shape[0], n_blocks, dtype=delta.dtype, device=delta.device).scatter_add(-1, block, delta)
        later = (reverse_cumsum(rho) - rho).gather(-1, block)  # sum over the blocks after this token's
        last_in_block = torch.minimum((block + 1) * size, total.long()) - 1  # e_k, from 0
        log_g = (total - 1 - last_in_block) * log_gamma + later
    log_g = log_g.clamp(*algo.log_weight_clip) * mask
    return log_g, raw_delta


class PEARTrainer(WeightedSFTTrainer):
    """`SFTTrainer` whose per-token log-probs are multiplied by the PEAR weight before TRL's NLL sums them."""

    column = "behavior_logps"

    def __init__(self, *args, pear: PEAR, **kwargs):
        self.pear = pear
        super().__init__(*args, **kwargs)

    def token_weights(self, log_probs, behaviour_logps, label_mask, mode):
        log_g, raw_delta = pear_log_weights(log_probs, behaviour_logps, label_mask, self.pear)
        weights = log_g.exp() * label_mask
        self._log_weights(mode, log_g, raw_delta, weights, label_mask)
        return weights

    @torch.no_grad()
    def _log_weights(self, mode, log_g, raw_delta, weights, mask) -> None:
        mask = mask.bool()
        if not mask.any():
            return
        w, lg, d = weights[mask], log_g[mask], raw_delta[mask]
        lo_d, hi_d = self.pear.delta_clip
        lo_g, hi_g = self.pear.log_weight_clip
        metrics = {
            "pear/weight_mean": w.mean(),
            "pear/weight_min": w.min(),
            "pear/weight_max": w.max(),
            "pear/frac_at_floor": (lg <= lo_g).float().mean(),
            "pear/frac_at_ceiling": (lg >= hi_g).float().mean(),
            "pear/delta_mean": d.mean(),
            "pear/frac_delta_clipped": ((d < lo_d) | (d > hi_d)).float().mean(),
            # Kish's effective sample size as a share of the tokens: 1 when all weights are equal
            "pear/ess": w.sum() ** 2 / (w.pow(2).sum() * w.numel()),
        }
        for name, value in metrics.items():
            self._metrics[mode][name].append(value.item())
