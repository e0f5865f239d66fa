"""Environments, found by name.

    env = rlexp.envs.make("generalpoints", num_cards=3, target=12)
    row = env.dataset("train")[0]
    env.score(completion, row)       # -> Score(reward, success, feedback, info)

Each module in this package registers its environment with `@register("name")`; importing
the package imports them all, so a new environment is one module plus one YAML.
"""

from __future__ import annotations

import dataclasses

from rlexp.envs.base import Env, Score
from rlexp.registry import Registry

_registry = Registry("environment", __name__, "schema/env")
names = _registry.names
env_class = _registry.get


def register(name: str):
    def wrap(cls: type[Env]) -> type[Env]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"environment {name!r} must be a dataclass: its fields are its knobs")
        return _registry.register(name)(cls)

    return wrap


def make(name: str, **overrides) -> Env:
    """Build environment `name` with its defaults, changed by `overrides` (its knobs)."""
    cls = env_class(name)
    overrides.pop("name", None)
    known = {f.name for f in dataclasses.fields(cls)} - {"name"}
    renamed = [f"{old} is now {new}" for old, new in cls.renamed_knobs.items() if old in overrides]
    if renamed:
        raise TypeError(f"environment {name!r}: knob {', '.join(renamed)}")
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"environment {name!r} has no knob {', '.join(unknown)}; knobs: {', '.join(sorted(known))}")
    attempts = overrides.get("max_attempts", 1)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"max_attempts must be a whole number of at least 1 (1: single-turn); got {attempts!r}.")
    revealing = [k for k, v in overrides.items() if k.startswith("reveal_") and v is True]
    if attempts > 1 and revealing:
        raise ValueError(
            f"{revealing[0]}=true puts the answer in the feedback, which with max_attempts={attempts} the model reads "
            "in its next turn; it is for a self-teacher (algo=sdpo) with max_attempts=1"
        )
    return cls(name=name, **overrides)


__all__ = ["Env", "Score", "make", "names", "register", "env_class"]
