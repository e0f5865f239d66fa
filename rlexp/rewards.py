"""The TRL reward function around `env.score`, to TRL 1.16's GRPOTrainer reward-function contract."""

from __future__ import annotations

import json
from collections import Counter
from typing import Optional

from rlexp import envs
from rlexp.envs import Score

_ENV_CACHE: dict[tuple, envs.Env] = {}


def completion_text(completion) -> str:
    """TRL passes completions as strings or as chat messages; both become the answer text."""
    if isinstance(completion, str):
        return completion
    return completion[-1]["content"] if completion else ""


def message_text(messages) -> str:
    """A prompt or transcript as text: a string as it is; chat messages as their contents (text parts only), each
    after its role when there are several."""
    if isinstance(messages, str):
        return messages

    def content(message) -> str:
        parts = message["content"]
        return parts if isinstance(parts, str) else "".join(p.get("text") or "" for p in parts)

    if len(messages) == 1:
        return content(messages[0])
    return "\n\n".join(f"{m['role']}: {content(m)}" for m in messages)


class EnvReward:
    """A picklable reward function: it holds the env's name and knobs, not the env itself.

    After each call, `last_feedback` and `last_success` hold every completion's `Score.feedback` and `Score.success`
    ("" feedback when solved), for trainers whose teacher reads them (algo=sdpo), and `last_rows` one row per
    completion (prompt, completion, reward, success, feedback, category) for the completion tables (rlexp/tracking.py).

    Multi-turn rollouts arrive already played and scored, as an `episode` column (rlexp/episodes.py): each is
    rewarded with its return, `episode_return` ("sum" or "final") discounted per attempt by `gamma`."""

    def __init__(self, env_name: str, episode_return: str = "sum", gamma: float = 1.0, **knobs):
        self.env_name, self.knobs = env_name, knobs
        self.episode_return, self.gamma = episode_return, gamma
        self.__name__ = f"{env_name}_reward"
        self.last_feedback: Optional[list[str]] = None
        self.last_success: Optional[list[bool]] = None
        self.last_rows: Optional[list[dict]] = None

    @classmethod
    def for_env(cls, env: envs.Env, **returns) -> "EnvReward":
        """The reward of `env` as configured; `returns` are `episode_return` and `gamma` for multi-turn episodes."""
        return cls(env.name, **returns, **{k: v for k, v in env.knobs().items() if k != "name"})

    @property
    def env(self) -> envs.Env:
        key = (self.env_name, json.dumps(self.knobs, sort_keys=True, default=str))  # knobs may hold lists
        if key not in _ENV_CACHE:
            _ENV_CACHE[key] = envs.make(self.env_name, **self.knobs)
        return _ENV_CACHE[key]

    def __call__(self, prompts, completions, log_extra=None, log_metric=None, **columns) -> list[Optional[float]]:
        n = len(completions)
        # keep the per-sample dataset columns; drop trainer_state and other non-column arguments
        columns = {k: v for k, v in columns.items() if isinstance(v, list) and len(v) == n}
        played = columns.pop("episode", None)
        if played is not None:  # the episode's last attempt speaks for it (feedback, category)
            scores = [
                Score(e.episode_return(self.episode_return, self.gamma), e.solved, e.scores[-1].feedback, e.scores[-1].info)
                for e in played
            ]
        else:
            rows = [{k: v[i] for k, v in columns.items()} for i in range(n)]
            scores = self.env.score_batch([completion_text(c) for c in completions], rows)
        self.last_feedback = ["" if s.success else s.feedback for s in scores]
        self.last_success = [bool(s.success) for s in scores]
        self.last_rows = [
            {"prompt": message_text(p), "completion": message_text(c), "reward": s.reward, "success": bool(s.success),
             "feedback": s.feedback, "category": s.info.get("category", "")}
            for p, c, s in zip(prompts, completions, scores)
        ]  # fmt: skip
        if log_extra:
            log_extra("category", [s.info.get("category", "") for s in scores])
            log_extra("feedback", [s.feedback for s in scores])
        if log_metric:
            log_metric(f"{self.env_name}/success", sum(s.success for s in scores) / max(n, 1))
            for category, count in Counter(s.info.get("category", "") for s in scores).items():
                if category:
                    log_metric(f"{self.env_name}/category/{category}", count / n)
            if played is not None:
                log_metric(f"{self.env_name}/attempts", sum(e.attempts for e in played) / n)
                log_metric(f"{self.env_name}/first_try_success", sum(e.scores[0].success for e in played) / n)
            if "batch_wall_ms" in scores[0].info:
                log_metric(f"{self.env_name}/reward_wall_ms", scores[0].info["batch_wall_ms"])
        # None (a broken row, not a bad answer): TRL leaves the sample out of the group baseline
        return [None if s.reward is None else float(s.reward) for s in scores]
