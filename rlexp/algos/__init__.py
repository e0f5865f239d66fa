"""Algorithms, found by name.

Each module here defines one algorithm: a dataclass of its hyperparameters (the schema of its
`conf/algo/*.yaml`) registered with `@register("name")`, whose `build_trainer` returns a TRL
trainer. Importing the package imports them all, so a new algorithm is one module plus one YAML.
"""

from rlexp.algos.base import Algo
from rlexp.registry import Registry

_registry = Registry("algorithm", __name__, "schema/algo")
register = _registry.register
names = _registry.names
algo_class = _registry.get

__all__ = ["Algo", "algo_class", "names", "register"]
