"""Sweeps: several cells at once with hydra/launcher=joblib, each with GPUs of its own from a pool, the cores shared
on a CPU; and a sweep run again, which skips its done cells and resumes the rest."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SMALL, ok, run_cli
from test_resume import SFT, start_cli, stop_after_checkpoints

TINY_SFT = ["algo=sft", *SMALL, "env.num_cards=3", "env.target=12", "env.prompt_style=short", "algo.max_steps=4",
            "algo.per_device_train_batch_size=4", "eval.before=false", "eval.num_prompts=2", "eval.num_samples=1",
            "eval.k=[1]", "eval.max_new_tokens=16"]  # fmt: skip


def sweep_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """A joblib sweep as a user runs it (no threads= given: rlexp shares the cores among the cells), with the GPU
    locks in this test's own temporary directory."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "TMPDIR": str(tmp_path)}
    argv = [sys.executable, "-m", "rlexp", "-m", "hydra/launcher=joblib", *args]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)


def summaries(sweep: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]


def test_four_cells_at_once_on_two_gpu_slots_never_share_one(tmp_path):
    sweep = tmp_path / "sweep"
    ok(sweep_cli("hydra.launcher.n_jobs=4", *TINY_SFT, "seed=0,1,2,3", "launcher.gpus=[0,1]", "launcher.gpus_per_job=1",
                 f"hydra.sweep.dir={sweep}", tmp_path=tmp_path))  # fmt: skip
    cells = summaries(sweep)
    assert len(cells) == 4 and all(c["status"] == "done" for c in cells)
    assert {c["cuda_visible_devices"] for c in cells} == {"0", "1"}
    for gpu in ("0", "1"):
        held = sorted((c["started_at"], c["ended_at"]) for c in cells if c["cuda_visible_devices"] == gpu)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(held, held[1:])), f"GPU {gpu} double-booked"
    schedule = sorted((round(c["started_at"] - cells[0]["started_at"], 1), c["seed"], c["cuda_visible_devices"]) for c in cells)
    print("schedule (start s, seed, GPU):", schedule)


def test_two_cells_at_once_on_a_cpu_share_its_cores(tmp_path):
    sweep = tmp_path / "sweep"
    ok(sweep_cli("hydra.launcher.n_jobs=2", *TINY_SFT, "seed=0,1", f"hydra.sweep.dir={sweep}", tmp_path=tmp_path))
    cells = summaries(sweep)
    cores = len(os.sched_getaffinity(0))
    assert len(cells) == 2 and all(c["status"] == "done" and c["threads"] == max(1, cores // 2) for c in cells)
    assert all(c["cuda_visible_devices"] == os.environ.get("CUDA_VISIBLE_DEVICES") for c in cells)  # no slots asked for
    assert (sweep / "report.md").is_file()


def test_a_sweep_run_again_skips_its_done_cells_and_resumes_the_interrupted_one(tmp_path):
    sweep = tmp_path / "sweep"
    command = ["-m", *SFT, "seed=0,1", f"hydra.sweep.dir={sweep}"]
    stop_after_checkpoints(start_cli(*command, run_dir=tmp_path / "unused"), sweep / "1" / "sft", 1, signal.SIGKILL)
    assert json.loads((sweep / "0" / "summary.json").read_text())["status"] == "done"
    first_cell = (sweep / "0" / "metrics.jsonl").read_text()
    done = ok(run_cli(*command))
    started = [line for line in done.stdout.splitlines() if line.startswith("[rlexp] stage sft:")]
    assert len(started) == 1 and "continuing from checkpoint-" in started[0]  # cell 0 is not trained again
    assert (sweep / "0" / "metrics.jsonl").read_text() == first_cell
    for cell in ("0", "1"):
        assert json.loads((sweep / cell / "summary.json").read_text())["status"] == "done"
    report = (sweep / "report.md").read_text()
    assert "| all runs | sft | 0, 1 | `0`, `1` |" in report and "Cells not done" not in report  # one arm, both seeds


def test_more_gpus_per_job_than_the_machine_has_is_one_config_error():
    from rlexp.errors import ConfigError
    from rlexp.launch import GpuSlot

    with pytest.raises(ConfigError, match="launcher.gpus_per_job=2 needs that many GPUs and this machine shows 1"):
        GpuSlot(["0"], 2)
