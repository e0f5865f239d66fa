"""The real CLI in a subprocess: runs from a checkpoint, eval mode, pipelines, sweeps, distributed launches
(every algorithm x environment pair runs in test_smoke.py)."""

import json
import statistics

import datasets
import pytest
import torch
from conftest import DEMO_PIPELINE, EASY_GAME, ROOT, SMALL, initial_weights, ok, run_cli, weights
from omegaconf import OmegaConf

from rlexp.tracking import read_metrics


def changed(before: dict, after: dict) -> list[str]:
    return [name for name, value in after.items() if name in before and not torch.allclose(before[name], value)]


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
    steps = read_metrics(run_dir)
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
    steps = read_metrics(run_dir)
    assert [r["step"] for r in steps if "reward" in r] == [1, 2]
    assert all(r["reward_std"] > 0 for r in steps if "reward" in r), "rewards did not vary: no learning signal"


def test_eval_mode_evaluates_a_checkpoint_on_the_task_it_was_trained_for(tmp_path, sft_checkpoint):
    """With no other argument, mode=eval takes the game, prompt, model and eval settings (and seed) from the
    training run, and reproduces that run's last evaluation exactly."""
    done = ok(run_cli("mode=eval", f"checkpoint={sft_checkpoint}", "logger=none", run_dir=str(tmp_path / "${rlexp.run_name:}")))
    (run_dir,) = tmp_path.iterdir()
    assert run_dir.name == "eval_generalpoints", "an evaluation's run directory is named as one"
    results = json.loads((run_dir / "summary.json").read_text())["results"]["checkpoint"]
    trained = json.loads((sft_checkpoint.parent.parent / "summary.json").read_text())["results"]["sft"]
    assert results == trained
    assert results["id"]["success"] > 0.1, "the fixture's model solves some deals of its own game"
    assert f"[rlexp] run directory: {run_dir}" in done.stdout.splitlines()
    assert "mode=eval" not in done.stdout, "nothing changed from training, so nothing to say"
    # a changed environment is said in one line, and used
    done = ok(
        run_cli(
            "mode=eval",
            f"checkpoint={sft_checkpoint}",
            "logger=none",
            "env.target=10",
            "eval.num_prompts=2",
            run_dir=tmp_path / "changed",
        )
    )
    assert (
        "[rlexp] mode=eval: evaluating with env.target=10; the checkpoint was trained with env.target=12"
        in done.stdout.splitlines()
    )
    changed = OmegaConf.load(tmp_path / "changed" / "config.yaml")
    assert (changed.env.num_cards, changed.env.target, changed.env.prompt_style, changed.eval.num_prompts) == (3, 10, "short", 2)


def test_pipeline_stages_chain_checkpoints_on_one_step_axis(demo_pipeline):
    """experiment=demo, shortened: SFT, then GRPO from SFT's checkpoint, then the same command again, which finds
    the run done (resume=auto) and only prints its table."""
    run_dir, first = demo_pipeline
    again = ok(run_cli(*DEMO_PIPELINE, run_dir=str(run_dir.parent / "${rlexp.run_name:}")))
    assert run_dir.name == "sft-grpo_generalpoints", "a run directory is named after its whole pipeline"
    assert f"[rlexp] stage sft: single process, {'1 GPU' if torch.cuda.is_available() else 'CPU'}" in first.stdout.splitlines()
    assert "[rlexp] stage" not in again.stdout and again.stdout.splitlines()[-1] == f"[rlexp] run directory: {run_dir}"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stages"] == ["sft", "grpo"] and list(summary["results"]) == ["init", "sft", "grpo"]
    steps = read_metrics(run_dir)
    trained = [(r["stage"], r["step"]) for r in steps if "loss" in r and "train_runtime" not in r]
    assert trained == [("sft", 1), ("sft", 2), ("grpo", 3), ("grpo", 4)], "one run's steps, across stages"
    # GRPO started from SFT's checkpoint, not from the initial model
    assert set(changed(initial_weights(run_dir), weights(run_dir / "grpo" / "checkpoint"))) == set(
        weights(run_dir / "sft" / "checkpoint")
    )


