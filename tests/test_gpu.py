"""Runs that need a CUDA GPU (pytest -m gpu); skipped without one."""

import json

import pytest
from conftest import SMALL, run_cli

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
