"""Every registered algorithm on every registered environment: 2 steps of the tiny model through the
real CLI, then evaluation. The matrix follows the registries, so a new algorithm or environment is
in it with no edit here; the tables below only add what a pair needs to run small, and what each
algorithm's own metrics must show."""

import json

import pytest
import torch
from conftest import SMALL, initial_weights, run_cli, weights

from rlexp import algos, envs
from rlexp.tracking import read_completions, read_metrics

# what makes a pair small; an algorithm or environment not named here runs with its defaults
ENV_ARGS = {
    "generalpoints": ["env.num_cards=3", "env.target=12", "env.prompt_style=short", "env.train_size=16"],
    "livecode": ["env.time_limit=2.0"],
    "math": ["env.difficulty=1", "env.train_size=8", "env.eval_size=4"],
    "synlogic": ["env.difficulty=1", "env.train_size=8", "env.eval_size=4"],
}
# the tiny model reads bytes: a LiveCodeBench prompt with its reference answer runs to about 2000 tokens
SFT_ARGS = ["algo.per_device_train_batch_size=2", "algo.max_length=4096"]
RL_ARGS = ["algo.per_device_train_batch_size=4", "algo.num_generations=2", "algo.max_completion_length=16",
           "logger.log_completions_steps=1"]  # fmt: skip
ACTOR = "algo.actor={hidden_size:16,num_layers:1,num_heads:2,intermediate_size:32,init_seed:1}"  # smaller than the policy
ALGO_ARGS = {
    "sft": SFT_ARGS,
    "iwsft": SFT_ARGS,
    "pear": [
        *SFT_ARGS,
        "algo.behaviour_keep=all",
        "algo.behaviour_prompts=4",
        "algo.behaviour_samples=2",
        "algo.behaviour_max_new_tokens=16",
    ],  # fmt: skip
    "grpo": RL_ARGS,
    "luffy": RL_ARGS,
    "sdpo": [*RL_ARGS, "algo.learning_rate=1e-4"],
    "jackpot": [*RL_ARGS, ACTOR, "algo.obrs_lambda=1.05"],
}


def check_sft(rows, env):
    assert all(r["loss"] > 0 for r in rows)


def check_pear(rows, env):
    assert all(0 < r["pear/ess"] <= 1 and "pear/weight_mean" in r for r in rows)


def check_iwsft(rows, env):
    # the reference is the model the stage starts from, so the first step's weights are all 1
    assert rows[0]["iwsft/w_mean"] == pytest.approx(1.0, abs=1e-4)


def check_rl(rows, env):
    assert all(f"{env}/success" in r and "reward" in r for r in rows)


def check_luffy(rows, env):
    check_rl(rows, env)
    assert all(r["luffy/demo_fraction"] == pytest.approx(1 / 2) for r in rows)  # G - 1 rollouts + 1 demonstration
    assert all(r["luffy/demo_advantage"] > 0 for r in rows)  # the demonstration is right, the rollouts mostly not


def check_sdpo(rows, env):
    for r in rows:
        assert {"reward", "success", "sdpo/teacher_minus_student_logp", "sdpo/context_with_solution", "sdpo/context_feedback_only",
                "sdpo/distillation_loss", "completions/mean_length"} <= set(r)  # fmt: skip
        # every failed completion has feedback (the env's, or being cut off), so distillation is active
        assert r["sdpo/context_fraction"] >= 1 - r["success"] > 0


def check_jackpot(rows, env):
    check_rl(rows, env)
    for r in rows:
        assert 0 < r["jackpot/accept_rate"] <= 1 and r["jackpot/kappa"] > 0
        assert r["jackpot/kl_actor_policy_before"] > 0, "the actor is a different model from the policy"
        assert {"jackpot/kl_actor_policy_after", "jackpot/frac_clipped", "jackpot/Z_mean"} <= set(r)


def check_tables(run_dir, algo):
    """A table of the 4 rollouts of each step in completions.jsonl, with the algorithm's own columns."""
    rows = [r for r in read_completions(run_dir) if r["kind"] == "rollout"]
    assert [r["step"] for r in rows] == [1] * 4 + [2] * 4
    assert all({"prompt", "completion", "reward", "success", "feedback"} <= set(r) and r["prompt"] for r in rows)
    if algo == "luffy":  # the last row of each group of 2 is the demonstration
        assert [r["demonstration"] for r in rows] == [False, True] * 4
    if algo == "sdpo":  # a sibling's success is the teacher's solution; else a failed completion's feedback
        for i, r in enumerate(rows):
            sibling = rows[i ^ 1]  # groups of 2
            assert r["teacher_context"] == (r["teacher_context_kind"] != "")
            if sibling["success"]:
                assert r["teacher_context_kind"] == "solution"
            elif not r["success"] and r["feedback"]:
                assert r["teacher_context_kind"] == "feedback_only"
    if algo == "jackpot":  # obrs_lambda 1.05 rejects a few tokens
        assert all(0 <= r["accepted_share"] <= 1 for r in rows) and min(r["accepted_share"] for r in rows) < 1