def test_multirun_gives_each_job_its_own_run_dir(tmp_path):
    sweep = tmp_path / "sweep"
    ok(run_cli("-m", "algo=sft", "seed=0,1", "algo.max_steps=1", *SMALL, "eval.before=false", f"hydra.sweep.dir={sweep}"))
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == 2
    assert sorted(json.loads(p.read_text())["seed"] for p in summaries) == [0, 1]
    names = sorted(OmegaConf.load(p.parent / "config.yaml").logger.run_name for p in summaries)
    assert [n.rsplit(",", 1)[1] for n in names] == ["seed=0", "seed=1"], "W&B run names come from the overrides"
    assert all("algo=sft" in n and "algo.max_steps=1" in n for n in names)


@pytest.mark.slow
def test_every_experiment_runs_end_to_end_in_one_sweep(tmp_path):
    """`-m experiment=glob(*)`, one step per stage. pear_then_grpo is left out: it needs a behaviour model
    (prepare.pear.behaviour_model), which no other experiment takes (test_pear.py runs PEAR)."""
    sweep = tmp_path / "sweep"
    ok(run_cli("-m", "experiment=glob(*,exclude=pear_then_grpo)", "max_steps_per_stage=1", *SMALL, "env.train_size=16",
               "eval.before=false", f"hydra.sweep.dir={sweep}"))  # fmt: skip
    experiments = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml") if p.stem != "pear_then_grpo")
    summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    assert len(summaries) == len(experiments) and all(s["status"] == "done" for s in summaries)
    for summary in summaries:
        steps = [r for r in read_metrics(summary["run_dir"]) if "loss" in r and "train_runtime" not in r]
        assert len(steps) == len(summary["stages"]) >= 2, "one step per stage"


@pytest.mark.slow
@pytest.mark.parametrize(
    "launcher,kind,zero_stage", [("zero2", "DeepSpeed ZeRO-2", 2), ("zero3", "DeepSpeed ZeRO-3", 3), ("ddp", "DDP", None)]
)
def test_distributed_launch_runs_grpo_on_two_processes(tmp_path, untrained_checkpoint, launcher, kind, zero_stage):
    """accelerate launch with 2 CPU processes (DeepSpeed's first run JIT-builds a small op). Each rank evaluates a
    share of the prompts (eval.batch_size=2: chunks of 1 prompt); under DDP the metrics equal those of one process."""
    if torch.cuda.is_available():
        pytest.skip("checks the CPU process group")
    run_dir = tmp_path / "run"
    done = ok(run_cli(
        f"launcher={launcher}", "launcher.num_processes=2", "algo=grpo", f"checkpoint={untrained_checkpoint}", *SMALL, *EASY_GAME,
        "algo.max_steps=3", "algo.per_device_train_batch_size=4", "algo.num_generations=4", "algo.max_completion_length=96",
        "eval.before=false", "eval.batch_size=2", run_dir=run_dir,
    ))  # fmt: skip
    assert f"[rlexp] stage grpo: 2 processes, {kind}, CPU" in done.stdout.splitlines()
    if zero_stage:
        assert OmegaConf.load(run_dir / "accelerate.yaml").deepspeed_config.zero_stage == zero_stage
    assert [p.name for p in tmp_path.iterdir()] == ["run"], "more than one run directory"
    assert (run_dir / "grpo" / "checkpoint" / "model.safetensors").is_file()
    steps = read_metrics(run_dir)
    assert [r["step"] for r in steps if "reward" in r] == [1, 2, 3], "only rank 0 writes metrics, once per step"
    results = json.loads((run_dir / "summary.json").read_text())["results"]["grpo"]
    assert set(results) == {"id", "ood"}
    if launcher == "ddp":  # mode=eval takes the run's eval keys and seed, and runs in one process
        ok(run_cli("mode=eval", f"checkpoint={run_dir / 'grpo' / 'checkpoint'}", "logger=none", run_dir=tmp_path / "eval"))
        assert json.loads((tmp_path / "eval" / "summary.json").read_text())["results"]["checkpoint"] == results


