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
through the same one-hook override as PEAR (rlexp/trainers/iwsft.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlexp.algos import register
from rlexp.algos.sft import SFT
from rlexp.errors import ConfigError


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
        from rlexp import behaviour
        from rlexp.trainers.iwsft import IWSFTTrainer
        from rlexp.trainers.sft import LogpsCollator

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
