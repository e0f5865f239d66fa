"""LUFFY's policy shaping and trainer; the algorithm, its math and its hyperparameters are rlexp/algos/luffy.py."""

from __future__ import annotations

import math

import torch

from rlexp.algos.luffy import prompt_key
from rlexp.errors import ConfigError
from rlexp.trainers.grpo import GRPOTrainerWithLossHook


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
            answer = self.demonstrations.get(prompt_key(prompts[i]))
            if answer is None:
                continue
            ids = self.processing_class(answer, add_special_tokens=False)["input_ids"][: self.max_completion_length - 1]
            completion_ids[i] = ids + [self.processing_class.eos_token_id]
            completions[i] = [{"role": "assistant", "content": answer}] if isinstance(completions[i], list) else answer
            if logprobs is not None:  # vLLM's sampling log-probs: none for a demonstration, so no IS correction (ratio 1)
                logprobs[i] = [math.nan] * len(completion_ids[i])
            if tool_mask is not None:
                tool_mask[i] = [1] * len(completion_ids[i])
            self._demo_rows[i] = True
        return tuple(out)

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        device = output["completion_ids"].device
        demo = torch.tensor(self._demo_rows or [False] * len(output["completion_ids"]), device=device)
        output["demo_mask"] = demo
        mode = "train" if self.model.training else "eval"
        if self.model.training:  # the completion tables' own column (rlexp/tracking.py)
            self.rollout_columns = {"demonstration": demo.tolist()}
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