@pytest.mark.slow
def test_grpo_raises_success_on_fixed_deals(tmp_path, sft_checkpoint):
    """GRPO on 16 fixed deals the SFT model solves about a third of the time: success rises clearly in 40 steps."""
    run_dir = tmp_path / "run"
    ok(run_cli(
        "algo=grpo", f"checkpoint={sft_checkpoint}", *EASY_GAME, "env.reward_mode=binary", "env.train_size=16",
        "algo.learning_rate=1e-4", "algo.max_steps=40", "algo.per_device_train_batch_size=32", "algo.num_generations=8",
        "algo.max_completion_length=96", "logger=none", "eval.splits=[train]", "eval.num_prompts=16", "eval.num_samples=8",
        "eval.k=[1,8]", run_dir=run_dir,
    ))  # fmt: skip
    steps = read_metrics(run_dir)
    rewards = [r["reward"] for r in steps if "reward" in r]
    first, last = sum(rewards[:10]) / 10, sum(rewards[-10:]) / 10
    assert last - first >= 0.1, f"training reward {first:.3f} -> {last:.3f}"
    results = json.loads((run_dir / "summary.json").read_text())["results"]
    before, after = results["init"]["train"]["success"], results["grpo"]["train"]["success"]
    assert after - before >= 0.15, f"success on the trained deals {before:.3f} -> {after:.3f}"


def test_livecode_sft_with_too_short_max_length_is_one_clear_error(tmp_path):
    done = run_cli("algo=sft", "env=livecode", *SMALL, "algo.max_steps=1", "eval.before=false", run_dir=tmp_path / "run")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("rlexp: error: algo.max_length=1024 would cut the answer off")


def test_pear_rejection_samples_the_behaviour_models_correct_answers(tmp_path, sft_checkpoint):
    """The SFT model solves about 40% of deals: with behaviour_keep=correct, only those are trained on."""
    run_dir = tmp_path / "run"
    behaviour = [
        f"algo.behaviour_model={sft_checkpoint}",
        "algo.behaviour_keep=correct",
        "algo.behaviour_prompts=8",
        "algo.behaviour_samples=4",
        "algo.behaviour_max_new_tokens=96",
    ]
    ok(
        run_cli(
            "algo=pear",
            *behaviour,
            *EASY_GAME,
            *SMALL,
            "algo.max_steps=2",
            "algo.per_device_train_batch_size=4",
            "algo.max_length=2048",
            "model.max_position_embeddings=2048",
            "eval.before=false",
            run_dir=run_dir,
        )
    )
    kept = datasets.load_from_disk(str(run_dir / "pear" / "behaviour"))
    assert 0 < len(kept) < 8 * 4, "some samples were right and kept, some wrong and dropped"
    trained = [r for r in read_metrics(run_dir) if "pear/weight_mean" in r]
    assert [r["step"] for r in trained] == [1, 2] and all(0 < r["pear/ess"] <= 1 for r in trained)


def _spread_by_hand(values: list[float], signed: str = "") -> str:
    """Two seeds' mean [95% bootstrap interval]: the resampled means are a, (a+b)/2 and b with chances 1/4, 1/2,
    1/4, so the interval's 2.5% and 97.5% percentiles are the two values themselves."""
    number = f"{{:{signed}.3f}}"
    return f"{number.format(statistics.fmean(values) + 0.0)} [{number.format(min(values))}, {number.format(max(values))}]"