CHECKS = {"sft": check_sft, "pear": check_pear, "iwsft": check_iwsft, "grpo": check_rl, "luffy": check_luffy,
          "sdpo": check_sdpo, "jackpot": check_jackpot}  # fmt: skip
# algorithms whose 2 steps change the weights whatever the rewards (RL with equal rewards has no gradient)
ALWAYS_LEARN = {"sft", "pear", "iwsft", "luffy", "sdpo"}
# what an environment's evaluation must break down by
EVAL_GROUPS = {"livecode": "easy/pass@1"}


@pytest.mark.parametrize("env", envs.names())
@pytest.mark.parametrize("algo", algos.names())
def test_every_algorithm_runs_two_steps_on_every_environment(tmp_path, untrained_checkpoint, algo, env):
    run_dir = tmp_path / "run"
    behaviour = [f"algo.behaviour_model={untrained_checkpoint}"] if algo == "pear" else []
    done = run_cli(f"algo={algo}", f"env={env}", *ENV_ARGS.get(env, []), *ALGO_ARGS.get(algo, []), *behaviour, *SMALL,
                   "model.max_position_embeddings=4096", "algo.max_steps=2", "eval.before=false", run_dir=run_dir)  # fmt: skip
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    rows = [r for r in read_metrics(run_dir) if r["stage"] == algo and "loss" in r and "train_runtime" not in r]
    assert [r["step"] for r in rows] == [1, 2]
    CHECKS.get(algo, lambda rows, env: None)(rows, env)
    if "logger.log_completions_steps=1" in ALGO_ARGS.get(algo, []):
        check_tables(run_dir, algo)
    if algo in ALWAYS_LEARN:
        before, after = initial_weights(run_dir), weights(run_dir / algo / "checkpoint")
        assert any(not torch.allclose(before[k], v) for k, v in after.items() if k in before), f"{algo} changed no parameter"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "done" and summary["stages"] == [algo]
    for split, metrics in summary["results"][algo].items():
        assert metrics["n_prompts"] >= 1 and 0 <= metrics["pass@1"] <= metrics["pass@2"] <= 1, split
        if env in EVAL_GROUPS:
            assert EVAL_GROUPS[env] in metrics, split
    if algo == "pear" and env == "generalpoints":  # the behaviour samples are cached in the run and reusable by path
        cached = run_dir / "pear" / "behaviour"
        again = run_cli("algo=pear", f"env={env}", *ENV_ARGS.get(env, []), *SFT_ARGS, f"algo.behaviour_data={cached}", *SMALL,
                        "model.max_position_embeddings=4096", "algo.max_steps=1", "eval.before=false", run_dir=tmp_path / "again")  # fmt: skip
        assert again.returncode == 0, again.stderr[-3000:]


# GP-VL on the tiny vision-language model: the card pictures reach SFT's and GRPO's batches and the evaluation
VL_ARGS = ["env=generalpoints", "env.visual=true", "model=tiny_vl", "env.train_size=8", "env.eval_size=4"]


@pytest.mark.parametrize("algo", ["sft", "grpo"])
def test_vision_language_generalpoints_runs_two_steps(tmp_path, algo):
    from omegaconf import OmegaConf

    from rlexp.models import ModelConfig, load

    run_dir = tmp_path / "run"
    algo_args = ["algo.per_device_train_batch_size=2"] if algo == "sft" else RL_ARGS
    done = run_cli(f"algo={algo}", *VL_ARGS, *algo_args, *SMALL, "algo.max_steps=2", "eval.before=false", run_dir=run_dir)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    rows = [r for r in read_metrics(run_dir) if r["stage"] == algo and "loss" in r and "train_runtime" not in r]
    assert [r["step"] for r in rows] == [1, 2]
    CHECKS[algo](rows, "generalpoints")
    if algo == "sft":  # the vision tower learned too: the images were in the batches
        model_cfg = ModelConfig(**OmegaConf.load(run_dir / "config.yaml").model)
        before = load(model_cfg)[0].state_dict()
        after = load(model_cfg, str(run_dir / algo / "checkpoint"))[0].state_dict()
        vision = [k for k in after if k.startswith("model.visual.")]
        assert vision and any(not torch.allclose(before[k], after[k]) for k in vision)
    else:
        assert all(r["generalpoints/category/INCORRECT_VISION"] == 1 for r in rows)  # an untrained model names no cards
    results = json.loads((run_dir / "summary.json").read_text())["results"][algo]
    assert list(results) == ["id", "ood", "visual_ood"]
    for split, metrics in results.items():
        assert metrics["recognition_accuracy"] == 1 - metrics.get("category/INCORRECT_VISION", 0), split
