"""The GPU presets: model=<hub model> (dtype, attention kernel, activation checkpointing, Liger) and
launcher=one_gpu_vllm|node8_zero2|node8_zero3. Each is composed as the command line composes it, and its keys are
followed to what loads the model and to the TRL config."""

import importlib.util

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from transformers import MllamaConfig, Qwen2Config

from rlexp import launch, models
from rlexp.config import algo_from, register_schemas, validate
from rlexp.errors import ConfigError
from rlexp.schema import CONF_DIR, ModelConfig, structured

register_schemas()

# the seed papers' models, each a conf/model/ preset
SEED_MODELS = [
    "qwen2.5-1.5b-instruct",
    "qwen2.5-7b-instruct",
    "qwen3-1.7b",
    "qwen3-4b",
    "qwen3-8b",
    "llama-3.2-11b-vision-instruct",
]
GPU_KEYS = ("dtype", "attn_implementation", "activation_checkpointing", "use_liger_kernel")


def composed(*overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize("name", SEED_MODELS)
def test_each_seed_model_preset_says_how_it_runs_on_a_gpu(name):
    written = OmegaConf.load(f"{CONF_DIR}/model/{name}.yaml")
    assert all(key in written for key in GPU_KEYS), f"model={name} leaves one of {GPU_KEYS} unsaid"
    cfg = structured(ModelConfig, composed(f"model={name}").model)
    assert cfg.name == name and cfg.pretrained and cfg.activation_checkpointing and not cfg.use_liger_kernel


class Recorded(Exception):
    """Raised by the stand-in for from_pretrained, with what it was asked for."""


def stand_in(monkeypatch, config):
    """from_pretrained records its keyword arguments (and loads nothing); AutoConfig answers with `config`."""
    calls = []

    def record(cls, source, **kwargs):
        calls.append({"class": cls.__name__, "source": source, **kwargs})
        raise Recorded

    for auto in ("AutoModelForCausalLM", "AutoModelForImageTextToText"):
        monkeypatch.setattr(getattr(models, auto), "from_pretrained", classmethod(record))
    monkeypatch.setattr(models.AutoTokenizer, "from_pretrained", lambda *a, **k: None)
    monkeypatch.setattr(models.AutoProcessor, "from_pretrained", lambda *a, **k: None)
    monkeypatch.setattr(models.AutoConfig, "from_pretrained", lambda *a, **k: config)
    return calls


@pytest.mark.parametrize("name", SEED_MODELS)
@pytest.mark.parametrize("flash", [False, True], ids=["sdpa", "flash_attn-installed"])
def test_the_presets_dtype_and_attention_reach_from_pretrained(monkeypatch, name, flash):
    cfg = structured(ModelConfig, composed(f"model={name}").model)
    vision = name.startswith("llama")
    calls = stand_in(monkeypatch, MllamaConfig() if vision else Qwen2Config())
    monkeypatch.setattr(models, "flash_installed", lambda: flash)
    with pytest.raises(Recorded):
        models.load(cfg)
    (call,) = calls
    assert call["source"] == cfg.pretrained and call["dtype"] == getattr(torch, cfg.dtype)
    assert call["class"] == ("AutoModelForImageTextToText" if vision else "AutoModelForCausalLM")
    # auto: flash attention where it is installed and the model takes it (Mllama does not), else sdpa
    assert call["attn_implementation"] == ("flash_attention_2" if flash and not vision else "sdpa")


def test_a_named_attention_kernel_is_used_as_named_and_tiny_takes_it_too(monkeypatch):
    calls = stand_in(monkeypatch, Qwen2Config())
    with pytest.raises(Recorded):
        models.load(ModelConfig(name="q", pretrained="Qwen/Qwen3-1.7B", attn_implementation="eager", dtype="bfloat16"))
    assert calls[0]["attn_implementation"] == "eager" and calls[0]["dtype"] == torch.bfloat16
    tiny, _ = models.load(
        ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, attn_implementation="eager")
    )
    assert tiny.config._attn_implementation == "eager" and tiny.dtype == torch.float32


@pytest.mark.parametrize("liger", [False, True])
def test_activation_checkpointing_and_liger_reach_the_trl_config(tmp_path, liger):
    cfg = composed("model=qwen2.5-1.5b-instruct", f"model.use_liger_kernel={liger}", "algo=grpo")
    args = algo_from(cfg.algo).training_args(tmp_path, 0, "fp32", model=structured(ModelConfig, cfg.model))
    assert args.activation_checkpointing and args.gradient_checkpointing and args.use_liger_kernel == liger
    plain = algo_from(composed("algo=sft").algo).training_args(
        tmp_path, 0, "fp32", model=structured(ModelConfig, composed().model)
    )
    assert not plain.activation_checkpointing and not plain.use_liger_kernel