def test_a_sweep_over_pipelines_ends_with_a_report_on_its_arms(tmp_path):
    sweep = tmp_path / "sweep"
    # one override applies to every job, so each arm's stage keeps its defaults (100 steps; quick on this model)
    done = ok(run_cli(
        "-m", "experiment=sft_then_grpo,iwsft_then_grpo", "seed=0,1", *EASY_GAME, *SMALL, "algo.max_steps=1",
        "algo.per_device_train_batch_size=4", "algo.num_generations=2", "algo.max_completion_length=16",
        "eval.before=false", f"hydra.sweep.dir={sweep}",
    ))  # fmt: skip
    finals = {}
    for job in range(4):
        summary = json.loads((sweep / str(job) / "summary.json").read_text())
        assert summary["stages"][-1] == "grpo" and len(summary["stages"]) == 2
        finals[job] = summary["results"]["grpo"]
    report = (sweep / "report.md").read_text()
    # Hydra numbers the jobs in the order of the sweep's values: experiment first, then seed
    arms = {"experiment=sft_then_grpo": (0, 1), "experiment=iwsft_then_grpo": (2, 3)}
    metrics = ("success", "pass@1", "pass@2", "mean_reward")
    for split in ("id", "ood"):
        table = report.split(f"### Split `{split}`")[1].split("#")[0]
        for arm, (job_a, job_b) in arms.items():
            cells = []
            for metric in metrics:
                values = [finals[job_a][split][metric], finals[job_b][split][metric]]
                mean, interval = _spread_by_hand(values).split(" ", 1)
                cells.append(f"{mean} ± {statistics.stdev(values):.3f} {interval}")
            assert f"| {arm} | grpo | 0, 1 | `{job_a}`, `{job_b}` | {' | '.join(cells)} |" in table, (arm, table)
    # iwsft minus sft, paired by seed: job 2 - job 0 (seed 0), job 3 - job 1 (seed 1)
    for metric, label in zip(metrics, ("success", "pass@1", "pass@2", "mean reward")):
        diffs = [_spread_by_hand([finals[b][s][metric] - finals[a][s][metric] for a, b in ((0, 2), (1, 3))], "+")
                 for s in ("id", "ood")]  # fmt: skip
        pair = "experiment=iwsft_then_grpo − experiment=sft_then_grpo" if metric == "success" else ""
        assert f"| {pair} | {label} | 2 (seeds 0, 1) | {diffs[0]} | {diffs[1]} |" in report
    for name in ("report.html", "curves.png", "splits.png", "pass_at_k.png"):
        assert (sweep / name).stat().st_size > 10_000, name
    lines = done.stdout.splitlines()
    assert "| experiment=sft_then_grpo | 2 |" in done.stdout and f"[rlexp] report: {sweep / 'report.md'}" in lines[-2]
    assert lines[-1] == f"[rlexp] sweep directory: {sweep}"


def test_discover_mode_prints_discovery_at_k_for_three_methods(tmp_path, untrained_checkpoint):
    run_dir = tmp_path / "run"
    done = ok(run_cli(
        "mode=discover", "algo=sdpo", f"checkpoint={untrained_checkpoint}", *EASY_GAME, "env.reveal_solution=true", *SMALL,
        "algo.max_completion_length=48", "algo.learning_rate=1e-4", "discover.num_questions=2", "discover.probe_samples=4",
        "discover.max_pass_rate=1.0", "discover.budget=8", "discover.attempts_per_step=4", "discover.runs=2",
        "discover.k=[1,4,8]", run_dir=run_dir,
    ))  # fmt: skip
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("method") and "discovery@8" in line)
    assert [line.split()[0] for line in lines[header + 2 : header + 5]] == ["sdpo", "best-of-k", "multi-turn"]
    report = json.loads((run_dir / "discovery.json").read_text())
    assert len(report["questions"]) == 2 and all(len(runs) == 2 for runs in report["times"]["sdpo"])
    for method, per_k in report["discovery"].items():
        estimates = [per_k[k][0] for k in ("1", "4", "8")]
        assert estimates == sorted(estimates), method  # discovery@k never falls as k grows
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "done" and summary["mode"] == "discover"


def test_discover_mode_needs_algo_sdpo(tmp_path):
    done = run_cli("mode=discover", "algo=grpo", *SMALL, run_dir=tmp_path / "run")
    assert done.returncode == 2
    assert (
        done.stderr.strip().splitlines()[-1] == "rlexp: error: mode=discover runs test-time SDPO: use algo=sdpo (got algo=grpo)"
    )
