"""LUFFY: GRPO whose groups each hold one demonstration among the policy's own rollouts.

"Learning to Reason under Off-Policy Guidance" (arXiv 2504.14945; the authors' code is ElliottYan/LUFFY,
compute_token_on_off_policy_loss in luffy/verl/verl/mix_src/mix_core_alg.py). Of the G completions per prompt,
the last is replaced by the environment's demonstration; all G are scored by the environment, and the advantages
are group means without std scaling, A_i = r_i - mean_j r_j (`scale_rewards=none`). Per token:

    on-policy rows:      l_t = -A * pi_theta(y_t) / pi_old(y_t)        (the clip is off: epsilon 1e9)
    demonstration rows:  l_t = -A * f(pi_theta(y_t)),  f(p) = p / (p + gamma)    ("policy shaping", gamma 0.1)

f's gradient, gamma / (p + gamma)^2 dp, lifts the demonstration's unlikely tokens rather than its likely ones.
Losses are summed and divided by rows x max_completion_length (`loss_type=dr_grpo`). The override is small:
`_generate` swaps in the demonstrations; on their rows `rewrite_loss_inputs` makes the log-probs the loss sees
log f(p) and the old log-probs 0, so TRL's own ratio exp(log f(p) - 0) is f(p). With no demonstration it is TRL's
GRPO, unchanged.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch

from rlexp.algos import register
from rlexp.algos.grpo import GRPO, GRPOTrainerWithLossHook
from rlexp.errors import ConfigError


def _key(prompt) -> str:
    return json.dumps(prompt, sort_keys=True)


def shaped_logps(logps: torch.Tensor, gamma: float) -> torch.Tensor:
    """log f(p) = log p - log(p + gamma), from log p."""
    return logps - torch.logaddexp(logps, torch.full_like(logps, math.log(gamma)))


class LuffyTrainer(GRPOTrainerWithLossHook):
    """`GRPOTrainer` with one demonstration in each group, shaped as LUFFY does."""

    def __init__(self, *args, demonstrations: dict[str, str], shaping_gamma: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.demonstrations = demonstrations  # prompt (as JSON) -> the demonstration's answer text
        self.shaping_gamma = shaping_gamma
        self._demo_rows: list[bool] = []

    def _generate(self, prompts: list):
        out = list(super()._generate(prompts))
        prompt_ids, completion_ids, tool_mask, completions, logprobs = out[:5]
        group = self.num_generations if self.model.training else self.num_generations_eval
        self._demo_rows = [False] * len(prompts)
        if not self.model.training:
            return tuple(out)
        if len(prompts) % group:
            raise ConfigError(
                f"algo=luffy needs whole groups on each process: {len(prompts)} prompts per generation "
                f"batch is not a multiple of num_generations={group}"
            )
        for i in range(group - 1, len(prompts), group):
            answer = self.demonstrations.get(_key(prompts[i]))
            if answer is None:
                continue
            ids = self.processing_class(answer, add_special_tokens=False)["input_ids"][: self.max_completion_length - 1]
            completion_ids[i] = ids + [self.processing_class.eos_token_id]
            completions[i] = [{"role": "assistant", "content": answer}] if isinstance(completions[i], list) else answer
            if logprobs is not None:
                logprobs[i] = [0.0] * len(completion_ids[i])
            if tool_mask is not None:
                tool_mask[i] = [1] * len(completion_ids[i])
            self._demo_rows[i] = True
        return tuple(out)

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        device = output["completion_ids"].device
        demo = torch.tensor(self._demo_rows or [False] * len(output["completion_ids"]), device=device)
        output["demo_mask"] = demo
        if "importance_sampling_ratio" in output and output["importance_sampling_ratio"] is not None:
            output["importance_sampling_ratio"][demo] = 1.0  # no vLLM correction on a demonstration
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["luffy/demo_fraction"].append(demo.float().mean().item())
        if demo.any():
            self._metrics[mode]["luffy/demo_advantage"].append(output["advantages"][demo].float().mean().item())
        return output

    def rewrite_loss_inputs(self, logps, inputs):
        demo = inputs.get("demo_mask")
        if demo is None or not demo.any():
            return logps
        demo = demo[:, None].expand_as(logps)
        old = inputs.get("old_per_token_logps")
        old = logps.detach() if old is None else old
        # TRL's ratio exp(logps - old) becomes f(p) / 1 on demonstration rows
        inputs["old_per_token_logps"] = torch.where(demo, torch.zeros_like(old), old)
        return torch.where(demo, shaped_logps(logps, self.shaping_gamma), logps)


@dataclass
class LUFFY(GRPO):
    # LUFFY's settings (exp_scripts/train.sh): no std scaling, no clip, a constant normaliser
    scale_rewards: str = "none"
    loss_type: str = "dr_grpo"
    epsilon: float = 1e9
    # f(p) = p / (p + shaping_gamma) on demonstration tokens
    shaping_gamma: float = 0.1

    def check(self, world_size: int) -> None:
        super().check(world_size)
        if self.shaping_gamma <= 0:
            raise ConfigError(f"algo.shaping_gamma must be positive; got {self.shaping_gamma}")
        if self.num_iterations != 1:
            raise ConfigError("algo=luffy takes one optimisation step per generation batch: algo.num_iterations must be 1")
        if self.trl.get("use_vllm"):
            raise ConfigError(
                "algo=luffy swaps demonstrations into groups in HF generation only: algo.trl.use_vllm is not supported yet"
            )

    def build_trainer(self, model, tokenizer, env, args):
        demos = env.demonstrations(self.data_split)
        table = {_key(m[:-1]): m[-1]["content"] for m in demos["messages"]}
        return self.env_trainer(LuffyTrainer, model, tokenizer, env, args, demonstrations=table, shaping_gamma=self.shaping_gamma)


register("luffy")(LUFFY)
