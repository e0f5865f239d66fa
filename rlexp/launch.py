"""Hydra outside, launcher inside.

The Hydra process resolves the job's config and writes it to `<run_dir>/config.yaml`. With
`launcher=local` the worker then runs in this process; with `ddp`, `zero2` or `zero3` it runs
under `accelerate launch ... -m rlexp.worker <run_dir>/config.yaml`, one subprocess per job, so
ranks never see Hydra and a `-m` sweep is one launch per job. In a Slurm job of several nodes (one task per
node), each node's process launches that node's ranks, and the first node's owns the run directory.
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
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rlexp.checkpoints import STOP_SIGNALS, RunDirLock, die_with_parent, prepare_run_dir
from rlexp.config import LauncherConfig, resolve_precision, starts_server, structured, threads_per_process, world_size
from rlexp.console import say
from rlexp.errors import ConfigError
from rlexp.generation import split_gpus
from rlexp.schema import GenerationConfig


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


@contextlib.contextmanager
def server_gpus_apart(cfg: DictConfig):
    """generation=vllm_server: the run's processes see only the GPUs they train on (CUDA_VISIBLE_DEVICES, so a ddp
    launch starts one rank per training GPU), and the config names the server's (generation.server_gpus), which the
    main process starts the server on for each stage that generates. Taken, like `gpu_slot`, before anything asks
    CUDA about the GPUs."""
    if not starts_server(cfg):
        yield
        return
    pool = gpu_pool(structured(LauncherConfig, cfg.launcher))
    if not pool:  # no GPU: validate says so
        yield
        return
    server, training = split_gpus(pool, structured(GenerationConfig, cfg.generation))
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(training)
    cfg.generation.server_gpus = server
    say(f"[rlexp] generation=vllm_server: the server on GPU(s) {','.join(server)}, training on {','.join(training)}")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def launch(cfg: DictConfig) -> dict:
    """Run the job in its run directory, which one process at a time may use; with mode=train, a run already
    there is continued (resume=auto), refused or replaced (resume=never, overwrite) first."""
    config = resolved_config(cfg)
    run_dir = Path(config["run_dir"])
    node = SlurmNodes.here()
    if node.count > 1:
        if config["launcher"]["name"] == "local":
            raise ConfigError(
                f"this Slurm job has {node.count} nodes and launcher=local runs on one; use launcher=ddp, zero2 or zero3"
            )
        if node.rank > 0:  # the first node owns the run directory; this one starts its ranks
            config_path = Path(tempfile.mkdtemp(prefix="rlexp-node-")) / "config.yaml"
            config_path.write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
            return launch_accelerate(config, config_path, node)
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
        return launch_accelerate(config, config_path, node)


@dataclass
class SlurmNodes:
    """The nodes of the Slurm job this process runs in, as Slurm sets them for each node's task (one task per
    node: hydra/launcher=slurm's tasks_per_node=1, or `srun --ntasks-per-node=1`). Read where the run starts, on
    each node, never once for all of them: each node's rank is its own SLURM_NODEID."""

    count: int = 1
    rank: int = 0
    main_host: str = "127.0.0.1"
    port: int = 0  # the same on every node: from the job id

    @classmethod
    def here(cls) -> "SlurmNodes":
        count = int(os.environ.get("SLURM_JOB_NUM_NODES") or os.environ.get("SLURM_NNODES") or 1)
        if count <= 1 or "SLURM_NODEID" not in os.environ:
            return cls()
        nodelist = os.environ["SLURM_JOB_NODELIST"]
        hosts = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
        job = int(os.environ.get("SLURM_JOB_ID", "0"))
        return cls(count, int(os.environ["SLURM_NODEID"]), hosts.stdout.split()[0], 20000 + job % 20000)


