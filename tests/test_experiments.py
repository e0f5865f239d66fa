"""conf/experiment/: every file composes and passes the checks a run makes before anything loads; a paper's run says
the GPUs it assumes, what it should reproduce and every hub model it loads; the arms of a comparison differ only
where the comparison says.

Validation is the command line's (`validate(machine=False)`: no GPU asked about) on a machine whose Hugging Face
cache holds every model, so no test needs the network or a download."""

import dataclasses
import re
from pathlib import Path

import huggingface_hub
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from rlexp import algos
from rlexp.__main__ import CONF_DIR, help_text
from rlexp.config import _picked, algo_from, env_from, register_schemas, stages, validate
from rlexp.envs.math import HUB

register_schemas()
FOLDER = Path(CONF_DIR, "experiment")
EXPERIMENTS = sorted(p.relative_to(FOLDER).with_suffix("").as_posix() for p in FOLDER.rglob("*.yaml"))
PAPER = [e for e in EXPERIMENTS if e.startswith("paper/")]
# what an experiment cannot run without, as its opening comment says
NEEDS = {"pear_then_grpo": ["prepare.pear.behaviour_model=some/checkpoint"]}


@pytest.fixture
def hub_cache(monkeypatch):
    """Every hub model is in the local cache; the ids validation asks about are recorded."""
    asked = []

    def cached(repo_id, filename, *args, **kwargs):
        asked.append(repo_id)
        return f"/cache/{repo_id}/{filename}"

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", cached)
    return asked


def composed(experiment, *overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=[f"experiment={experiment}", *NEEDS.get(experiment, []), *overrides])


def header(experiment) -> list[str]:
    lines = (FOLDER / f"{experiment}.yaml").read_text().splitlines()
    return lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_opens_with_its_command_and_validates(experiment, hub_cache):
    first, command = header(experiment)[:2]
    assert first == "# @package _global_", "an experiment sets keys of the whole config"
    assert re.match(rf"# python -m rlexp experiment={re.escape(experiment)}(\s|$)", command), command
    validate(composed(experiment), machine=False)


def hub_models(cfg, asked: list[str]) -> set[str]:
    """The hub ids a run loads: those validation asked the cache about, and each stage's behaviour model."""
    behaviour = {node.get("behaviour_model") for node in [*cfg.prepare.values(), cfg.algo]}
    return set(asked) | {m for m in behaviour if m and "/" in m}


@pytest.mark.parametrize("experiment", PAPER)
def test_a_paper_run_says_its_gpus_its_target_and_each_hub_model(experiment, hub_cache):
    lines = header(experiment)
    cfg = composed(experiment)
    validate(cfg, machine=False)
    (gpus,) = [line for line in lines if line.startswith("# GPUs: ")]
    assert int(re.match(r"# GPUs: (\d+)x ", gpus).group(1)) == cfg.launcher.num_processes, "the GPUs the launcher starts on"
    assert f"launcher={cfg.launcher.name}" in gpus
    (start,) = [i for i, line in enumerate(lines) if line.startswith("# Paper: ")]
    paper = [lines[start], *(line for line in lines[start + 1 :] if line.startswith("#   "))]  # with its continuation
    assert re.search(r"arXiv \d{4}\.\d{5}", " ".join(paper))
    text = "\n".join(lines)
    models = hub_models(cfg, hub_cache)
    assert models and all(m in text for m in models), f"name every hub model it loads: {sorted(models)}"
    if cfg.env.name == "math":  # a typo in a split would fail only after training
        assert all(HUB.get(split, (None,) * 4)[3] for split in cfg.eval.splits), list(cfg.eval.splits)


def differences(a, b) -> set[str]:
    """The dotted keys whose values differ between two composed configs."""

    def flat(node, prefix=""):
        if not isinstance(node, dict):
            return {prefix[:-1]: node}
        return {k: v for key, child in node.items() for k, v in flat(child, f"{prefix}{key}.").items()}

    a, b = flat(OmegaConf.to_container(a)), flat(OmegaConf.to_container(b))
    return {key for key in a.keys() | b.keys() if a.get(key, "<unset>") != b.get(key, "<unset>")}


def own_fields(cls, parent) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - {f.name for f in dataclasses.fields(parent)}


IWSFT_ONLY = {f"prepare.init.{name}" for name in own_fields(algos.algo_class("iwsft"), algos.algo_class("sft"))}


def algorithm_and_stages(key: str) -> bool:
    return key == "name" or key.startswith(("algo.", "prepare."))


