"""Name -> class registries for algorithms and environments, filled by importing their package."""

from __future__ import annotations

import importlib
import pkgutil


class Registry:
    def __init__(self, kind: str, package: str, schema_group: str):
        self.kind, self.package, self.schema_group = kind, package, schema_group
        self._classes: dict[str, type] = {}

    def register(self, name: str):
        """Class decorator: file the class under `name`, and its dataclass as the Hydra schema
        `<schema_group>/<name>` that its YAML names; a second class with the same name is an error."""

        def wrap(cls: type) -> type:
            from hydra.core.config_store import ConfigStore

            if name in self._classes:
                raise ValueError(
                    f"{self.kind} {name!r} is registered twice ({self._classes[name].__module__} and {cls.__module__})"
                )
            self._classes[name] = cls
            ConfigStore.instance().store(group=self.schema_group, name=name, node=cls)
            return cls

        return wrap

    def _import_all(self) -> None:
        package = importlib.import_module(self.package)
        for mod in pkgutil.iter_modules(package.__path__):
            if mod.name != "base":
                importlib.import_module(f"{self.package}.{mod.name}")

    def names(self) -> list[str]:
        self._import_all()
        return sorted(self._classes)

    def get(self, name: str) -> type:
        self._import_all()
        if name not in self._classes:
            raise KeyError(f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(self._classes))}")
        return self._classes[name]
