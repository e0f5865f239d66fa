"""The Env contract every environment keeps.

An environment is a dataclass whose fields are its knobs (they double as the Hydra schema of
its `conf/env/*.yaml`), registered by name with `@register("name")`. It gives rows to train
on, demonstrations to imitate, and a `score` that never raises.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Optional

if TYPE_CHECKING:  # loaded when rows are built, not when a config is checked
    import datasets


def as_dataset(rows: list[dict]) -> datasets.Dataset:
    """`rows` as a `datasets.Dataset`; the library loads here, on first use, so composing a config never needs it."""
    import datasets

    return datasets.Dataset.from_list(rows)


@dataclass
class Score:
    reward: Optional[float]  # what the trainer optimises; None only when the row itself is broken (TRL skips it)
    success: bool  # what metrics count (never true for partial credit)
    feedback: str  # text a teacher or a next turn can read ("" when solved)
    info: dict = field(default_factory=dict)  # error category, parsed answer, timings: logged, never trained on


@dataclass
class Env(abc.ABC):
    """Base class: subclasses are dataclasses and add their knobs as fields."""

    name: str = ""
    # attempts per episode: after a failed one, its feedback comes back as the next user turn (rlexp/episodes.py);
    # 1 is single-turn. "SFT Memorizes, RL Generalizes" runs GeneralPoints with 5 (arXiv 2501.17161, App. C.3)
    max_attempts: int = 1
    # reward value that means "solved"
    success_value: ClassVar[float] = 1.0
    # row columns evaluation also breaks its metrics down by, e.g. ("difficulty",)
    group_columns: ClassVar[tuple[str, ...]] = ()
    # knobs renamed since an earlier release, {old: new}: the old name is refused with a pointer to the new one
    renamed_knobs: ClassVar[dict[str, str]] = {}

    @abc.abstractmethod
    def dataset(self, split: str) -> datasets.Dataset:
        """Rows with a `prompt` column plus every column `score` needs."""

    @abc.abstractmethod
    def demonstrations(self, split: str) -> datasets.Dataset:
        """Rows with a `messages` column (user prompt, assistant answer) for SFT."""

    @abc.abstractmethod
    def score(self, completion: str, row: dict) -> Score:
        """Reward, success and feedback for one completion; never raises, whatever the text."""

    def score_batch(self, completions: list[str], rows: list[dict]) -> list[Score]:
        """Score many completions; environments whose scoring is slow run them in parallel here."""
        return [self.score(c, r) for c, r in zip(completions, rows)]

    @abc.abstractmethod
    def eval_splits(self) -> list[str]:
        """Names of the splits `evaluate` reports, e.g. ["id", "ood"]."""

    def split_metrics(self, scores: list[Score]) -> dict[str, float]:
        """This environment's own metrics over one evaluation split's scored samples, reported beside the common ones."""
        return {}

    def has_images(self) -> bool:
        """Whether the rows carry an `images` column (TRL's name), which only a model that reads images can take."""
        return False

    def is_success(self, reward: float) -> bool:
        return reward >= self.success_value

    def knobs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
