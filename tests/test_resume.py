"""Runs that survive a kill: a run killed after a checkpoint and run again with the same command ends with the
weights and metrics of a run that was never stopped; SIGTERM saves and stops; a run directory is used by one
process at a time, and a run is continued, refused or replaced as `resume` and `overwrite` say."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import EASY_GAME, ROOT, SMALL, THREADS, ok, run_cli, weights
from safetensors.torch import load_file

from rlexp.tracking import read_completions, read_metrics

FAST_EVAL = ["eval.before=false", "eval.num_prompts=2", "eval.num_samples=1", "eval.k=[1]", "eval.max_new_tokens=16"]
SFT = ["algo=sft", *SMALL, *EASY_GAME, *FAST_EVAL, "algo.max_steps=12", "algo.save_steps=3",
       "algo.per_device_train_batch_size=4"]  # fmt: skip
RL = [*SMALL, *EASY_GAME, *FAST_EVAL, "algo.max_steps=6", "algo.save_steps=2", "algo.max_completion_length=16",
      "algo.num_generations=2", "algo.per_device_train_batch_size=4", "logger.log_completions_steps=1"]  # fmt: skip
# metrics that measure time, or that the Trainer averages over the steps a process itself ran
NOT_COMPARED = ("time", "train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos",
                "train_loss", "step_time", "jackpot/seconds")  # fmt: skip


def start_cli(*args: str, run_dir: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "rlexp", *args, f"threads={THREADS}", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    # a session of its own: a kill reaches the run's every process, as when a node is lost
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def complete_checkpoints(stage_dir: Path) -> list[Path]:
    found = [p.parent for p in stage_dir.glob("checkpoint-*/complete.json")]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def stop_after_checkpoints(process: subprocess.Popen, stage_dir: Path, count: int, signum: int) -> None:
    """Send `signum` once `stage_dir` holds `count` complete checkpoints: SIGKILL and SIGINT to every process of the
    run (a lost node; Ctrl-C in a terminal), SIGTERM to the run's own process. No time limit: a loaded machine is
    slow, not wrong."""
    while len(complete_checkpoints(stage_dir)) < count:
        assert process.poll() is None, f"the run ended before {count} checkpoints: {process.communicate()[1][-2000:]}"
        time.sleep(0.02)
    if signum in (signal.SIGKILL, signal.SIGINT):
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)  # as Slurm and Ctrl-C send it to the run's process
    process.communicate()


def compared(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in NOT_COMPARED} for r in read_metrics(run_dir)]


def assert_same_run(resumed: Path, uninterrupted: Path, stages: list[str]) -> None:
    for stage in stages:
        a, b = weights(uninterrupted / stage / "checkpoint"), weights(resumed / stage / "checkpoint")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"stage {stage}: weights differ"
    assert compared(resumed) == compared(uninterrupted)  # one record per step, the same values
    assert read_completions(resumed) == read_completions(uninterrupted)  # one table per step, the same rows
    summary = json.loads((resumed / "summary.json").read_text())
    assert (
        summary["status"] == "done" and summary["results"] == json.loads((uninterrupted / "summary.json").read_text())["results"]
    )


@pytest.fixture(scope="module")
def sft_uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("sft") / "run"
    ok(run_cli(*SFT, run_dir=run_dir))
    return run_dir


def test_sft_killed_during_a_checkpoint_and_resumed_equals_uninterrupted(tmp_path, sft_uninterrupted):
    run_dir = tmp_path / "run"
    stop_after_checkpoints(start_cli(*SFT, run_dir=run_dir), run_dir / "sft", 2, signal.SIGKILL)
    saved = complete_checkpoints(run_dir / "sft")
    # as if the kill had come while the newest checkpoint was written: it is not marked complete
    (saved[-1] / "complete.json").unlink()
    done = ok(run_cli(*SFT, run_dir=run_dir))
    assert f"continuing from {saved[-2].name}" in done.stdout
    assert_same_run(run_dir, sft_uninterrupted, ["sft"])
    assert len(complete_checkpoints(run_dir / "sft")) == 2  # algo.save_total_limit


def test_sigterm_saves_a_checkpoint_and_the_rerun_equals_uninterrupted(tmp_path, sft_uninterrupted):
    run_dir = tmp_path / "run"
    process = start_cli(*SFT, run_dir=run_dir)
    stop_after_checkpoints(process, run_dir / "sft", 1, signal.SIGTERM)
    assert process.returncode == 128 + signal.SIGTERM
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and not (run_dir / "sft" / "checkpoint").exists()
    stopped_at = complete_checkpoints(run_dir / "sft")[-1]
    assert int(stopped_at.name.split("-")[1]) < 12
    done = ok(run_cli(*SFT, run_dir=run_dir))
    assert f"continuing from {stopped_at.name}" in done.stdout
    assert_same_run(run_dir, sft_uninterrupted, ["sft"])


@pytest.mark.parametrize(
    "algo, args",
    [
        ("luffy", []),  # GRPO's trainer, with a demonstration in each group: the untrained model gets gradients
        ("sdpo", ["algo.learning_rate=1e-4"]),  # the EMA teacher is in each checkpoint
        ("jackpot", ["algo.actor=self", "algo.actor_lag=3", "algo.obrs_lambda=1.05"]),  # the stale actor, the draws
    ],
)
def test_rl_killed_and_resumed_equals_uninterrupted(tmp_path, algo, args):
    command = [f"algo={algo}", *RL, *args]
    ok(run_cli(*command, run_dir=tmp_path / "a"))
    stop_after_checkpoints(start_cli(*command, run_dir=tmp_path / "b"), tmp_path / "b" / algo, 2, signal.SIGKILL)
    done = ok(run_cli(*command, run_dir=tmp_path / "b"))
    assert "continuing from checkpoint-" in done.stdout
    assert_same_run(tmp_path / "b", tmp_path / "a", [algo])


def test_sdpo_under_zero3_killed_and_resumed_equals_uninterrupted(tmp_path, untrained_checkpoint):
    """ZeRO-3 shards the EMA teacher too: its checkpoint gathers it, and a resumed run shards it out again."""
    command = ["algo=sdpo", "launcher=zero3", "launcher.num_processes=2", f"checkpoint={untrained_checkpoint}", *RL,
               "algo.learning_rate=1e-4"]  # fmt: skip
    ok(run_cli(*command, run_dir=tmp_path / "a"))
    stop_after_checkpoints(start_cli(*command, run_dir=tmp_path / "b"), tmp_path / "b" / "sdpo", 2, signal.SIGKILL)
    done = ok(run_cli(*command, run_dir=tmp_path / "b"))
    assert "continuing from checkpoint-" in done.stdout
    assert_same_run(tmp_path / "b", tmp_path / "a", ["sdpo"])
    last = complete_checkpoints(tmp_path / "a" / "sdpo")[-1].name
    a, b = (load_file(str(tmp_path / run / "sdpo" / last / "teacher.safetensors")) for run in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "the resumed run's teacher differs"


def test_ddp_stopped_by_ctrl_c_and_resumed_equals_uninterrupted(tmp_path):
    command = ["algo=luffy", "launcher=ddp", "launcher.num_processes=2", *RL, "algo.max_steps=8"]
    ok(run_cli(*command, run_dir=tmp_path / "a"))
    process = start_cli(*command, run_dir=tmp_path / "b")
    stop_after_checkpoints(process, tmp_path / "b" / "luffy", 1, signal.SIGINT)
    assert process.returncode in (128 + signal.SIGINT, 128 + signal.SIGTERM), process.returncode  # as the ranks saw it
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["status"] == "interrupted"
    done = ok(run_cli(*command, run_dir=tmp_path / "b"))
    assert "continuing from checkpoint-" in done.stdout
    assert_same_run(tmp_path / "b", tmp_path / "a", ["luffy"])
    rollouts = [r["step"] for r in read_completions(tmp_path / "a") if r["kind"] == "rollout"]
    assert rollouts == [step for step in range(1, 9) for _ in range(8)], "each table holds both ranks' 4 rollouts"


def test_ddp_ranks_stop_with_a_checkpoint_on_the_sigusr2_slurm_sends_before_a_time_limit(tmp_path):
    """Sent to the rlexp process alone (submitit_local does so; Slurm signals every process of the job): rlexp
    passes it on to the ranks, and the launcher between them (torchrun) does not die of it."""
    command = ["launcher=ddp", "launcher.num_processes=2", *SFT, "algo.max_steps=40"]
    process = start_cli(*command, run_dir=tmp_path)
    stop_after_checkpoints(process, tmp_path / "sft", 1, signal.SIGUSR2)
    assert process.returncode == 128 + signal.SIGUSR2, process.returncode
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "interrupted"
    done = ok(run_cli(*command, run_dir=tmp_path))
    assert "continuing from checkpoint-" in done.stdout
    assert [r["step"] for r in read_metrics(tmp_path) if "loss" in r] == list(range(1, 41))


def test_grpo_from_a_trained_model_killed_and_resumed_equals_uninterrupted(tmp_path, sft_checkpoint):
    # completions long enough for the trained model's answers, in groups of 4: rewards differ within a group
    command = ["algo=grpo", f"checkpoint={sft_checkpoint}", *RL, "algo.learning_rate=1e-4", "algo.max_completion_length=96",
               "algo.num_generations=4", "algo.per_device_train_batch_size=8"]  # fmt: skip
    ok(run_cli(*command, run_dir=tmp_path / "a"))
    losses = [r["loss"] for r in read_metrics(tmp_path / "a") if "loss" in r]
    assert any(loss != 0 for loss in losses), "a test of resuming needs steps that change the weights"
    stop_after_checkpoints(start_cli(*command, run_dir=tmp_path / "b"), tmp_path / "b" / "grpo", 1, signal.SIGKILL)
    ok(run_cli(*command, run_dir=tmp_path / "b"))
    assert_same_run(tmp_path / "b", tmp_path / "a", ["grpo"])


def test_a_pipeline_killed_in_its_second_stage_resumes_without_redoing_the_first(tmp_path):
    command = [*RL, "algo=luffy", "+algo@prepare.sft=sft", "prepare.sft.max_steps=4", "prepare.sft.save_steps=2",
               "prepare.sft.per_device_train_batch_size=4", "eval.before=true"]  # fmt: skip
    ok(run_cli(*command, run_dir=tmp_path / "a"))
    stop_after_checkpoints(start_cli(*command, run_dir=tmp_path / "b"), tmp_path / "b" / "luffy", 1, signal.SIGKILL)
    first_stage = (tmp_path / "b" / "sft" / "checkpoint" / "model.safetensors").stat().st_mtime_ns
    done = ok(run_cli(*command, run_dir=tmp_path / "b"))
    assert "stage sft" not in done.stdout and "continuing from checkpoint-" in done.stdout
    assert (tmp_path / "b" / "sft" / "checkpoint" / "model.safetensors").stat().st_mtime_ns == first_stage
    assert_same_run(tmp_path / "b", tmp_path / "a", ["sft", "luffy"])


def test_resume_never_refuses_a_run_unless_overwrite_and_auto_refuses_another_config(tmp_path, sft_uninterrupted):
    run_dir = tmp_path / "run"
    ok(run_cli(*SFT, run_dir=run_dir))
    refused = run_cli(*SFT, "resume=never", run_dir=run_dir)
    assert refused.returncode == 2 and "holds a run already and resume=never" in refused.stderr
    other = run_cli(*SFT, "algo.learning_rate=1e-3", run_dir=run_dir)
    assert other.returncode == 2 and "algo.learning_rate: 2e-05 -> 0.001" in other.stderr
    again = ok(run_cli(*SFT, "resume=never", "overwrite=true", run_dir=run_dir))
    assert "continuing" not in again.stdout
    assert_same_run(run_dir, sft_uninterrupted, ["sft"])


def test_a_second_process_in_a_run_directory_gets_one_line(tmp_path):
    run_dir = tmp_path / "run"
    first = start_cli(*SFT, "algo.max_steps=200", run_dir=run_dir)
    while not complete_checkpoints(run_dir / "sft"):  # the first process holds the directory
        assert first.poll() is None, first.communicate()[1][-2000:]
        time.sleep(0.02)
    second = run_cli(*SFT, "algo.max_steps=200", run_dir=run_dir)
    first.kill()
    first.communicate()
    assert second.returncode == 2 and second.stderr.strip().endswith("wait for it to end, or choose another hydra.run.dir")
    assert len(second.stderr.strip().splitlines()) == 1


def test_resume_from_a_given_checkpoint_runs_its_stage_on_from_there(tmp_path, sft_uninterrupted):
    checkpoint = complete_checkpoints(sft_uninterrupted / "sft")[0]
    run_dir = tmp_path / "run"
    done = ok(run_cli(*SFT, f"resume={checkpoint}", run_dir=run_dir))
    assert f"continuing from {checkpoint.name}" in done.stdout
    a, b = weights(sft_uninterrupted / "sft" / "checkpoint"), weights(run_dir / "sft" / "checkpoint")
    assert all(torch.equal(a[k], b[k]) for k in a)
    bad = run_cli(*SFT, f"resume={tmp_path}", run_dir=tmp_path / "other")
    assert bad.returncode == 2 and "is not a complete checkpoint" in bad.stderr
