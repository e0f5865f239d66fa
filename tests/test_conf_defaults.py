"""conf/: each default is said once, in its dataclass, documented there; docs/config.md shows them all;
config.yaml's comments name every option."""

import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rlexp import algos, envs
from rlexp.__main__ import CONF_DIR
from rlexp.algos.jackpot import DEFAULT_ACTOR
from rlexp.config import algo_from, register_schemas, validate
from rlexp.errors import ConfigError

register_schemas()


def default_of(field: dataclasses.Field):
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def group_yamls():
    for group, get in (("algo", algos.algo_class), ("env", envs.env_class)):
        for path in sorted(Path(CONF_DIR, group).glob("*.yaml")):
            node = OmegaConf.to_container(OmegaConf.load(path))
            if "name" in node:  # not an alias such as env=code
                yield pytest.param(path, get(node["name"]), node, id=f"{group}/{path.stem}")


@pytest.mark.parametrize("path,cls,node", list(group_yamls()))
def test_a_group_yaml_sets_only_what_differs_from_its_dataclass_each_with_a_comment(path, cls, node):
    """The dataclass is the one source of each default: a YAML that repeats one can drift from it."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    lines = path.read_text().splitlines()
    for key, value in node.items():
        if key in ("defaults", "name"):
            continue
        assert value != default_of(fields[key]), (
            f"{path.name} repeats {key}'s default {value!r}: say it once, in {cls.__module__}"
        )
        row = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
        assert "#" in lines[row] or lines[row - 1].startswith("#"), f"{path.name}: say why {key} differs from its default"


def reference_script():
    spec = importlib.util.spec_from_file_location("config_reference", Path(CONF_DIR).parent / "scripts" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_config_field_is_documented_where_it_is_defined():
    script = reference_script()
    undocumented = [f"{title}: {key}" for title, cls in script.groups() for key, doc in script.documented(cls).items()
                    if not doc and key != "name"]  # fmt: skip
    assert not undocumented, f"fields without a comment above them or beside them: {undocumented}"


def test_docs_config_md_is_current():
    script = reference_script()
    assert script.OUT.read_text() == script.reference(), "docs/config.md is stale: run python scripts/config_reference.py"


def test_jackpots_actor_default_lives_in_the_dataclass_alone():
    assert "actor" not in OmegaConf.load(Path(CONF_DIR) / "algo" / "jackpot.yaml")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        default = algo_from(compose(config_name="config", overrides=["algo=jackpot"]).algo)
        itself = algo_from(compose(config_name="config", overrides=["algo=jackpot", "algo.actor=self"]).algo)
        reseeded = algo_from(compose(config_name="config", overrides=["algo=jackpot", "algo.actor.init_seed=2"]).algo)
    assert default.actor == DEFAULT_ACTOR and default.actor_model_config().hidden_size == DEFAULT_ACTOR["hidden_size"]
    assert itself.actor == "self" and itself.actor_model_config() is None
    assert reseeded.actor == {**DEFAULT_ACTOR, "init_seed": 2}
    assert algos.algo_class("jackpot")().actor is not algos.algo_class("jackpot")().actor  # no shared mutable default


def test_config_yaml_comments_name_every_algorithm_and_every_mode():
    text = (Path(CONF_DIR) / "config.yaml").read_text()
    (algo_line,) = [line for line in text.splitlines() if line.strip().startswith("- algo:")]
    named = re.findall(r"\w+", algo_line.split("#", 1)[1].split(":")[-1])
    assert sorted(named) == algos.names()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"), pytest.raises(ConfigError) as err:
        validate(compose(config_name="config", overrides=["mode=nope"]))
    modes = str(err.value).split("is not one of ")[1].split(", ")  # the modes rlexp accepts
    comments = text.split("#   mode ", 1)[1].split("#   prepare", 1)[0]
    assert sorted(re.findall(r"(\w+): ", comments)) == sorted(modes)