def accelerate_settings(config: dict, node: SlurmNodes) -> dict:
    launcher = structured(LauncherConfig, config["launcher"])
    cuda = torch.cuda.is_available()
    settings = {
        "compute_environment": "LOCAL_MACHINE",
        "num_machines": node.count,
        "machine_rank": node.rank,
        "num_processes": world_size(launcher) * node.count,  # every node's ranks
        "mixed_precision": {"bf16": "bf16", "fp16": "fp16"}.get(config["precision"], "no"),
        "use_cpu": not cuda,
        # accelerate starts one process per rank (torchrun) for MULTI_GPU and DEEPSPEED only; with
        # use_cpu the ranks then form a gloo group (MULTI_CPU itself means an MPI launch)
        "distributed_type": "MULTI_GPU",
    }
    if node.count > 1:
        settings.update(main_process_ip=node.main_host, main_process_port=node.port, same_network=True)
    settings.update({k: v for k, v in launcher.accelerate.items() if v is not None})
    return settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PassSignalsOn:
    """While the launch runs, in a process group of its own: a stop signal this process gets (Ctrl-C, SIGTERM,
    Slurm's SIGUSR2 before the time limit) is passed on to it, and torchrun passes it on to every rank (each in a
    session of its own), which saves a checkpoint and stops; this process waits for them and reports, instead of
    ending first."""

    def __init__(self, child: subprocess.Popen):
        self.child = child
        self.signum = None  # the first stop signal passed on

    def _pass_on(self, signum, frame) -> None:
        self.signum = self.signum or signum
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.child.pid, signum)

    def __enter__(self) -> "PassSignalsOn":
        self.before = {s: signal.signal(s, self._pass_on) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc):
        for signum, handler in self.before.items():
            signal.signal(signum, handler)


# seconds the ranks have, after a stop signal, to finish their step and save a checkpoint
STOP_GRACE_S = 900


def _launched() -> None:
    """In the accelerate process, before it runs."""
    die_with_parent()  # when this process goes, the launch goes
    os.setpgid(0, 0)  # a group of its own, to which PassSignalsOn passes the stop signals


def launch_accelerate(config: dict, config_path: Path, node: SlurmNodes) -> dict:
    run_dir = Path(config["run_dir"])
    accelerate_path = config_path.parent / "accelerate.yaml"
    accelerate_path.write_text(yaml.safe_dump(accelerate_settings(config, node), sort_keys=False))
    port = node.port if node.count > 1 else free_port()
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(accelerate_path),
        "--main_process_port", str(port),
        "-m", "rlexp.worker", str(config_path),
    ]  # fmt: skip
    say(f"[rlexp] launching: {' '.join(cmd)}")
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        # torchrun's options, read from the environment: the signals it passes on to the ranks, which stop with a
        # checkpoint (StopSignals), and how long it then waits before it kills them (its default, 30 s, is too short
        # a time to save a large model)
        "PET_SIGNALS_TO_HANDLE": ",".join(s.name for s in (*STOP_SIGNALS, signal.SIGHUP, signal.SIGQUIT)),
        "PET_SHUTDOWN_TIMEOUT": str(STOP_GRACE_S),
    }
    child = subprocess.Popen(cmd, env=env, preexec_fn=_launched)
    with PassSignalsOn(child) as passed:
        returncode = child.wait()
    if node.rank > 0:  # the first node's main process writes the summary
        if returncode == 0:
            return {"run_dir": str(run_dir), "status": "done"}
        if passed.signum is not None:
            return {"run_dir": str(run_dir), "status": "interrupted", "exit_code": 128 + passed.signum}
        raise RuntimeError(f"the ranks of node {node.rank} ended with exit code {returncode}; their output is above")
    summary_path = run_dir / "summary.json"
    if returncode != 0 and summary_path.is_file() and json.loads(summary_path.read_text())["status"] == "interrupted":
        return json.loads(summary_path.read_text())
    if returncode != 0:
        raise RuntimeError(
            f"the {config['launcher']['name']} launch failed with exit code {returncode}; its output is above, the run dir is {run_dir}"
        )
    return json.loads(summary_path.read_text())
