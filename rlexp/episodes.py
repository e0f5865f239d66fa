"""Multi-turn episodes: an attempt, its score, and, while it is not solved and attempts remain, the environment's
feedback as the next user turn.

The protocol of "SFT Memorizes, RL Generalizes" (Chu et al., arXiv 2501.17161, §5 and App. C.3; the authors follow
Snell et al. 2024): the conversation opens with the task's prompt; after each failed attempt it gains the model's
output as an assistant turn and the verifier's feedback as a user turn (GeneralPoints: "You failed this trial
because {verify_info}"); the episode ends at the first correct attempt or after `env.max_attempts` attempts (the
paper's 5; its code asks a 6th time and never verifies the answer: there is no 6th call here). Every environment
takes part the same way, with its own `Score.feedback` as the user turn; an attempt with no feedback to give (a
broken row) ends its episode.

An episode is kept as tokens, the way the policy saw it: the prompt's tokens, then `completion_ids` = every
attempt's own sampled tokens with the chat template's tokens of each feedback turn between them. `env_mask` is 1 on
the model's tokens and 0 on the template's and the feedback's, so a loss over `completion_ids` weighted by it covers
the assistant turns and nothing else (TRL's `env_mask` contract for `rollout_func`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from rlexp.envs import Env, Score

# new tokens for each sequence of a batch, and their sampling log-probs (or None when the generator has none)
Generate = Callable[[list[list[int]]], tuple[list[list[int]], Optional[list[list[float]]]]]

RETURNS = ("sum", "final")


@dataclass
class Episode:
    row: dict
    messages: list  # the transcript: the prompt's messages, then assistant and user-feedback turns
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    logprobs: Optional[list[float]] = None
    scores: list[Score] = field(default_factory=list)  # one per attempt

    @property
    def solved(self) -> bool:
        return any(s.success for s in self.scores)

    @property
    def attempts(self) -> int:
        return len(self.scores)

    def episode_return(self, kind: str = "sum", gamma: float = 1.0) -> Optional[float]:
        """`sum`: sum over attempts t = 1.. of gamma^(t-1) r_t; `final`: 1 if an attempt succeeded, else 0.
        None when an attempt could not be scored (a broken row): TRL leaves the episode out of its group."""
        if any(s.reward is None for s in self.scores):
            return None
        if kind == "final":
            return 1.0 if self.solved else 0.0
        return float(sum(gamma**t * s.reward for t, s in enumerate(self.scores)))


def feedback_turn_ids(tokenizer, feedback: str) -> list[int]:
    """The chat template's tokens after an assistant turn's end-of-turn token, through a user turn holding `feedback`
    and the opening of the next assistant turn. Found, as TRL finds a tool result's tokens, by rendering a
    conversation with and without the user turn."""
    prefix = [{"role": "user", "content": "?"}, {"role": "assistant", "content": ""}]
    before = tokenizer.apply_chat_template(prefix, tokenize=True, return_dict=False)
    after = tokenizer.apply_chat_template(
        prefix + [{"role": "user", "content": feedback}], tokenize=True, return_dict=False, add_generation_prompt=True
    )
    ends = [i for i, token in enumerate(before) if token == tokenizer.eos_token_id]
    if ends:  # templates that put text after the end-of-turn token ("<|im_end|>\n") render it again below
        before = before[: ends[-1] + 1]
    if after[: len(before)] != before:
        raise ValueError(
            "this model's chat template renders an earlier assistant turn differently once a user turn follows it, "
            "so its feedback turns cannot be appended token by token; use env.max_attempts=1 with this model"
        )
    return after[len(before) :]


def image_inputs(prompt_images: list[tuple[list, dict]], sequences: list[list[int]]) -> tuple[list, dict]:
    """The images of a batch of attempts, and the processor's fields for them as one batched call returns them.

    `prompt_images[k]` is sequence k's episode's: its prompt's images and the processor's other outputs for that
    prompt alone. Image fields (pixels, grids) come one image after the other; per-token ones (mm_token_type_ids)
    one row per sequence, 0 (text) over the attempts and feedback after the prompt, unpadded."""
    fields = {}
    for key in prompt_images[0][1]:
        parts = [own[key] for _, own in prompt_images]
        if isinstance(parts[0], list) and isinstance(parts[0][0], list):
            fields[key] = [part[0] + [0] * (len(seq) - len(part[0])) for part, seq in zip(parts, sequences)]
        elif isinstance(parts[0], torch.Tensor):
            fields[key] = torch.cat(parts)
        else:
            fields[key] = np.concatenate(parts)
    return [images for images, _ in prompt_images], fields


def play(
    env: Env,
    tokenizer,
    rows: list[dict],
    prompt_ids: list[list[int]],
    generate: Generate,
    seeds: Optional[list[list[int]]] = None,
    images: Optional[list[tuple[list, dict]]] = None,
    widest: Optional[Callable[[int], int]] = None,
) -> list[Episode]:
    """One episode per row (rows[i] opens with prompt_ids[i]), played in lockstep: each round generates one attempt
    for every episode still open, in one `generate` call, and scores them in one `env.score_batch`.

    With `seeds` (seeds[i][t]: episode i's seed for attempt t + 1) `generate` also gets the batch's seeds, as its
    second argument; with `images` (images[i]: episode i's prompt images and the processor's outputs for them, a
    vision-language prompt) it also gets `images=` the batch's, so each attempt sees its own episode's image.
    `widest(n)`, where the processes generate together (a vLLM server, tensor-parallel engines, ZeRO-3's gathered
    weights), takes this process's number of open episodes and returns the largest over the processes: every process
    then generates that many sequences each round (copies of one of its own, discarded) until none is left open."""
    max_attempts = env.max_attempts
    episodes = [Episode(row, list(row["prompt"]), list(ids)) for row, ids in zip(rows, prompt_ids)]
    open_ = list(episodes)
    index = {id(e): i for i, e in enumerate(episodes)}
    for attempt in range(1, max_attempts + 1):
        width = len(open_) if widest is None else widest(len(open_))
        if not width:
            break
        # an episode fills the batch up to `width`: a closed one's transcript when this process has none open
        batch = open_ + [open_[0] if open_ else episodes[0]] * (width - len(open_))
        sequences = [e.prompt_ids + e.completion_ids for e in batch]
        extra = {} if images is None else {"images": [images[index[id(e)]] for e in batch]}
        if seeds is None:
            new_ids, new_logprobs = generate(sequences, **extra)
        else:
            new_ids, new_logprobs = generate(sequences, [seeds[index[id(e)]][attempt - 1] for e in batch], **extra)
        new_ids = new_ids[: len(open_)]
        texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in new_ids]
        scores = env.score_batch(texts, [e.row for e in open_]) if open_ else []
        still_open = []
        for k, (episode, ids, text, score) in enumerate(zip(open_, new_ids, texts, scores)):
            ids = list(ids)
            episode.completion_ids += ids
            episode.env_mask += [1] * len(ids)
            if new_logprobs is not None:  # the generator's own (vLLM's); the same generator plays every attempt
                episode.logprobs = (episode.logprobs or []) + list(new_logprobs[k])
            episode.scores.append(score)
            episode.messages.append({"role": "assistant", "content": text})
            if score.success or score.reward is None or not score.feedback or attempt == max_attempts:
                continue
            episode.messages.append({"role": "user", "content": score.feedback})
            bridge = feedback_turn_ids(tokenizer, score.feedback)
            if not ids or ids[-1] != tokenizer.eos_token_id:  # a truncated attempt: its turn is closed for it
                bridge = [tokenizer.eos_token_id] + bridge
            episode.completion_ids += bridge
            episode.env_mask += [0] * len(bridge)
            if episode.logprobs is not None:
                episode.logprobs += [0.0] * len(bridge)
            still_open.append(episode)
        open_ = still_open
    return episodes
