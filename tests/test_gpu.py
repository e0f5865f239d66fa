"""Runs that need a CUDA GPU (pytest -m gpu); skipped without one."""

import gc
import importlib.util
import json

import pytest
import torch
from conftest import SMALL, run_cli
from omegaconf import OmegaConf

from rlexp import envs, models
from rlexp.algos.grpo import GRPO
from rlexp.algos.jackpot import Jackpot
from rlexp.algos.sdpo import SDPO
from rlexp.schema import CONF_DIR, ModelConfig
from rlexp.trainers.offload import parameter_bytes

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def test_bf16_sft_and_grpo_on_one_gpu(tmp_path):
    run_dir = tmp_path / "run"
    done = run_cli("experiment=demo", *SMALL, "precision=bf16", "prepare.sft.max_steps=5", "algo.max_steps=2", run_dir=run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "done"


def test_zero2_on_every_gpu(tmp_path):
    run_dir = tmp_path / "run"
    done = run_cli("launcher=zero2", "algo=sft", *SMALL, "algo.max_steps=3", run_dir=run_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "DeepSpeed ZeRO-2" in done.stdout


# -- in-process, one GPU: the presets' settings, offloaded model copies ------------------------------------------------

GAME = dict(num_cards=3, target=12, prompt_style="short", reward_mode="binary", train_size=16)


def preset_on_the_tiny_model(preset: str, **sizes) -> ModelConfig:
    """A model built from a config, with the GPU settings of conf/model/<preset>.yaml (attention sdpa, as without
    flash_attn)."""
    written = OmegaConf.load(f"{CONF_DIR}/model/{preset}.yaml")
    return ModelConfig(**sizes, dtype=written.dtype, attn_implementation="sdpa",
                       activation_checkpointing=written.activation_checkpointing, use_liger_kernel=written.use_liger_kernel)  # fmt: skip


def test_a_bf16_grpo_step_with_a_presets_settings(tmp_path):
    cfg = preset_on_the_tiny_model("qwen2.5-1.5b-instruct", hidden_size=128, num_layers=2, num_heads=4, intermediate_size=256)
    assert cfg.activation_checkpointing and not cfg.use_liger_kernel and cfg.dtype == "float32"
    model, tokenizer = models.load(cfg)
    start = [p.detach().clone() for p in model.parameters()]
    # the entropy bonus moves the weights even where every completion scores the same (an untrained model)
    algo = GRPO(name="grpo", per_device_train_batch_size=8, num_generations=4, max_completion_length=32, max_steps=2,
                learning_rate=1e-3, trl={"entropy_coef": 0.01})  # fmt: skip
    args = algo.training_args(tmp_path, 0, "bf16", model=cfg)
    assert args.bf16 and args.activation_checkpointing and not args.use_liger_kernel
    trainer = algo.build_trainer(model, tokenizer, envs.make("generalpoints", **GAME), args)
    trainer.train()
    assert model.config._attn_implementation == "sdpa" and next(model.parameters()).is_cuda
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules()), "activations are not recomputed"
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(float(x))) for x in losses)
    assert any(not torch.equal(a.to(b.device), b) for a, b in zip(start, model.parameters()))


def test_auto_attention_is_flash_attention_only_where_flash_attn_is_installed():
    cfg = ModelConfig(hidden_size=64, num_layers=1, num_heads=2, intermediate_size=128)
    expected = "flash_attention_2" if importlib.util.find_spec("flash_attn") else "sdpa"
    assert models.attention(cfg) == expected and models.load(cfg)[0].config._attn_implementation == expected


def peak_of_two_steps(algo, cfg, tmp_path):
    """Peak GPU memory of `algo` training 2 steps on a fresh model (nothing else on the GPU), and its trainer."""
    gc.collect()
    torch.cuda.empty_cache()
    model, tokenizer = models.load(cfg)
    model.cuda()
    torch.cuda.reset_peak_memory_stats()
    trainer = algo.build_trainer(
        model, tokenizer, envs.make("generalpoints", **GAME), algo.training_args(tmp_path, 0, "bf16", model=cfg)
    )
    trainer.train()
    return torch.cuda.max_memory_allocated(), trainer


@pytest.mark.parametrize("which", ["sdpo-teacher", "jackpot-actor"])
def test_an_offloaded_model_copy_lowers_peak_gpu_memory(tmp_path, which):
    # 134M parameters (537 MB in fp32): the copy outweighs a short step's activations
    cfg = ModelConfig(hidden_size=1024, num_layers=8, num_heads=8, intermediate_size=4096)
    common = dict(per_device_train_batch_size=8, num_generations=4, max_completion_length=16, max_steps=2)

    def algo(offload: bool):
        if which == "sdpo-teacher":
            return SDPO(name="sdpo", teacher_offload=offload, **common)
        return Jackpot(name="jackpot", actor="self", actor_lag=1, actor_offload=offload, **common)

    def copy_of(trainer):
        return trainer.teacher_model if which == "sdpo-teacher" else trainer.rollout_actor

    plain, trainer = peak_of_two_steps(algo(False), cfg, tmp_path / "plain")
    copy_bytes = parameter_bytes(copy_of(trainer))
    assert next(copy_of(trainer).parameters()).is_cuda
    del trainer
    offloaded, trainer = peak_of_two_steps(algo(True), cfg, tmp_path / "offloaded")
    assert all(p.device.type == "cpu" for p in copy_of(trainer).parameters())
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(float(x))) for x in losses)
    print(
        f"{which}: peak {plain / 2**20:.0f} MiB -> {offloaded / 2**20:.0f} MiB offloaded; the copy {copy_bytes / 2**20:.0f} MiB"
    )
    assert offloaded <= plain - 0.75 * copy_bytes
