"""iw-SFT: SFT on curated data read as RL with reward 1, tightened by importance weights.

"Supervised Fine Tuning on Curated Data is Reinforcement Learning (and can be improved)" (arXiv 2507.12856;
the weights below are those of the authors' code, emmyqin/iw_sft, bounding_trainers.py, IwSFTLoss).
SFT on successes maximises a lower bound of the RL objective E[r]; weighting each demonstration by how much more
likely the current policy finds it than the frozen reference (the model this stage starts from) tightens it:

    sequence (default):  w_i = clamp(exp(temp * mean_t [log pi_theta(y_it) - log pi_ref(y_it)]), 0, 16)
    token:               w_it = clamp(exp(log pi_theta(y_it) - log pi_ref(y_it)), 0.2, 1.8)

    loss = sum_i w_i * sum_t -log pi_theta(y_it) / (number of trained tokens)         (w detached)

At the first step pi_theta = pi_ref, so w = 1 and iw-SFT starts as plain SFT. The reference log-probs are
computed once, before training, on exactly the ids trained on (`ref_logps`), and the weights reach TRL's NLL
through the same one-hook override as PEAR.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rlexp import behaviour
from rlexp.algos import register
from rlexp.algos.sft import SFT, LogpsCollator, WeightedSFTTrainer
from rlexp.errors import ConfigError


def iwsft_weights(
    logp_theta: torch.Tensor,
    logp_ref: torch.Tensor,
    mask: torch.Tensor,
    *,
    level: str = "sequence",
    temp: float = 1.0,
    sequence_clip=(0.0, 16.0),
    token_clip=(0.2, 1.8),
) -> torch.Tensor:
    """Per-token weights [batch, length], 0 where `mask` is 0; inputs aligned per token, pi_theta detached."""
    mask = mask.to(torch.float32)
    log_ratio = (logp_theta.detach().float() - logp_ref.float()) * mask
    if level == "token":
        return log_ratio.exp().clamp(*token_clip) * mask
    mean = log_ratio.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1)
    return (temp * mean).exp().clamp(*sequence_clip) * mask


class IWSFTTrainer(WeightedSFTTrainer):
    """`SFTTrainer` whose per-token log-probs are multiplied by the iw-SFT weight before TRL's NLL sums them."""

    column = "ref_logps"

    def __init__(self, *args, iwsft: "IWSFT", **kwargs):
        self.iwsft = iwsft
        super().__init__(*args, **kwargs)

    def token_weights(self, log_probs, ref_logps, label_mask, mode):
        weights = iwsft_weights(
            log_probs,
            ref_logps,
            label_mask,
            level=self.iwsft.level,
            temp=self.iwsft.temp,
            sequence_clip=tuple(self.iwsft.sequence_clip),
            token_clip=tuple(self.iwsft.token_clip),
        )
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


@dataclass
class IWSFT(SFT):
    learning_rate: float = 1e-5
    # > iw-SFT (arXiv 2507.12856)
    # sequence (length-normalised ratio, as the paper's code) | token
    level: str = "sequence"
    # temperature of pi_theta and pi_ref in the weight
    temp: float = 1.0
    # [low, high] bounds of the sequence-level weight
    sequence_clip: list = field(default_factory=lambda: [0.0, 16.0])
    # [low, high] bounds of each token-level weight
    token_clip: list = field(default_factory=lambda: [0.2, 1.8])

    def check(self, world_size: int) -> None:
        super().check(world_size)
        if self.loss_type != "nll":
            raise ConfigError("algo=iwsft reweights the NLL: algo.loss_type must be nll")
        if self.level not in ("sequence", "token"):
            raise ConfigError(f"algo.level must be sequence or token; got {self.level!r}")
        for name in ("sequence_clip", "token_clip"):
            low_high = getattr(self, name)
            if len(low_high) != 2 or not 0 <= low_high[0] <= 1 <= low_high[1]:
                raise ConfigError(f"algo.{name} must be [low, high] with 0 <= low <= 1 <= high; got {list(low_high)}")
        for name in ("packing", "padding_free", "use_liger_kernel"):
            if self.trl.get(name):
                raise ConfigError(f"algo=iwsft does not support algo.trl.{name}: the weights need whole, unpacked examples")

    def build_trainer(self, model, tokenizer, env, args):
        data = behaviour.tokenize_demonstrations(tokenizer, env.demonstrations(self.data_split))
        longest = max(len(ids) for ids in data["input_ids"])
        if longest > self.max_length:
            raise ConfigError(
                f"algo.max_length={self.max_length} would cut demonstrations of up to {longest} tokens; "
                "raise it (with model=tiny, also model.max_position_embeddings)"
            )
        # the reference is the model as this stage starts, frozen: its log-probs are taken once, now
        data = behaviour.with_logps(model, data, "ref_logps")
        model.train()
        args.completion_only_loss = True
        collator = LogpsCollator(pad_token_id=tokenizer.pad_token_id, column="ref_logps")
        return IWSFTTrainer(
            model=model, args=args, train_dataset=data, processing_class=tokenizer, data_collator=collator, iwsft=self
        )


register("iwsft")(IWSFT)
