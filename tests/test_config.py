"""Every YAML composes, and bad configs fail with one clear line before anything loads."""

import importlib.util
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rlexp.__main__ import CONF_DIR, describe, preflight
from rlexp.config import register_schemas, validate
from rlexp.errors import ConfigError
from rlexp.schema import EvalConfig

register_schemas()
GROUPS = ["algo", "env", "model", "launcher", "logger", "generation", "experiment"]


def options(group):
    folder = Path(CONF_DIR, group)
    return sorted(p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml"))


HUB_MODELS = {name for name in options("model") if OmegaConf.load(Path(CONF_DIR, "model", f"{name}.yaml")).get("pretrained")}


def composed(*overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def error_of(*overrides) -> str:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        try:
            validate(compose(config_name="config", overrides=list(overrides)))
        except Exception as exc:
            return describe(exc)
    raise AssertionError(f"{overrides} composed and validated without error")


# experiments: tests/test_experiments.py, on a machine whose hub cache holds their models
@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS if g != "experiment" for o in options(g)])
def test_every_yaml_composes_and_opens_with_a_command(group, option, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lines = Path(CONF_DIR, group, f"{option}.yaml").read_text().splitlines()
    first = lines[1] if lines[0].startswith("# @package") else lines[0]  # Hydra reads @package only on top
    assert first.startswith("# python -m rlexp"), f"{group}/{option}.yaml must open with a command that uses it"
    cfg = composed(f"{group}={option}")
    if group == "model" and cfg.model.pretrained:  # a hub model, offline and not cached
        with pytest.raises(ConfigError, match="model=tiny"):
            validate(cfg)
    elif group == "generation" and option.startswith("vllm") and importlib.util.find_spec("vllm") is None:
        with pytest.raises(ConfigError, match="needs vLLM, which is not installed.*: pip install"):
            validate(cfg)
    elif (group, option) == ("generation", "vllm_server"):  # on a machine with vLLM: it needs a GPU
        with pytest.raises(ConfigError, match="GPU"):
            validate(cfg)
    elif (group, option) == ("launcher", "one_gpu_vllm") and importlib.util.find_spec("vllm") is None:
        with pytest.raises(ConfigError, match="needs vLLM, which is not installed"):  # it chooses generation=vllm_colocate
            validate(cfg)
    elif (group, option) == ("algo", "pear"):  # its behaviour data has no default: it names one
        with pytest.raises(ConfigError, match="needs behaviour log-probs"):
            validate(cfg)
        validate(composed("algo=pear", "algo.behaviour_model=some/checkpoint"))
    else:
        validate(cfg)


def test_defaults_compose_to_grpo_on_generalpoints_with_tiny():
    cfg = composed()
    assert (cfg.algo.name, cfg.env.name, cfg.model.name, cfg.launcher.name) == ("grpo", "generalpoints", "tiny", "local")


def test_unknown_key_names_the_key_and_a_close_match():
    msg = error_of("algo.learning_rat=1e-5")
    assert "algo.learning_rat" in msg and "learning_rate" in msg and "\n" not in msg


def test_wrong_type_is_one_line():
    msg = error_of("algo.max_steps=lots")
    assert "algo.max_steps" in msg and "lots" in msg and "\n" not in msg


@pytest.mark.parametrize("group", ["algo", "env"])
def test_unknown_option_lists_the_valid_names(group):
    msg = error_of(f"{group}=nope")
    assert "nope" in msg and ("grpo" in msg and "sft" in msg if group == "algo" else "generalpoints" in msg)
    assert "schema" not in msg


def test_generation_batch_must_divide_by_num_generations():
    msg = error_of("algo.per_device_train_batch_size=4", "algo.num_generations=3")
    assert "num_generations=3" in msg and "divisible" in msg


def test_bf16_on_a_machine_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert "precision=bf16" in error_of("precision=bf16")


def test_hub_model_offline_names_model_tiny(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    msg = error_of("model=qwen2.5-0.5b-instruct")
    assert "model=tiny" in msg and "Qwen/Qwen2.5-0.5B-Instruct" in msg


def test_bad_env_knob_and_bad_trl_field():
    assert "num_cards" in error_of("env.num_cards=0")
    assert "not_a_field" in error_of("+algo.trl.not_a_field=1")


def test_trl_passthrough_cannot_shadow_a_field_or_the_run():
    assert "use algo.learning_rate" in error_of("+algo.trl.learning_rate=1e-3")
    assert "rlexp sets it" in error_of("+algo.trl.seed=3")


def test_generation_batch_rule_follows_trl():
    assert "steps_per_generation 3" in error_of(
        "+algo.trl.steps_per_generation=3", "algo.per_device_train_batch_size=4", "algo.num_generations=8"
    )
    assert "divisible by per_device_train_batch_size" in error_of(
        "+algo.trl.generation_batch_size=12", "algo.per_device_train_batch_size=8"
    )
    validate(composed("+algo.trl.generation_batch_size=16", "algo.per_device_train_batch_size=8", "algo.num_generations=4"))


def test_eval_k_beyond_samples():
    assert "eval.k" in error_of("eval.k=[1,8]", "eval.num_samples=4")


def test_eval_mode_needs_a_checkpoint():
    assert "checkpoint" in error_of("mode=eval")


def test_discover_mode_checks_its_budget_and_k():
    assert "use algo=sdpo" in error_of("mode=discover")
    assert "multiple of discover.attempts_per_step" in error_of("mode=discover", "algo=sdpo", "discover.budget=10")
    assert "discover.k" in error_of("mode=discover", "algo=sdpo", "discover.k=[1,128]")
    assert "launcher=local" in error_of("mode=discover", "algo=sdpo", "launcher=ddp")
    validate(composed("mode=discover", "algo=sdpo"))


def test_preflight_checks_every_sweep_value(capsys):
    with pytest.raises(SystemExit) as exit_info:
        preflight(["-m", "algo=grpo,nope"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rlexp: error:") and "nope" in err and len(err.splitlines()) == 1


def test_preflight_expands_glob_sweeps(capsys):
    # returns: every experiment composes and validates (pear_then_grpo needs its behaviour model named)
    preflight(["-m", "experiment=glob(*,exclude=pear_then_grpo)"])
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit):
        preflight(["-m", "experiment=glob(*)"])
    assert "needs behaviour log-probs" in capsys.readouterr().err


def test_cli_error_is_one_line_before_anything_loads(cli, tmp_path):
    done = cli("algo.num_generation=4", run_dir=tmp_path / "run")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "algo.num_generation" in done.stderr and "num_generations" in done.stderr
    assert not (tmp_path / "run").exists()


def test_cli_help_lists_groups_and_options(cli):
    done = cli("--help")
    assert done.returncode == 0
    for group in GROUPS:
        assert f"{group}: {', '.join(options(group))}" in done.stdout.splitlines()


def test_a_misspelt_top_level_key_gets_the_nested_key_it_resembles():
    assert error_of("lerning_rate=1e-5").endswith("did you mean algo.learning_rate?")
    assert error_of("num_card=3").endswith("did you mean env.num_cards?")
    assert error_of("sed=1").endswith("did you mean seed?")


def test_a_prepare_stage_error_names_the_key_the_user_types():
    message = error_of("experiment=pear_then_grpo")
    assert "set prepare.pear.behaviour_model" in message and "algo." not in message
    validate(composed("experiment=pear_then_grpo", "prepare.pear.behaviour_model=some/checkpoint"))
    assert error_of("experiment=sft_then_grpo", "prepare.sft.loss_type=nope").startswith("prepare.sft.loss_type=nope")
    assert error_of("algo=sft", "algo.loss_type=nope").startswith("algo.loss_type=nope")


def test_threads_must_be_positive():
    assert "threads=0 must be at least 1" in error_of("threads=0")


def test_completion_table_knobs_must_not_be_negative():
    assert error_of("logger.completions_max_mb=-1") == "logger.completions_max_mb=-1.0 must be 0 or more"


def test_threads_default_shares_the_cores_among_processes():
    from rlexp.config import threads_per_process

    assert threads_per_process(3, 8) == 3
    cores = len(__import__("os").sched_getaffinity(0))
    assert threads_per_process(None, 1) == cores and threads_per_process(None, 10 * cores) == 1


def saved_run(tmp_path, **env) -> Path:
    """A run directory as rlexp leaves it: its resolved config.yaml and a stage's checkpoint."""
    from omegaconf import OmegaConf

    cfg = composed("experiment=demo", "seed=7", *(f"env.{k}={v}" for k, v in env.items()))
    cfg.run_dir = str(tmp_path)
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    checkpoint = tmp_path / "grpo" / "checkpoint"
    checkpoint.mkdir(parents=True)
    (checkpoint / "config.json").write_text("{}")
    return checkpoint


def test_eval_mode_starts_from_the_training_run_and_applies_the_command_line_on_top(tmp_path):
    from rlexp.config import from_training_run

    checkpoint = saved_run(tmp_path)
    job = ["mode=eval", f"checkpoint={checkpoint}"]
    cfg = composed(*job)
    assert from_training_run(cfg, job) is None
    assert (cfg.env.num_cards, cfg.env.target, cfg.env.prompt_style, cfg.eval.max_new_tokens, cfg.seed) == (3, 12, "short", 96, 7)
    validate(cfg)
    job = ["mode=eval", f"checkpoint={checkpoint}", "env.target=24", "eval.num_prompts=5", "seed=1"]
    cfg = composed(*job)
    note = from_training_run(cfg, job)
    assert note == "mode=eval: evaluating with env.target=24; the checkpoint was trained with env.target=12"
    assert (cfg.env.num_cards, cfg.env.target, cfg.eval.num_prompts, cfg.eval.max_new_tokens, cfg.seed) == (3, 24, 5, 96, 1)
    job = ["mode=eval", f"checkpoint={checkpoint}", "env=math"]
    cfg = composed(*job)
    assert from_training_run(cfg, job) == "mode=eval: evaluating on env=math; the checkpoint was trained on env=generalpoints"
    validate(cfg)
    # an experiment chooses only what it sets: sft_then_grpo sets no environment, demo no seed
    job = ["mode=eval", f"checkpoint={checkpoint}", "experiment=sft_then_grpo"]
    cfg = composed(*job)
    assert from_training_run(cfg, job) is None and (cfg.env.num_cards, cfg.seed) == (3, 7)
    job = ["mode=eval", f"checkpoint={checkpoint}", "experiment=demo"]
    cfg = composed(*job)
    assert from_training_run(cfg, job) is None and cfg.seed == 7
    # a checkpoint outside an rlexp run directory: the command line alone
    (tmp_path / "config.yaml").unlink()
    cfg = composed("mode=eval", f"checkpoint={checkpoint}")
    assert from_training_run(cfg, ["mode=eval"]) is None and cfg.env.num_cards == 4


def test_cfg_job_prints_yaml_only_and_checks_the_config_like_a_run(cli):
    import yaml

    done = cli("--cfg", "job", "algo=sft", "logger=none")
    assert done.returncode == 0, done.stderr
    cfg = yaml.safe_load(done.stdout)
    assert cfg["algo"]["name"] == "sft" and cfg["threads"] == 1
    bad = cli("--cfg", "job", "experiment=pear_then_grpo")
    run = cli("experiment=pear_then_grpo")
    assert bad.returncode == run.returncode == 2 and bad.stdout == run.stdout == ""
    assert bad.stderr.strip() == run.stderr.strip().splitlines()[-1]
    assert "prepare.pear.behaviour_model" in bad.stderr


# what a run needs and the command line must not load: a typo's answer would take seconds
TRAINING_LIBRARIES = {"torch", "transformers", "trl", "datasets", "deepspeed", "accelerate", "pyarrow"}
# `python -m rlexp ARGS`, printing at its exit which top-level packages it had imported
WITH_IMPORTS_AT_EXIT = """
import os, runpy, sys
import rlexp.console

def exit_now(code):
    sys.stdout.flush()
    sys.stderr.write("IMPORTED " + " ".join(sorted(sys.modules)) + "\\n")
    sys.stderr.flush()
    os._exit(code)

rlexp.console.exit_now = exit_now
sys.argv[0] = "rlexp"
runpy.run_module("rlexp", run_name="__main__")
"""


@pytest.mark.parametrize(
    "args, code",
    [
        (["algo.learning_rat=1"], 2),
        (["eval.generation=vllm"], 2),
        (["--help"], 0),
        (["--cfg", "job", "algo=sdpo", "env=livecode"], 0),
    ],
)
def test_the_command_line_answers_without_loading_the_training_libraries(args, code):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    done = subprocess.run([sys.executable, "-c", WITH_IMPORTS_AT_EXIT, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == code, done.stderr[-2000:]
    imported = set(done.stderr.rpartition("IMPORTED ")[2].split())
    assert {"hydra", "rlexp.algos.sdpo", "rlexp.envs.livecode"} <= imported  # every algorithm and environment
    assert {m.split(".")[0] for m in imported} & TRAINING_LIBRARIES == set()


def test_a_paper_sized_stage_on_a_cpu_says_what_it_costs_and_the_demo_does_not(monkeypatch):
    import torch

    from rlexp.config import algo_from
    from rlexp.modes.train import cpu_hint

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the hint is for machines without a GPU

    cfg = composed("algo=grpo", "env=generalpoints")
    hint = cpu_hint(cfg, algo_from(cfg.algo))
    assert hint.startswith("no GPU: every step of grpo runs 8 completions of up to 256 tokens") and "experiment=demo" in hint
    cfg = composed("experiment=demo")
    assert cpu_hint(cfg, algo_from(cfg.algo)) is None and cpu_hint(cfg, algo_from(cfg.prepare.sft)) is None


def test_every_mode_validation_accepts_is_a_mode_the_worker_can_run():
    import importlib

    from rlexp import modes

    assert "base" not in modes.names() and "train" in modes.names()
    for name in modes.names():
        assert callable(importlib.import_module(f"rlexp.modes.{name}").main), name
    assert "is not one of " + ", ".join(modes.names()) in error_of("mode=serve")


def test_a_warmup_that_the_schedule_ignores_is_refused():
    assert "use constant_with_warmup" in error_of("algo=sft", "algo.warmup_steps=20")
    validate(composed("algo=sft", "algo.warmup_steps=20", "algo.lr_scheduler_type=constant_with_warmup"))


def test_cfg_job_shows_what_mode_eval_will_run(cli, tmp_path):
    import yaml

    checkpoint = saved_run(tmp_path)
    done = cli("--cfg", "job", "mode=eval", f"checkpoint={checkpoint}", "eval.num_prompts=5")
    assert done.returncode == 0, done.stderr
    cfg = yaml.safe_load(done.stdout)
    assert (cfg["env"]["num_cards"], cfg["env"]["prompt_style"], cfg["seed"], cfg["eval"]["num_prompts"]) == (3, "short", 7, 5)


def test_multi_turn_episodes_train_with_grpo_only_and_never_show_the_answer():
    assert "algo=luffy trains on single attempts" in error_of("algo=luffy", "env.max_attempts=3")
    assert "reveal_solution=true puts the answer in the feedback" in error_of("env.max_attempts=3", "env.reveal_solution=true")
    assert "algo.episode_return=last is not one of sum, final" in error_of("env.max_attempts=3", "algo.episode_return=last")
    assert "max_attempts must be a whole number" in error_of("env.max_attempts=0")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        validate(compose(config_name="config", overrides=["env.max_attempts=5", "algo.episode_return=final", "algo=grpo"]))


def test_chat_template_kwargs_take_plain_values_only():
    assert "model.chat_template_kwargs.tools=[1, 2]" in error_of("+model.chat_template_kwargs.tools=[1,2]")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        validate(compose(config_name="config", overrides=["+model.chat_template_kwargs.enable_thinking=false"]))


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="checks a machine without vLLM")
def test_eval_generation_asks_for_what_it_needs_in_one_line():
    assert 'pip install "trl[vllm]"' in error_of("eval.generation=vllm")
    assert "generation=vllm_server (for evaluation) needs vLLM" in error_of("generation=vllm_server")
    assert "not one of hf, vllm, continuous_batching" in error_of("eval.generation=sglang")
    assert "takes text only" in error_of("eval.generation=continuous_batching", "model=tiny_vl", "env.visual=true")
    assert EvalConfig().engine("vllm_colocate") == EvalConfig().engine("vllm_server") == "vllm"
    assert EvalConfig(generation="hf").engine("vllm_server") == "hf"
    EvalConfig(generation="hf").check("vllm_server", vision=False)  # evaluation does not need vLLM then
