import pytest

from rlexp import algos, envs
from rlexp.registry import Registry


def test_packages_register_every_module_by_name():
    assert algos.names() == ["grpo", "iwsft", "jackpot", "luffy", "pear", "sdpo", "sft"]
    assert envs.names() == ["generalpoints", "livecode", "math", "synlogic"]
    assert algos.algo_class("grpo").__module__ == "rlexp.algos.grpo"


def test_a_name_registered_twice_is_refused():
    registry = Registry("algorithm", "rlexp.algos")
    registry.register("x")(type("A", (), {}))
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("x")(type("B", (), {}))


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(KeyError, match="valid: grpo, iwsft, jackpot, luffy, pear, sdpo, sft"):
        algos.algo_class("nope")


def test_an_environment_must_be_a_dataclass():
    with pytest.raises(TypeError, match="dataclass"):
        envs.register("plain")(type("Plain", (), {}))
