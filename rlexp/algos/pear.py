"""PEAR: SFT reweighted by importance ratios, so that it prepares for the RL that follows.

"Good SFT Optimizes for SFT, Better SFT Prepares for Reinforcement Learning" (arXiv 2602.01058). The data were
written by a behaviour policy pi_beta; the policy pi_theta will next learn from its own rollouts. Each trained
token's NLL is multiplied by a stop-gradient weight, the off-policy correction of how likely pi_theta is to
reach what follows it. Over the T trained tokens t of one example:

    delta_t = clip(log pi_theta(y_t | s_t) - log pi_beta(y_t | s_t), lo_delta, hi_delta)     (pi_theta detached)

    token (default):  log G_t = (T - t) log gamma + sum_{j > t} delta_j      (its own ratio excluded: y_t is given)
    block of size B:  log G_t = (T - e_k) log gamma + sum_{blocks m > k} sum_{j in m} delta_j   (t in block k,
                      e_k its last token; B = 1 is the token level)
    sequence:         log G_t = sum_j delta_j                                (the same for every token)

    G_t = exp(clip(log G_t, lo_G, hi_G))
    loss = sum_t sg[G_t] * (-log pi_theta(y_t | s_t)) / (number of trained tokens)      (G = 1: plain SFT)

T - t counts trained tokens, not positions, so padding and prompt length never change a weight. Defaults
(gamma 0.999, B 4, delta in [-0.08, 0.3], log G in [-10, 5]) are the paper's as third-party readings of its
sections 3-4 report them (the authors published no code). The behaviour log-probs come
from `rlexp.behaviour`: sampled by `algo.behaviour_model` and cached in the stage's directory, or read from
`algo.behaviour_data`. The override is one forward hook that reweights TRL's per-token log-probs before its own
NLL sums them (rlexp/trainers/pear.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rlexp.algos import register
from rlexp.algos.sft import SFT
from rlexp.errors import ConfigError

LEVELS = ("token", "block", "sequence")


@dataclass
class PEAR(SFT):
    learning_rate: float = 1e-5
    # > PEAR (arXiv 2602.01058)
    # token (suffix weights, the paper's recommendation) | block | sequence
    level: str = "token"
    # discount of the suffix log-ratio sum (token level)
    gamma: float = 0.999
    # tokens per block (block level)
    block_size: int = 4
    # [low, high] bounds of each token's log-ratio delta before it is summed
    delta_clip: list = field(default_factory=lambda: [-0.08, 0.3])
    # [low, high] bounds of each log-weight
    log_weight_clip: list = field(default_factory=lambda: [-10.0, 5.0])
    # > where the behaviour log-probs come from
    # a saved dataset with input_ids, completion_mask, behavior_logps (e.g. an earlier run's <stage>/behaviour)
    behaviour_data: str = ""
    # else: the model that samples the demonstrations (a checkpoint dir or a hub id; same tokenizer as the policy)
    behaviour_model: str = ""
    behaviour_samples: int = 4  # per prompt
    # sampling temperature of the behaviour model (its log-probs are taken at it)
    behaviour_temperature: float = 1.0
    # tokens a behaviour sample may have
    behaviour_max_new_tokens: int = 256
    behaviour_prompts: int = 0  # prompts of the env's data_split to sample for; 0 = all
    # correct (rejection sampling by env.score) | all
    behaviour_keep: str = "correct"

    def check(self, world_size: int) -> None:
        super().check(world_size)
        if self.loss_type != "nll":
            raise ConfigError("algo=pear reweights the NLL: algo.loss_type must be nll")
        if self.level not in LEVELS:
            raise ConfigError(f"algo.level must be one of {', '.join(LEVELS)}; got {self.level!r}")
        if not 0 < self.gamma <= 1:
            raise ConfigError(f"algo.gamma must be in (0, 1]; got {self.gamma}")
        if self.block_size < 1:
            raise ConfigError(f"algo.block_size must be at least 1; got {self.block_size}")
        for name in ("delta_clip", "log_weight_clip"):
            low_high = getattr(self, name)
            if len(low_high) != 2 or not low_high[0] <= 0 <= low_high[1]:
                raise ConfigError(f"algo.{name} must be [low, high] with low <= 0 <= high; got {list(low_high)}")
        if self.behaviour_keep not in ("correct", "all"):
            raise ConfigError(f"algo.behaviour_keep must be correct or all; got {self.behaviour_keep!r}")
        if not self.behaviour_data and not self.behaviour_model:
            raise ConfigError(
                "algo=pear needs behaviour log-probs: set algo.behaviour_model (a checkpoint or hub id "
                "that samples the demonstrations) or algo.behaviour_data (a saved behaviour dataset)"
            )
        for name in ("packing", "padding_free", "use_liger_kernel"):
            if self.trl.get(name):
                raise ConfigError(f"algo=pear does not support algo.trl.{name}: the weights need whole, unpacked examples")

    def demonstrations(self, tokenizer, env, out_dir: Path):
        from rlexp import behaviour

        if self.behaviour_data:
            return behaviour.load_demonstrations(self.behaviour_data)
        cache = out_dir / "behaviour"
        if cache.exists():
            return behaviour.load_demonstrations(str(cache))
        from transformers import AutoModelForCausalLM

        try:
            model = AutoModelForCausalLM.from_pretrained(self.behaviour_model)
        except OSError as exc:
            raise ConfigError(f"algo.behaviour_model={self.behaviour_model}: {str(exc).splitlines()[0]}") from None
        data = behaviour.sample_demonstrations(
            model,
            tokenizer,
            env,
            self.data_split,
            self.behaviour_samples,
            self.behaviour_temperature,
            self.behaviour_max_new_tokens,
            keep=self.behaviour_keep,
            limit=self.behaviour_prompts,
        )
        data.save_to_disk(str(cache))
        return data

    def build_trainer(self, model, tokenizer, env, args):
        from rlexp.trainers.pear import PEARTrainer
        from rlexp.trainers.sft import LogpsCollator

        data = self.demonstrations(tokenizer, env, Path(args.output_dir))
        longest = max(len(ids) for ids in data["input_ids"])
        if longest > self.max_length:  # TRL would cut input_ids but not behavior_logps: refuse instead
            raise ConfigError(
                f"algo.max_length={self.max_length} is shorter than the longest behaviour sample "
                f"({longest} tokens); raise it (with model=tiny, also model.max_position_embeddings)"
            )
        args.completion_only_loss = True  # train the answer only: the behaviour log-probs cover nothing else
        collator = LogpsCollator(pad_token_id=tokenizer.pad_token_id)
        return PEARTrainer(
            model=model, args=args, train_dataset=data, processing_class=tokenizer, data_collator=collator, pear=self
        )


register("pear")(PEAR)
