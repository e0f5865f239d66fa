"""LUFFY: GRPO whose groups each hold one demonstration among the policy's own rollouts.

"Learning to Reason under Off-Policy Guidance" (arXiv 2504.14945; the authors' code is ElliottYan/LUFFY,
compute_token_on_off_policy_loss in luffy/verl/verl/mix_src/mix_core_alg.py). Of the G completions per prompt,
the last is replaced by the environment's demonstration; all G are scored by the environment, and the advantages
are group means without std scaling, A_i = r_i - mean_j r_j (`scale_rewards=none`). Per token:

    on-policy rows:      l_t = -A * pi_theta(y_t) / pi_old(y_t)        (the clip is off: epsilon 1e9)
    demonstration rows:  l_t = -A * f(pi_theta(y_t)),  f(p) = p / (p + gamma)    ("policy shaping", gamma 0.1)

f's gradient, gamma / (p + gamma)^2 dp, lifts the demonstration's unlikely tokens rather than its likely ones.
Losses are summed and divided by rows x max_completion_length (`loss_type=dr_grpo`). The override is small
(rlexp/trainers/luffy.py): `_generate` swaps in the demonstrations; on their rows `rewrite_loss_inputs` makes the
log-probs the loss sees log f(p) and the old log-probs 0, so TRL's own ratio exp(log f(p) - 0) is f(p). With no
demonstration it is TRL's GRPO, unchanged.

With vLLM (generation=vllm_*), TRL's importance-sampling correction weighs the policy's rollouts by
pi_trainer / pi_vllm; a demonstration was not sampled by vLLM, so it has no sampling log-probs: they are NaN, which
TRL's correction reads as "unscored" (a ratio of exactly 1), so a demonstration row keeps its shaped loss unweighted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

from rlexp.algos import register
from rlexp.algos.grpo import GRPO
from rlexp.errors import ConfigError


def prompt_key(prompt) -> str:
    """A prompt (a list of messages) as a key of the demonstrations table."""
    return json.dumps(prompt, sort_keys=True)


@dataclass
class LUFFY(GRPO):
    # LUFFY's settings (exp_scripts/train.sh): no std scaling, no clip, a constant normaliser
    scale_rewards: str = "none"
    loss_type: str = "dr_grpo"
    epsilon: float = 1e9
    # f(p) = p / (p + shaping_gamma) on demonstration tokens
    shaping_gamma: float = 0.1

    # a demonstration is one attempt: it has no place in a multi-turn episode
    trains_on_episodes: ClassVar[bool] = False

    def check(self, world_size: int) -> None:
        super().check(world_size)
        if self.shaping_gamma <= 0:
            raise ConfigError(f"algo.shaping_gamma must be positive; got {self.shaping_gamma}")
        if self.num_iterations != 1:
            raise ConfigError("algo=luffy takes one optimisation step per generation batch: algo.num_iterations must be 1")

    def build_trainer(self, model, tokenizer, env, args):
        from rlexp.trainers.luffy import LuffyTrainer

        demos = env.demonstrations(self.data_split)
        table = {prompt_key(m[:-1]): m[-1]["content"] for m in demos["messages"]}
        return self.env_trainer(LuffyTrainer, model, tokenizer, env, args, demonstrations=table, shaping_gamma=self.shaping_gamma)


register("luffy")(LUFFY)
