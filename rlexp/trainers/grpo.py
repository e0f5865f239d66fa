"""`GRPOTrainer` with one hook for the algorithms that change what its loss sees (rlexp/algos/luffy.py, jackpot.py), and
`GRPOTrainer` on multi-turn episodes (rlexp/algos/grpo.py with env.max_attempts > 1)."""

from __future__ import annotations

import torch
from trl import GRPOTrainer

from rlexp import episodes


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


class EpisodeGRPOTrainer(GRPOTrainer):
    """`GRPOTrainer` whose rollouts are whole multi-turn episodes (rlexp/episodes.py), through TRL's `rollout_func`.

    Each rollout is one episode of up to `env.max_attempts` attempts, the environment's feedback as the user turn
    between them; TRL's `env_mask` keeps the feedback turns out of the loss. The episode's return (`episode_return`,
    `gamma`) is its reward, normalised over the group of episodes of one prompt as GRPO normalises rewards."""

    def __init__(self, *args, episode_env, **kwargs):
        self.episode_env = episode_env
        self._rows: list[dict] | None = None
        super().__init__(*args, rollout_func=self._play_episodes, **kwargs)
        episodes.feedback_turn_ids(
            self._tokenizer, "?"
        )  # a chat template that cannot take feedback turns fails here, not mid-run

    def _generate_and_score_completions(self, inputs):
        self._rows = inputs  # the rollout needs the rows (cards, tests ...) to score attempts; TRL gives it prompts only
        try:
            return super()._generate_and_score_completions(inputs)
        finally:
            self._rows = None

    def _play_episodes(self, prompts: list, trainer) -> dict:
        prompt_ids, images, _ = self._tokenize_prompts(prompts)
        # a vision-language prompt: its images and pixels reach each attempt of its episode
        per_episode = None if images is None else [(own, self._tokenize_prompts([p])[2]) for p, own in zip(prompts, images)]

        def generate(sequences, images=None):
            if images is None:
                return self._generate_single_turn(sequences, None, {}, num_generations=1)
            return self._generate_single_turn(sequences, *episodes.image_inputs(images, sequences), num_generations=1)

        played = episodes.play(
            self.episode_env, self._tokenizer, self._rows, prompt_ids, generate, images=per_episode,
            widest=widest_over_processes(self.accelerator),
        )  # fmt: skip
        return {
            "prompt_ids": [e.prompt_ids for e in played],
            "completion_ids": [e.completion_ids for e in played],
            "logprobs": None if played[0].logprobs is None else [e.logprobs for e in played],
            "env_mask": [e.env_mask for e in played],
            "episode": played,  # reaches the reward function (rlexp/rewards.py) as a column
        }


def widest_over_processes(accelerator):
    """episodes.play's `widest`: the most episodes open on any process, so that every process generates as many
    sequences each round (TRL's generation is collective across processes under a vLLM server, tensor-parallel
    engines and ZeRO-3)."""

    def widest(open_here: int) -> int:
        if accelerator.num_processes == 1:
            return open_here
        return int(accelerator.gather(torch.tensor([open_here], device=accelerator.device)).max())

    return widest
