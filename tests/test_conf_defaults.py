"""conf/: each algorithm's YAML agrees with its dataclass, and config.yaml's comments name every option."""

import dataclasses
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rlexp import algos
from rlexp.__main__ import CONF_DIR
from rlexp.algos.jackpot import DEFAULT_ACTOR
from rlexp.config import algo_from, register_schemas, validate
from rlexp.errors import ConfigError

register_schemas()


def default_of(field: dataclasses.Field):
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


@pytest.mark.parametrize("name", algos.names())
def test_every_value_an_algorithm_yaml_sets_is_its_dataclass_default(name):
    fields = {f.name: f for f in dataclasses.fields(algos.algo_class(name))}
    node = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "algo" / f"{name}.yaml"))
    node.pop("defaults")
    assert node.pop("name") == name
    differ = {key: (value, default_of(fields[key])) for key, value in node.items() if value != default_of(fields[key])}
    assert not differ, f"conf/algo/{name}.yaml and its dataclass disagree (yaml, dataclass): {differ}"


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
    comments = text.split("\nmode:")[0].rsplit("prepare: {}", 1)[1]
    assert re.findall(r"(\w+): ", comments) == modes
