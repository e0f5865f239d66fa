"""How the RL algorithms generate their rollouts: the `generation` group (rlexp/schema.py `GenerationConfig`) as the
fields of TRL's config, the seed of each vLLM engine, and the `trl vllm-serve` process of generation=vllm_server.

The checks import neither torch nor TRL: the command line runs them before anything loads.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Callable, Optional

from rlexp.errors import ConfigError
from rlexp.schema import VLLM_INSTALL, VLLM_MODES, GenerationConfig

# the TRL config fields the `generation` group sets, and what sets each: algo.trl may not set them
OWNED_FIELDS = {
    "use_vllm": "generation=vllm_colocate or generation=vllm_server",
    "vllm_mode": "generation=vllm_colocate or generation=vllm_server",
    "use_transformers_continuous_batching": "generation=continuous_batching",
    "vllm_gpu_memory_utilization": "generation.gpu_memory_utilization",
    "vllm_tensor_parallel_size": "generation.tensor_parallel_size",
    "vllm_max_model_length": "generation.max_model_length",
    "vllm_enable_sleep_mode": "generation.enable_sleep_mode",
    "vllm_importance_sampling_correction": "generation.importance_sampling_correction",
    "vllm_importance_sampling_mode": "generation.importance_sampling_mode",
    "vllm_importance_sampling_clip_max": "generation.importance_sampling_clip_max",
    "vllm_server_host": "generation.server_host",
    "vllm_server_port": "generation.server_port",
    "vllm_group_port": "generation.group_port",
    "vllm_server_timeout": "generation.server_timeout",
    "vllm_server_base_url": "generation=vllm_server (rlexp starts the server)",
}


def trl_fields(generation: GenerationConfig, is_mode: str, is_clip_max: float) -> dict:
    """The fields of TRL's GRPO-family config that make a trainer generate as `generation` says. `is_mode` and
    `is_clip_max` are the algorithm's own importance-sampling correction, used where generation.importance_sampling_*
    are null. A server's ports are those it was started on (`VLLMServer`)."""
    if generation.name == "continuous_batching":
        return {"use_vllm": False, "use_transformers_continuous_batching": True}
    fields = {"use_vllm": generation.name in VLLM_MODES}
    if generation.name not in VLLM_MODES:
        return fields
    fields.update(
        vllm_mode="server" if generation.name == "vllm_server" else "colocate",
        vllm_max_model_length=generation.max_model_length,
        vllm_importance_sampling_correction=generation.importance_sampling_correction,
        vllm_importance_sampling_mode=generation.importance_sampling_mode or is_mode,
        vllm_importance_sampling_clip_max=generation.importance_sampling_clip_max or is_clip_max,
    )
    if generation.name == "vllm_colocate":
        fields.update(
            vllm_gpu_memory_utilization=generation.gpu_memory_utilization,
            vllm_tensor_parallel_size=generation.tensor_parallel_size,
            vllm_enable_sleep_mode=generation.enable_sleep_mode,
        )
    else:
        fields.update(
            vllm_server_host=generation.server_host,
            vllm_server_port=generation.server_port,
            vllm_group_port=generation.group_port,
            vllm_server_timeout=generation.server_timeout,
        )
    return fields


def check(generation: GenerationConfig, vision: bool, world_size: int) -> None:
    """The checks of `generation` for a run with a stage that generates, before anything loads. Raises ConfigError."""
    if generation.name in VLLM_MODES and importlib.util.find_spec("vllm") is None:
        raise ConfigError(f"generation={generation.name} needs vLLM, which is not installed here: {VLLM_INSTALL}")
    if generation.name == "continuous_batching" and vision:
        raise ConfigError(
            "generation=continuous_batching generates text only (TRL's use_transformers_continuous_batching takes no "
            "images); a vision-language model generates with generation=hf or a vLLM mode"
        )
    if generation.name == "vllm_colocate" and world_size % generation.tensor_parallel_size:
        raise ConfigError(
            f"generation.tensor_parallel_size={generation.tensor_parallel_size} groups the {world_size} training "
            "process(es) into engines: it must divide their number"
        )


# ---------------------------------------------------------------- the seed of each colocated engine


def engine_seed(seed: int, group: int) -> int:
    """The seed of the vLLM engine of tensor-parallel group `group` in a run seeded `seed`: a different one for each
    (seed, group) pair (a hash of both, so seed 1's group 0 is not seed 0's group 1), the same for every rank of a
    group, which must sample alike; below 2**32, as vLLM's numpy seeding needs."""
    import numpy as np

    return int(np.random.SeedSequence([seed, group]).generate_state(1)[0])


