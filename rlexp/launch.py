"""Hydra outside, launcher inside.

The Hydra process resolves the job's config and writes it to `<run_dir>/config.yaml`. With
`launcher=local` the worker then runs in this process; with `ddp`, `zero2` or `zero3` it runs
under `accelerate launch ... -m rlexp.worker <run_dir>/config.yaml`, one subprocess per job, so
ranks never see Hydra and a `-m` sweep is one launch per job.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rlexp.checkpoints import RunDirLock, die_with_parent, prepare_run_dir
from rlexp.config import LauncherConfig, resolve_precision, structured, threads_per_process, world_size
from rlexp.console import say
from rlexp.errors import ConfigError


def resolved_config(cfg: DictConfig) -> dict:
    """The job's config with every interpolation resolved and the run's naming filled in."""
    hydra_cfg = HydraConfig.get()
    config = OmegaConf.to_container(cfg, resolve=True)
    config["precision"] = resolve_precision(cfg.precision)
    cells = (hydra_cfg.launcher.get("n_jobs") or 1) if hydra_cfg.mode == RunMode.MULTIRUN else 1
    cells = cells if cells > 0 else max(1, (os.cpu_count() or 1) + 1 + cells)  # joblib's n_jobs=-1: every core
    if config["threads"] is None and cells > 1:  # hydra/launcher=joblib: the cores shared by the cells too
        config["threads"] = max(1, threads_per_process(None, cells) // world_size(structured(LauncherConfig, config["launcher"])))
    logger = config["logger"]
    if logger["run_name"] is None:
        logger["run_name"] = hydra_cfg.job.override_dirname or "default"
    if logger["group"] is None:
        sweep = Path(hydra_cfg.sweep.dir)  # runs/multirun/<date>/<time>
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        logger["group"] = f"{sweep.parent.name}_{sweep.name}" if multirun and cfg.name == "default" else cfg.name
    return config


# every rlexp process on this machine takes its GPUs here, one lock file per GPU, so two runs never share one
GPU_LOCKS = Path(tempfile.gettempdir()) / "rlexp-gpus"


class GpuSlot:
    """`gpus_per_job` GPUs of `gpus` held by this run until it ends (or its process dies: the locks are flock()s),
    with CUDA_VISIBLE_DEVICES set to them. Slots are consecutive groups of the pool; a run waits, with no time
    limit, until one is free."""

    def __init__(self, gpus: list[str], gpus_per_job: int):
        self.slots = [gpus[i : i + gpus_per_job] for i in range(0, len(gpus) - gpus_per_job + 1, gpus_per_job)]
        if not self.slots:
            raise ConfigError(
                f"launcher.gpus_per_job={gpus_per_job} needs that many GPUs and this machine shows {len(gpus)}; "
                "set launcher.gpus, or launcher.gpus_per_job=0"
            )
        self.held: list = []
        self.before = os.environ.get("CUDA_VISIBLE_DEVICES")

    def _try(self, slot: list[str]) -> bool:
        for gpu in slot:
            path = GPU_LOCKS / f"gpu-{gpu}.lock"
            handle = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o666), "r+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                self._release()
                return False
            self.held.append(handle)
        return True

    def _release(self) -> None:
        for handle in self.held:
            handle.close()  # closing the file drops its lock
        self.held = []

    def __enter__(self) -> list[str]:
        GPU_LOCKS.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            GPU_LOCKS.chmod(0o1777)  # shared by every user's runs
        waiting = False
        while True:
            for slot in self.slots:
                if self._try(slot):
                    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(slot)
                    return slot
            if not waiting:
                say(f"[rlexp] waiting for a free slot of {len(self.slots[0])} GPU(s) among {', '.join(sum(self.slots, []))}")
                waiting = True
            time.sleep(0.5)

    def __exit__(self, *exc) -> None:
        self._release()
        if self.before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = self.before


def gpu_pool(launcher: LauncherConfig) -> list[str]:
    if launcher.gpus:
        return [str(g) for g in launcher.gpus]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_slot(launcher_node) -> contextlib.AbstractContextManager:
    """The run's GPU slot (launcher.gpus_per_job), to be taken before anything asks CUDA about the GPUs: CUDA reads
    CUDA_VISIBLE_DEVICES once, when this process first uses it."""
    launcher = structured(LauncherConfig, launcher_node)
    return GpuSlot(gpu_pool(launcher), launcher.gpus_per_job) if launcher.gpus_per_job else contextlib.nullcontext()


def launch(cfg: DictConfig) -> dict:
    """Run the job in its run directory, which one process at a time may use; with mode=train, a run already
    there is continued (resume=auto), refused or replaced (resume=never, overwrite) first."""
    config = resolved_config(cfg)
    run_dir = Path(config["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.yaml"
    with RunDirLock(run_dir):
        if config["mode"] == "train":
            previous = yaml.safe_load(config_path.read_text()) if config_path.is_file() else None
            prepare_run_dir(run_dir, config, previous, [*config["prepare"], config["algo"]["name"]])
        config_path.write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
        if config["launcher"]["name"] == "local":
            from rlexp.worker import run

            return run(OmegaConf.create(config))
        return launch_accelerate(config, config_path)


def accelerate_settings(config: dict) -> dict:
    launcher = structured(LauncherConfig, config["launcher"])
    cuda = torch.cuda.is_available()
    settings = {
        "compute_environment": "LOCAL_MACHINE",
        "num_machines": 1,
        "machine_rank": 0,
        "num_processes": world_size(launcher),
        "mixed_precision": {"bf16": "bf16", "fp16": "fp16"}.get(config["precision"], "no"),
        "use_cpu": not cuda,
        # accelerate starts one process per rank (torchrun) for MULTI_GPU and DEEPSPEED only; with
        # use_cpu the ranks then form a gloo group (MULTI_CPU itself means an MPI launch)
        "distributed_type": "MULTI_GPU",
    }
    settings.update({k: v for k, v in launcher.accelerate.items() if v is not None})
    return settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PassSignalsOn:
    """While the launched processes run: SIGINT and SIGTERM are theirs to act on (every rank saves a checkpoint and
    stops), and this process waits for them and reports, instead of ending first. A handler of our own, not
    SIG_IGN, which a child would inherit."""

    def __enter__(self):
        self.before = {s: signal.signal(s, lambda signum, frame: None) for s in (signal.SIGINT, signal.SIGTERM)}

    def __exit__(self, *exc):
        for signum, handler in self.before.items():
            signal.signal(signum, handler)


def launch_accelerate(config: dict, config_path: Path) -> dict:
    run_dir = config_path.parent
    accelerate_path = run_dir / "accelerate.yaml"
    accelerate_path.write_text(yaml.safe_dump(accelerate_settings(config), sort_keys=False))
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(accelerate_path),
        "--main_process_port", str(free_port()),
        "-m", "rlexp.worker", str(config_path),
    ]  # fmt: skip
    say(f"[rlexp] launching: {' '.join(cmd)}")
    with PassSignalsOn():
        done = subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=die_with_parent)
    summary_path = run_dir / "summary.json"
    if done.returncode != 0 and summary_path.is_file() and json.loads(summary_path.read_text())["status"] == "interrupted":
        return json.loads(summary_path.read_text())
    if done.returncode != 0:
        raise RuntimeError(
            f"the {config['launcher']['name']} launch failed with exit code {done.returncode}; its output is above, the run dir is {run_dir}"
        )
    return json.loads((run_dir / "summary.json").read_text())