@pytest.mark.parametrize("key", ["activation_checkpointing", "gradient_checkpointing", "use_liger_kernel"])
def test_the_model_owns_its_switches_and_algo_trl_is_told_so(key):
    with pytest.raises(ConfigError, match=f"use model.{'use_liger_kernel' if 'liger' in key else 'activation_checkpointing'}"):
        algo_from(composed(f"+algo.trl.{key}=true").algo).trl_kwargs()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.attn_implementation=flash_attention_2"], "needs the flash_attn package, which is not installed"),
        (["model.use_liger_kernel=true"], "needs the liger_kernel package, which is not installed"),
        (["model.attn_implementation=flash2"], "is not one of auto, sdpa, flash_attention_2, eager"),
        (["model.dtype=bfloat16"], "trains only under launcher=zero2|zero3 with precision=bf16"),
        (["model.dtype=bfloat16", "launcher=node8_zero3", "precision=fp32"], "trains only under launcher=zero2|zero3"),
        (["model.dtype=float64"], "is not one of float32, bfloat16, float16"),
    ],
)
def test_gpu_settings_that_cannot_run_are_one_clear_line(monkeypatch, overrides, message):
    monkeypatch.setattr("rlexp.config.installed", lambda package: False)
    with pytest.raises(ConfigError, match=message) as err:
        validate(composed(*overrides), machine=False)
    assert "\n" not in str(err.value)


def test_bf16_weights_train_under_zero_and_are_evaluated_anywhere(tmp_path):
    validate(composed("model.dtype=bfloat16", "launcher=node8_zero3"), machine=False)  # precision auto: bf16 on a GPU
    validate(composed("model.dtype=bfloat16", "launcher=node8_zero2", "precision=bf16"), machine=False)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    validate(composed("model.dtype=bfloat16", "mode=eval", f"checkpoint={checkpoint}"), machine=False)
    if not torch.cuda.is_available():  # precision auto is fp32 here: bf16 weights would train unprotected
        with pytest.raises(ConfigError, match="trains only under"):
            validate(composed("model.dtype=bfloat16", "launcher=node8_zero3"), machine=True)


def test_one_gpu_vllm_chooses_colocated_vllm_and_the_command_line_still_wins():
    cfg = composed("launcher=one_gpu_vllm")
    assert cfg.generation.name == "vllm_colocate" and cfg.launcher.name == "local" and cfg.launcher.num_processes == 1
    for overrides in (["launcher=one_gpu_vllm", "generation=hf"], ["generation=hf", "launcher=one_gpu_vllm"]):
        assert composed(*overrides).generation.name == "hf"
    assert composed("launcher=one_gpu_vllm", "experiment=demo").generation.name == "vllm_colocate"
    validate(composed("launcher=one_gpu_vllm", "generation=hf"), machine=False)
    if importlib.util.find_spec("vllm") is None:  # without vLLM the preset is one line naming it
        with pytest.raises(ConfigError, match="needs vLLM, which is not installed"):
            validate(composed("launcher=one_gpu_vllm"), machine=False)


@pytest.mark.parametrize("stage", [2, 3])
def test_a_node_of_eight_runs_eight_deepspeed_ranks(stage):
    cfg = composed(f"launcher=node8_zero{stage}")
    assert cfg.launcher.name == f"zero{stage}" and cfg.launcher.num_processes == 8 and cfg.generation.name == "hf"
    config = {**OmegaConf.to_container(cfg, resolve=False), "precision": "bf16"}
    settings = launch.accelerate_settings(config, launch.SlurmNodes())
    assert settings["num_processes"] == 8 and settings["distributed_type"] == "DEEPSPEED"
    assert settings["deepspeed_config"]["zero_stage"] == stage and settings["mixed_precision"] == "bf16"
    assert composed(f"launcher=node8_zero{stage}", "launcher.num_processes=4").launcher.num_processes == 4


def test_the_old_algo_activation_checkpointing_points_to_the_model():
    import dataclasses

    from rlexp.algos import algo_class
    from rlexp.config import suggest

    fields = [f.name for f in dataclasses.fields(algo_class("grpo"))]
    assert "activation_checkpointing" not in fields
    assert suggest("activation_checkpointing", "algo", fields) == "model.activation_checkpointing"
    assert suggest("learning_rat", "algo", fields) == "algo.learning_rate" and suggest("nothing_like_it", "algo", fields) is None