@contextlib.contextmanager
def seeded_engines(seed: int):
    """While a trainer is built: every colocated vLLM engine TRL makes is seeded with `engine_seed(seed, group)`.

    TRL seeds the engine with the rank's tensor-parallel group only (`seed=process_index // tensor_parallel_size` in
    VLLMGeneration._init_vllm), never with the run's seed, so runs with seed=0,1,2 sample identical rollouts
    (huggingface/trl PR #7040, "pass args.seed to the colocated vLLM engine"). The smallest override that fixes it
    without copying `_init_vllm` wraps its one constructor call, `LLM(...)`, and turns the group index TRL passes as
    `seed` into the run's engine seed. A server is started with the run's seed instead (`server_command`)."""
    try:
        import trl.generation.vllm_generation as trl_vllm
    except ImportError:  # no TRL vLLM support at all: nothing to seed
        yield
        return
    engine = getattr(trl_vllm, "LLM", None)
    if engine is None:  # vLLM is not installed: no engine will be made
        yield
        return

    def seeded(*args, seed: int = 0, **kwargs):
        return engine(*args, seed=engine_seed(run_seed, seed), **kwargs)

    run_seed = seed
    trl_vllm.LLM = seeded
    try:
        yield
    finally:
        trl_vllm.LLM = engine


# ---------------------------------------------------------------- generation=vllm_server: the server's process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def split_gpus(pool: list[str], generation: GenerationConfig) -> tuple[list[str], list[str]]:
    """(the server's GPUs, the training processes' GPUs) out of `pool`, the GPUs the run sees."""
    server = [str(g) for g in generation.server_gpus] or pool[len(pool) - generation.tensor_parallel_size :]
    missing = [g for g in server if g not in pool]
    if missing:
        raise ConfigError(
            f"generation.server_gpus has {', '.join(missing)}, which the run does not see (it sees {', '.join(pool) or 'none'})"
        )
    training = [g for g in pool if g not in server]
    if not training:
        raise ConfigError(
            f"generation=vllm_server takes GPU(s) {', '.join(server)} of the {len(pool)} the run sees and leaves none "
            "to train on; use generation=vllm_colocate on a single GPU, or show the run more GPUs"
        )
    return server, training


def server_command(model: str, generation: GenerationConfig, port: int, seed: int) -> list[str]:
    """`trl vllm-serve` for `model` on `port`, seeded with the run's `seed` (passed on to `vllm serve`)."""
    command = [sys.executable, "-m", "trl.cli.main", "vllm-serve", "--model", model, "--host", generation.server_host,
               "--port", str(port), "--tensor_parallel_size", str(generation.tensor_parallel_size),
               "--gpu_memory_utilization", str(generation.gpu_memory_utilization)]  # fmt: skip
    if generation.max_model_length is not None:
        command += ["--max_model_len", str(generation.max_model_length)]
    return command + ["--seed", str(seed)]


class VLLMServer:
    """A generation server in a process of its own, for one stage: started on `gpus` (its CUDA_VISIBLE_DEVICES),
    healthy once GET `health_url` answers 200, stopped (SIGTERM to its process group, then SIGKILL) when the stage
    ends, fails or is stopped. Its output goes to `log`; a server that dies while starting is reported with the
    tail of that log. `command` is `server_command`'s, or in the tests a stand-in."""

    def __init__(self, command: list[str], gpus: list[str], health_url: str, log: Path, timeout: float,
                 say: Callable[[str], None] = print, should_stop: Callable[[], bool] = lambda: False):  # fmt: skip
        self.command, self.gpus, self.health_url, self.log = command, gpus, health_url, Path(log)
        self.timeout, self.say, self.should_stop = timeout, say, should_stop
        self.process: Optional[subprocess.Popen] = None

    def __enter__(self) -> "VLLMServer":
        self.start()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(self.gpus)}
        # TRL's weight-transfer endpoints need vLLM's development mode (trl vllm-serve sets it too)
        env["VLLM_SERVER_DEV_MODE"] = "1"
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True, preexec_fn=_die_with_parent)  # fmt: skip
        self.say(
            f"[rlexp] starting the vLLM server on GPU(s) {','.join(self.gpus) or '-'} (pid {self.process.pid}, log {self.log})"
        )

    def wait_healthy(self) -> None:
        started = time.time()
        next_note = started + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the vLLM server exited with code {self.process.returncode} before it answered {self.health_url}; "
                    f"the end of its log ({self.log}):\n{self.tail()}"
                )
            if self.healthy():
                self.say(f"[rlexp] the vLLM server answers at {self.health_url} after {time.time() - started:.0f} s")
                return
            if self.should_stop():
                return  # the run was asked to stop: the caller stops it
            now = time.time()
            if now - started > self.timeout:
                raise RuntimeError(
                    f"the vLLM server did not answer {self.health_url} within generation.server_timeout="
                    f"{self.timeout:g} s; the end of its log ({self.log}):\n{self.tail()}"
                )
            if now >= next_note:
                self.say(
                    f"[rlexp] waiting for the vLLM server to load the model ({now - started:.0f} s so far; its log: {self.log})"
                )
                next_note = now + 30
            time.sleep(0.2)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def tail(self, lines: int = 20) -> str:
        if not self.log.is_file():
            return "(no log)"
        with open(self.log, errors="replace") as f:
            return "".join(deque(f, maxlen=lines)).rstrip()

    def stop(self, grace: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)  # the server and the engine processes it started
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.say(f"[rlexp] stopped the vLLM server (pid {self.process.pid})")


def _die_with_parent() -> None:
    from rlexp.checkpoints import die_with_parent

    die_with_parent()  # the training process that started the server died: so does the server