@pytest.mark.parametrize(
    "arm,other,differ",
    [
        ("paper/jackpot_deepscaler_qwen3_8b", "paper/jackpot_deepscaler_qwen3_8b_tis", {"name", "algo.correction"}),
        ("paper/jackpot_deepscaler_qwen3_8b", "paper/jackpot_deepscaler_qwen3_8b_on_policy", {"name", "algo.actor", "algo.correction"}),
        ("paper/pear_then_grpo_deepscaler", "paper/sft_then_grpo_deepscaler", {"name", "prepare.init.gamma", "prepare.init.delta_clip"}),
        ("paper/sft_then_grpo_math", "paper/iwsft_then_grpo_math", {"name", "prepare.init.name", *IWSFT_ONLY}),
        ("paper/sdpo_livecode_qwen3_8b", "paper/grpo_livecode_qwen3_8b", algorithm_and_stages),
        ("paper/luffy_math", "paper/sft_then_grpo_math", algorithm_and_stages),
        ("paper/gp_l_sft_then_rl", "paper/gp_vl_sft_then_rl", lambda key: key in ("name", "env.visual") or key.startswith("model.")),
    ],
)  # fmt: skip
def test_the_arms_of_a_comparison_differ_only_where_it_says(arm, other, differ):
    """Same model, data, evaluation, seed and GPUs: what differs is what the comparison is about."""
    found = differences(composed(arm), composed(other))
    if callable(differ):
        assert found and all(differ(key) for key in found), sorted(k for k in found if not differ(k))
    else:
        assert found == differ


def test_sdpo_takes_32_optimiser_steps_of_one_question_per_batch_and_grpo_4_of_8():
    """sdpo.md §11: 32 questions x 8 rollouts per generation batch; SDPO steps on each question's 8 rollouts,
    GRPO on mini-batches of 8 questions; "step 80" counts generation batches."""
    for experiment, questions_per_step, steps in (("sdpo", 1, 32), ("grpo", 8, 4)):
        cfg = composed(f"paper/{experiment}_livecode_qwen3_8b")
        algo, world = algo_from(cfg.algo), cfg.launcher.num_processes
        per_step = algo.per_device_train_batch_size * world * algo.gradient_accumulation_steps
        assert per_step == questions_per_step * algo.num_generations == questions_per_step * 8
        assert algo.trl["steps_per_generation"] == steps * algo.gradient_accumulation_steps
        assert per_step * steps == 32 * 8 and algo.max_steps == 80 * steps
        if experiment == "sdpo":  # what SDPOConfig will resolve, and what the EMA teacher's cadence follows
            assert algo.steps_per_generation(world) == steps


def test_gp_l_plays_five_attempts_and_evaluates_every_deal_of_both_splits():
    cfg = composed("paper/gp_l_sft_then_rl")
    env = env_from(cfg.env)
    assert env.max_attempts == 5 and env.eval_splits() == ["id", "ood"] and not cfg.eval.splits
    assert cfg.eval.num_prompts == env.eval_size == 234 and env.eval_seed == 42  # the paper's 234 episodes
    assert [name for name, _ in stages(cfg)] == ["sft", "grpo"]


def test_the_sft_arm_of_pear_weighs_every_token_1_and_the_pear_arm_does_not():
    from rlexp.trainers.pear import pear_log_weights

    generator = torch.Generator().manual_seed(0)
    theta, beta = -torch.rand(3, 12, generator=generator) * 3, -torch.rand(3, 12, generator=generator) * 3
    mask = torch.ones(3, 12, dtype=torch.bool)
    weights = {}
    for experiment in ("pear_then_grpo_deepscaler", "sft_then_grpo_deepscaler"):
        cfg = composed(f"paper/{experiment}")
        weights[experiment], _ = pear_log_weights(theta, beta, mask, algo_from(cfg.prepare.init))
    assert torch.equal(weights["sft_then_grpo_deepscaler"], torch.zeros(3, 12))
    assert weights["pear_then_grpo_deepscaler"].abs().max() > 0.1


def test_an_arm_chooses_what_the_experiment_it_builds_on_sets():
    """mode=eval takes the environment, model and evaluation from the training run unless the command line's
    experiment sets them: an arm sets them through the file it includes."""
    experiment = ["experiment=paper/iwsft_then_grpo_math"]
    assert all(_picked(experiment, key) for key in ("env", "model", "eval", "algo"))
    assert not _picked(experiment, "seed")


def test_help_lists_the_paper_runs():
    (line,) = [line for line in help_text([]).splitlines() if line.startswith("experiment: ")]
    assert line.removeprefix("experiment: ").split(", ") == EXPERIMENTS
