"""algo.teacher_offload (SDPO) and algo.actor_offload (Jackpot): the whole model copy waits in CPU memory, moves to
the training device for each of its passes and back, and the run computes what it computes without offloading."""

import pytest
import torch

from rlexp import envs
from rlexp.algos.jackpot import Jackpot
from rlexp.algos.sdpo import SDPO
from rlexp.errors import ConfigError
from rlexp.models import ModelConfig, load
from rlexp.schema import GenerationConfig
from rlexp.trainers.offload import cpu_copy, parameter_bytes

SMALL_MODEL = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
GAME = dict(num_cards=3, target=12, prompt_style="short", reward_mode="binary", train_size=8)
COMMON = dict(per_device_train_batch_size=4, num_generations=4, max_completion_length=8, max_steps=2, learning_rate=1e-2)


def trained(algo, tmp_path, copy_of):
    """Train `algo` for its steps on the tiny model; return the logged losses, the trainer, and the moves
    (`.to(device)`) and forward passes of the model copy `copy_of(trainer)`, in the order they came."""
    algo.check(world_size=1)
    model, tokenizer = load(SMALL_MODEL)
    env = envs.make("generalpoints", **GAME)
    torch.manual_seed(0)
    trainer = algo.build_trainer(model, tokenizer, env, algo.training_args(tmp_path, 0, "fp32", model=SMALL_MODEL))
    twin, events = copy_of(trainer), []
    move = twin.to

    def recorded_move(*args, **kwargs):
        events.append(f"to {torch.device(args[0]).type}")
        return move(*args, **kwargs)

    twin.to = recorded_move
    twin.register_forward_pre_hook(lambda module, inputs: events.append(f"forward on {next(module.parameters()).device.type}"))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return losses, trainer, events


def assert_moved_for_each_pass(events, passes):
    """Every forward of the copy happens between its move to the device and its move back."""
    forwards = [i for i, e in enumerate(events) if e.startswith("forward")]
    assert len(forwards) >= passes, events
    for i in forwards:
        before = [e for e in events[:i] if e.startswith("to")]
        assert before and before[-1] == "to cpu" and before.count("to cpu") % 2 == 1, events  # moved in, not yet out
    assert events[-1] == "to cpu"  # and it ends in CPU memory


def same_run_offloaded(plain_algo, offloaded_algo, tmp_path, copy_of):
    """Both algorithms train 2 steps: the same losses, weights and copy; the offloaded copy in CPU memory but for its
    passes. Returns the offloaded run's trainer."""
    plain_losses, plain, _ = trained(plain_algo, tmp_path / "plain", copy_of)
    losses, offloaded, events = trained(offloaded_algo, tmp_path / "offloaded", copy_of)
    assert len(losses) == 2 and losses == plain_losses
    assert all(p.device.type == "cpu" for p in copy_of(offloaded).parameters())
    assert all(torch.equal(a, b) for a, b in zip(copy_of(plain).parameters(), copy_of(offloaded).parameters()))
    assert all(torch.equal(a, b) for a, b in zip(plain.model.parameters(), offloaded.model.parameters()))
    assert_moved_for_each_pass(events, passes=2)
    return offloaded


@pytest.mark.parametrize("kind", ["ema", "base"])
def test_the_offloaded_sdpo_teacher_computes_the_same_losses_and_ema(tmp_path, kind):
    fields = dict(COMMON, name="sdpo", distillation_mode="full_logits", teacher_model_kind=kind, teacher_update_rate=0.25)
    offloaded = same_run_offloaded(SDPO(**fields), SDPO(**fields, teacher_offload=True), tmp_path, lambda t: t.teacher_model)
    if kind == "ema":  # the EMA moved the teacher, in CPU memory
        start, _ = load(SMALL_MODEL)
        assert not torch.equal(offloaded.teacher_model.lm_head.weight, start.lm_head.weight)


@pytest.mark.parametrize(
    "actor_fields",
    [
        dict(actor="self", actor_lag=1),  # a stale copy of the policy, refreshed into CPU memory
        dict(z_estimate="exact"),  # the default separate actor, which also scores the rollouts (its whole distribution)
    ],
    ids=["stale-copy", "separate-actor"],
)
def test_the_offloaded_jackpot_actor_computes_the_same_losses(tmp_path, actor_fields):
    fields = dict(COMMON, name="jackpot", num_generations=2, **actor_fields)
    same_run_offloaded(Jackpot(**fields), Jackpot(**fields, actor_offload=True), tmp_path, lambda t: t.rollout_actor)


def test_a_cpu_copy_is_frozen_tied_and_the_same_model():
    model, _ = load(SMALL_MODEL)
    twin = cpu_copy(model)
    ids = torch.randint(0, 200, (2, 7))
    assert torch.equal(model(ids).logits, twin(ids).logits)
    assert twin.lm_head.weight is twin.model.embed_tokens.weight and not any(p.requires_grad for p in twin.parameters())
    assert parameter_bytes(twin) == 4 * sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "algo, message",
    [
        (SDPO(name="sdpo", teacher_offload=True, teacher_model_kind="live"), "the live teacher is the student itself"),
        (Jackpot(name="jackpot", actor="self", actor_offload=True), "no copy to offload"),
    ],
)
def test_offloading_nothing_is_one_clear_line(algo, message):
    with pytest.raises(ConfigError, match=message) as err:
        algo.check(world_size=1)
    assert "\n" not in str(err.value)


def test_a_vllm_engine_holds_the_actor_so_it_is_not_offloaded():
    for name in ("vllm_colocate", "vllm_server"):
        with pytest.raises(ConfigError, match="the engine holds the actor"):
            Jackpot(name="jackpot", actor="self", actor_lag=1, actor_offload=True).check_generation(GenerationConfig(name=name))
    Jackpot(name="jackpot", actor="self", actor_lag=1, actor_offload=True).check_generation(GenerationConfig(name="hf"))


def test_the_teacher_is_not_offloaded_under_zero3():
    with pytest.raises(ConfigError, match="ZeRO-3 shards the teacher"):
        SDPO(name="sdpo", teacher_offload=True).check_launcher("zero3")
    SDPO(name="sdpo", teacher_offload=True).check_launcher("zero2")
