import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
# one torch thread per process: with a thread per core, a step slows down many times over as soon as
# another process shares the cores (scripts/bench_threads.py measures it)
THREADS = 1

# a model and an evaluation small enough for a few seconds per run on 2 CPU cores
SMALL = [
    "model.hidden_size=32", "model.num_layers=2", "model.num_heads=2", "model.intermediate_size=64",
    "logger=none", "eval.num_prompts=4", "eval.num_samples=2", "eval.k=[1,2]", "eval.max_new_tokens=48",
]  # fmt: skip


def run_cli(*args: str, run_dir: Path | str | None = None) -> subprocess.CompletedProcess:
    """`python -m rlexp ARGS` in a subprocess, as a user would run it, with `threads=THREADS`.
    No time limit: a loaded machine is slow, not wrong."""
    argv = [sys.executable, "-m", "rlexp", *args, f"threads={THREADS}"]
    if run_dir is not None:
        argv.append(f"hydra.run.dir={run_dir}")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}  # HF_HUB_CACHE too
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def untrained_checkpoint(tmp_path_factory):
    """A checkpoint of the default tiny model as built, for tests that need a model, not a trained one."""
    from rlexp.models import ModelConfig, build_tiny, byte_tokenizer

    path = tmp_path_factory.mktemp("untrained") / "checkpoint"
    tokenizer = byte_tokenizer()
    build_tiny(ModelConfig(), tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def weights(checkpoint) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(checkpoint) / "model.safetensors"))


def initial_weights(run_dir) -> dict:
    """The weights the run's tiny model started from, rebuilt from its config.yaml."""
    from omegaconf import OmegaConf

    from rlexp.models import ModelConfig, build_tiny, byte_tokenizer

    cfg = OmegaConf.load(Path(run_dir) / "config.yaml").model
    return dict(build_tiny(ModelConfig(**cfg), byte_tokenizer()).state_dict())


@pytest.fixture(autouse=True)
def empty_hub_cache(tmp_path_factory, monkeypatch):
    """Tests see an empty Hugging Face cache, as on a fresh machine, whatever this one holds."""
    import huggingface_hub.constants

    cache = str(tmp_path_factory.getbasetemp() / "hf-cache")
    monkeypatch.setenv("HF_HUB_CACHE", cache)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", cache)


@pytest.fixture(autouse=True)
def no_process_group_settings_leak(monkeypatch):
    """TRL's colocated vLLM set-up writes RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT into os.environ (and so does
    rlexp's evaluation engine): a CLI run a later test starts would inherit them and open a process group on that
    port, which the other pytest worker's run holds too. Each test starts without them and leaves none behind."""
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def pytest_configure(config):
    import torch

    torch.set_num_threads(THREADS)


# a test that starts the CLI or another Python process is a smoke test; the rest (in-process) are unit tests
SMOKE_SIGNS = ("run_cli(", "cli(", "subprocess.")
SMOKE_FIXTURES = {"cli", "sft_checkpoint", "untrained_checkpoint", "demo_pipeline"}
# fixtures that take a while to make: `make test` runs 2 pytest processes (pytest-xdist), and the tests that share one
# of these run in the same process, so each is made once
SHARED_RUNS = {"sft_checkpoint", "sft_uninterrupted", "demo_pipeline"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's, which reads the xdist_group marks to group the tests
def pytest_collection_modifyitems(config, items):
    """Marks every test `unit` or `smoke` (`make test-fast` runs the unit ones), and skips `gpu` tests without a GPU."""
    import inspect

    for item in items:
        for fixture in SHARED_RUNS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group(fixture))
        if "gpu" in item.keywords or "slow" in item.keywords:
            continue
        source = inspect.getsource(item.function) if hasattr(item, "function") else ""
        smoke = SMOKE_FIXTURES & set(getattr(item, "fixturenames", ())) or any(sign in source for sign in SMOKE_SIGNS)
        item.add_marker(pytest.mark.smoke if smoke else pytest.mark.unit)
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


# the demo's game (conf/experiment/demo.yaml): 3 cards, target 12, the short prompt
EASY_GAME = ["env.num_cards=3", "env.target=12", "env.prompt_style=short", "eval.max_new_tokens=96"]


def ok(done):
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="session")
def sft_checkpoint(tmp_path_factory):
    """The demo's SFT stage (about 2.5 minutes): a tiny model that writes the answer format and
    solves about 40% of ID deals, for GRPO to start from."""
    run_dir = tmp_path_factory.mktemp("sft") / "run"
    ok(run_cli(
        "algo=sft", *EASY_GAME, "logger=none", "algo.learning_rate=1e-3", "algo.max_steps=700",
        "algo.per_device_train_batch_size=16", "eval.before=false", "eval.num_prompts=8", "eval.num_samples=2", "eval.k=[1,2]",
        run_dir=run_dir,
    ))  # fmt: skip
    return run_dir / "sft" / "checkpoint"


# experiment=demo shortened: SFT, then GRPO from its checkpoint, logged to W&B (offline) with a completion table every
# step of 6 rows
DEMO_PIPELINE = ["experiment=demo", *SMALL, "logger=wandb", "prepare.sft.max_steps=2", "algo.max_steps=2",
                 "algo.per_device_train_batch_size=8", "algo.num_generations=4", "algo.max_completion_length=32",
                 "logger.log_completions_steps=1", "logger.completions_rows=6"]  # fmt: skip


@pytest.fixture(scope="session")
def demo_pipeline(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One run of DEMO_PIPELINE in `<tmp>/<its run name>`, for the tests that read a whole pipeline's run (about 20 s):
    its run directory and its CompletedProcess."""
    parent = tmp_path_factory.mktemp("demo_pipeline")
    done = ok(run_cli(*DEMO_PIPELINE, run_dir=str(parent / "${rlexp.run_name:}")))
    (run_dir,) = parent.iterdir()
    return run_dir, done


FAKE_VLLM = ROOT / "tests" / "fake_vllm"


@pytest.fixture
def fake_vllm(monkeypatch):
    """vLLM "installed" for one in-process test: tests/fake_vllm's test double, found by TRL's import checks and put
    where TRL's vLLM generation imported vLLM's names. Yields the module; its RECORD lists every engine, call and
    weight load."""
    import importlib

    monkeypatch.syspath_prepend(str(FAKE_VLLM))
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    vllm = importlib.import_module("vllm")
    import trl.generation.vllm_generation as trl_vllm
    from vllm.sampling_params import StructuredOutputsParams

    for name, value in [("LLM", vllm.LLM), ("SamplingParams", vllm.SamplingParams), ("RequestOutput", vllm.RequestOutput)]:
        monkeypatch.setattr(trl_vllm, name, value, raising=False)
    monkeypatch.setattr(trl_vllm, "StructuredOutputsParams", StructuredOutputsParams, raising=False)
    vllm.RECORD.clear()
    yield vllm
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]
