"""The registries, by their properties: every registered name has its YAML and every YAML its name,
so adding an algorithm or an environment (one module, one YAML) breaks no test here."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from rlexp import algos, envs
from rlexp.__main__ import CONF_DIR
from rlexp.registry import Registry


@pytest.mark.parametrize("group,registry", [("algo", algos), ("env", envs)])
def test_every_registered_name_has_its_yaml_and_every_yaml_a_registered_schema(group, registry):
    names = registry.names()
    assert names == sorted(set(names)) and names
    for name in names:
        cls = algos.algo_class(name) if group == "algo" else envs.env_class(name)
        assert cls.__module__.startswith(f"rlexp.{group}s."), f"{name} is registered outside rlexp.{group}s"
    options = {p.stem for p in Path(CONF_DIR, group).glob("*.yaml")}
    for path in Path(CONF_DIR, group).glob("*.yaml"):
        schema = yaml.safe_load(path.read_text())["defaults"][0]
        if schema in options:  # an alias (env=code is env=livecode)
            continue
        assert schema.startswith(f"/schema/{group}/") and schema.endswith("@_here_"), path
        assert schema[len(f"/schema/{group}/") : -len("@_here_")] in names, f"{path} names an unregistered schema"
    yaml_names = {yaml.safe_load(p.read_text()).get("name") for p in Path(CONF_DIR, group).glob("*.yaml")}
    assert set(names) <= yaml_names, f"registered without a YAML: {set(names) - yaml_names}"


def test_a_name_registered_twice_is_refused():
    registry = Registry("algorithm", "rlexp.algos", "schema/test_registry")
    registry.register("x")(dataclasses.make_dataclass("A", []))
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("x")(dataclasses.make_dataclass("B", []))


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(KeyError, match=f"valid: {', '.join(algos.names())}"):
        algos.algo_class("nope")


def test_an_environment_must_be_a_dataclass():
    with pytest.raises(TypeError, match="dataclass"):
        envs.register("plain")(type("Plain", (), {}))
