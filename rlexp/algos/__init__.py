"""Algorithms, found by name.

Each module here defines one algorithm: a dataclass of its hyperparameters (the schema of its
`conf/algo/*.yaml`) registered with `@register("name")`, whose `build_trainer` returns a TRL
trainer. Importing the package imports them all, so a new algorithm is one module plus one YAML.
"""

from __future__ import annotations

import importlib
import pkgutil

from rlexp.algos.base import Algo

_REGISTRY: dict[str, type[Algo]] = {}


def register(name: str):
    def wrap(cls: type[Algo]) -> type[Algo]:
        if name in _REGISTRY:
            raise ValueError(f"algorithm {name!r} is registered twice ({_REGISTRY[name].__module__} and {cls.__module__})")
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


def algo_class(name: str) -> type[Algo]:
    _import_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown algorithm {name!r}; valid: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


__all__ = ["Algo", "algo_class", "names", "register"]
