"""The real CLI in a subprocess: SFT and GRPO smoke runs, a sweep, eval mode, the zero2 launch."""

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from conftest import SMALL, run_cli
from rlexp.models import ModelConfig, build_tiny, byte_tokenizer

# a game the tiny model learns in seconds: 3 cards, target 12, the short prompt
EASY_GAME = ["env.num_cards=3", "env.target=12", "env.prompt_style=short", "eval.max_new_tokens=96"]


def ok(done):
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def weights(checkpoint) -> dict[str, torch.Tensor]:
    return load_file(str(Path(checkpoint) / "model.safetensors"))


def initial_weights(run_dir) -> dict[str, torch.Tensor]:
    cfg = OmegaConf.load(Path(run_dir) / "config.yaml").model
    model = build_tiny(ModelConfig(**{k: v for k, v in cfg.items()}), byte_tokenizer())
    return {k: v for k, v in model.state_dict().items()}


def changed(before: dict, after: dict) -> list[str]:
    return [name for name, value in after.items() if name in before and not torch.allclose(before[name], value)]


@pytest.fixture(scope="session")
def sft_checkpoint(tmp_path_factory):
    """A tiny model that has learned the answer format (about 30 s), for GRPO to start from."""
    run_dir = tmp_path_factory.mktemp("sft") / "run"
    ok(run_cli(
        "algo=sft", *SMALL, *EASY_GAME, "model.hidden_size=64", "model.intermediate_size=256",
        "algo.learning_rate=1e-3", "algo.max_steps=150", "algo.per_device_train_batch_size=16", "eval.before=false",
        run_dir=run_dir,
    ))  # fmt: skip
    return run_dir / "sft" / "checkpoint"


def test_sft_smoke_changes_every_parameter_and_writes_the_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    done = ok(run_cli("algo=sft", "algo.max_steps=2", "algo.learning_rate=1e-3", *SMALL, "logger=wandb", run_dir=run_dir))
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "learning_curve.png"):
        assert (run_dir / name).is_file(), name
    before, after = initial_weights(run_dir), weights(run_dir / "sft" / "checkpoint")
    assert set(changed(before, after)) == set(after), "some parameters did not change"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert list(summary["results"]) == ["init", "sft"]
    assert set(summary["results"]["sft"]) == {"id", "ood"}
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "loss" in r] == [1, 2]
    assert any(k.startswith("eval/generalpoints/ood/") for r in steps for k in r)
    assert list((run_dir / "wandb").glob("offline-run-*")), "W&B did not log offline into the run dir"
    assert "init" in done.stdout and "ood success" in done.stdout


def test_grpo_smoke_from_a_checkpoint_changes_every_parameter(tmp_path, sft_checkpoint):
    run_dir = tmp_path / "run"
    ok(run_cli(
        "algo=grpo", f"checkpoint={sft_checkpoint}", *SMALL, *EASY_GAME, "algo.max_steps=2", "algo.learning_rate=1e-4",
        "algo.per_device_train_batch_size=8", "algo.num_generations=4", "algo.max_completion_length=96",
        "eval.before=false", run_dir=run_dir,
    ))  # fmt: skip
    before, after = weights(sft_checkpoint), weights(run_dir / "grpo" / "checkpoint")
    assert set(changed(before, after)) == set(after), "some parameters did not change"
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "reward" in r] == [1, 2]
    assert all(r["reward_std"] > 0 for r in steps if "reward" in r), "rewards did not vary: no learning signal"


def test_eval_mode_scores_a_checkpoint(tmp_path, sft_checkpoint):
    run_dir = tmp_path / "run"
    ok(run_cli("mode=eval", f"checkpoint={sft_checkpoint}", *SMALL, *EASY_GAME, "eval.num_prompts=8", run_dir=run_dir))
    results = json.loads((run_dir / "summary.json").read_text())["results"]["checkpoint"]
    for split in ("id", "ood"):
        assert results[split]["n_prompts"] == 8 and results[split]["n_samples"] == 2
        assert 0 <= results[split]["pass@1"] <= results[split]["pass@2"] <= 1
    # the format was learned: most answers parse and use card values, so few are illegal formulas
    assert results["id"].get("category/ILLEGAL_FORMULA", 0) < 0.5


def test_multirun_gives_each_job_its_own_run_dir(tmp_path):
    sweep = tmp_path / "sweep"
    ok(run_cli("-m", "algo=sft", "seed=0,1", "algo.max_steps=1", *SMALL, "eval.before=false", f"hydra.sweep.dir={sweep}"))
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == 2
    assert sorted(json.loads(p.read_text())["seed"] for p in summaries) == [0, 1]
    names = {OmegaConf.load(p.parent / "config.yaml").logger.run_name for p in summaries}
    assert names == {"algo=sft,algo.max_steps=1,eval.before=false,eval.k=[1,2],eval.max_new_tokens=48,eval.num_prompts=4,"
                     "eval.num_samples=2,model.hidden_size=32,model.intermediate_size=64,model.num_heads=2,model.num_layers=2,seed=0",
                     "algo=sft,algo.max_steps=1,eval.before=false,eval.k=[1,2],eval.max_new_tokens=48,eval.num_prompts=4,"
                     "eval.num_samples=2,model.hidden_size=32,model.intermediate_size=64,model.num_heads=2,model.num_layers=2,seed=1"}


@pytest.mark.slow
def test_zero2_launch_runs_grpo_on_two_processes(tmp_path, sft_checkpoint):
    """DeepSpeed ZeRO-2 with 2 CPU processes (the first run JIT-builds a small DeepSpeed op)."""
    run_dir = tmp_path / "run"
    done = ok(run_cli(
        "launcher=zero2", "launcher.num_processes=2", "algo=grpo", f"checkpoint={sft_checkpoint}", *SMALL, *EASY_GAME,
        "algo.max_steps=3", "algo.per_device_train_batch_size=4", "algo.num_generations=4", "algo.max_completion_length=64",
        "eval.before=false", run_dir=run_dir,
    ))  # fmt: skip
    assert "2 processes, DEEPSPEED" in done.stdout
    accelerate = OmegaConf.load(run_dir / "accelerate.yaml")
    assert accelerate.distributed_type == "DEEPSPEED" and accelerate.deepspeed_config.zero_stage == 2
    assert [p.name for p in tmp_path.iterdir()] == ["run"], "more than one run directory"
    assert (run_dir / "grpo" / "checkpoint" / "model.safetensors").is_file()
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "reward" in r] == [1, 2, 3], "only rank 0 writes metrics, once per step"
