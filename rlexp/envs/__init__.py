"""Environments, found by name.

    env = rlexp.envs.make("generalpoints", num_cards=3, target=12)
    row = env.dataset("train")[0]
    env.score(completion, row)       # -> Score(reward, success, feedback, info)

Each module in this package registers its environment with `@register("name")`; importing
the package imports them all, so a new environment is one module plus one YAML.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

from rlexp.envs.base import Env, Score

_REGISTRY: dict[str, type[Env]] = {}


def register(name: str):
    def wrap(cls: type[Env]) -> type[Env]:
        if name in _REGISTRY:
            raise ValueError(f"environment {name!r} is registered twice ({_REGISTRY[name].__module__} and {cls.__module__})")
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"environment {name!r} must be a dataclass: its fields are its knobs")
        _REGISTRY[name] = cls
        return cls

    return wrap


def _import_all() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "base":
            importlib.import_module(f"{__name__}.{mod.name}")


def names() -> list[str]:
    _import_all()
    return sorted(_REGISTRY)


def env_class(name: str) -> type[Env]:
    _import_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown environment {name!r}; valid: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def make(name: str, **overrides) -> Env:
    """Build environment `name` with its defaults, changed by `overrides` (its knobs)."""
    cls = env_class(name)
    known = {f.name for f in dataclasses.fields(cls)} - {"name"}
    unknown = sorted(set(overrides) - known - {"name"})
    if unknown:
        raise TypeError(f"environment {name!r} has no knob {', '.join(unknown)}; knobs: {', '.join(sorted(known))}")
    overrides.pop("name", None)
    return cls(name=name, **overrides)


__all__ = ["Env", "Score", "make", "names", "register", "env_class"]
