"""Run untrusted, model-written Python programs (specs/code.md section 7).

    from rlexp.sandbox import run_program
    result = run_program("print(input()[::-1])", stdin="abc\\n", timeout_s=2)
    result.verdict, result.stdout        # ("ok", "cba\\n")

The trainer never executes model code. Each program runs in a child process tree of its own:

- **process**: a new session (its own process group, killed whole with SIGKILL); a CPU-time limit whose hard
  value kills even a program that ignores SIGXCPU; a wall clock kept by the parent; address-space, data,
  file-size (1 MiB), open-file and process-count limits; no core dumps;
- **identity**: when rlexp runs as root, the program runs as an unprivileged user id of its own (one per
  process and worker slot), so it cannot write what root owns nor signal another slot's programs;
- **environment**: rebuilt from a short allowlist (no `HF_TOKEN`, `WANDB_API_KEY`, cloud keys, `PYTHONPATH`),
  `python -I`, a private 0700 working directory as cwd, `HOME` and `TMPDIR`, removed afterwards;
- **output**: stdout and stderr are read while the program runs and it is killed at the cap, so a flood never
  reaches the trainer's memory; expected outputs never enter the sandbox (the caller compares);
- **namespaces** (level `namespaces`): a new user, network, mount and PID namespace with a fresh `/proc`: no
  network, no view of the trainer's processes or their environment, and every process the program started
  dies with it; every file system read-only but the working directory, empty tmpfs over the shared scratch
  directories and the homes, and no capabilities left to undo that;
- **bubblewrap** (level `bwrap`, when `bwrap` is installed): all of the above plus a file system that is
  `/usr` read-only, an empty `/tmp` and the working directory, so nothing outside it can be read or written.

The level is probed once per process (`probe()`): `bwrap` if it works, else `namespaces` if the kernel lets an
unprivileged process create user namespaces (Docker's default seccomp profile does not), else `rlimit-only`,
logged with the reason. `require_isolation=True` refuses to run at `rlimit-only`.

Many programs run at once on a pool of threads, one sandbox process each (`Sandbox.run_many`); a batch has a
deadline after which what is still running is killed and what has not started is not started.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import json
import logging
import os
import queue
import select
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

LEVELS = ("bwrap", "namespaces", "rlimit-only")
DRIVER_SOURCE = (Path(__file__).parent / "driver.py").read_text()
# when rlexp is root, programs run as SLOT_UID_BASE + 32 * (pid % 1000) + slot: a user of their own per process
# and worker slot (this range is otherwise unused), so programs of different slots cannot signal each other
SLOT_UID_BASE = 61000
SLOT_UIDS = 32000


def slot_uid(slot: int) -> int:
    return SLOT_UID_BASE + 32 * (os.getpid() % 1000) + slot % 32
STDERR_CAP = 64 << 10
TMPFS_BYTES = str(64 << 20)
# the sandbox's interpreter must be reachable by an unprivileged user; a venv under /root is not
FALLBACK_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")


class SandboxUnavailable(RuntimeError):
    """The asked-for isolation level cannot run on this machine."""


@dataclass
class RunResult:
    """One execution of a program on one input."""

    verdict: str  # ok | runtime_error | timeout | output_limit | sandbox_error | not_run
    stdout: str = ""
    stderr: str = ""
    exit_code: Optional[int] = None
    wall_s: float = 0.0
    value: Optional[str] = None  # functional mode: the return value as JSON text
    error: Optional[dict] = None  # {type, message, line, func, source} for runtime errors
    unencodable: Optional[str] = None  # functional mode: why the return value is not JSON

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


@dataclass
class Job:
    """A program and the tests to run it on, in order (stdin inputs, or JSON argument lines)."""

    code: str
    inputs: list[str]
    mode: str = "stdin"  # stdin | functional
    fn_name: Optional[str] = None
    time_limit: float = 6.0  # seconds of wall clock per test
    out_caps: Optional[list[int]] = None  # per-test stdout cap in bytes (default: the sandbox's)
    stop_at_first_failure: bool = False
    # decides "failure" for stop_at_first_failure: called with (test index, RunResult), True = passed
    check: Any = None


@functools.lru_cache(maxsize=None)
def _world_reachable(path: str) -> bool:
    """Whether a user who owns nothing here can execute `path` (every directory on the way searchable)."""
    real = Path(os.path.realpath(path))
    try:
        if not real.stat().st_mode & stat.S_IXOTH:
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in real.parents)
    except OSError:
        return False


def _interpreter(drop_uid: bool) -> str:
    candidates = [sys.executable] + [p for p in FALLBACK_PYTHONS if os.path.exists(p)]
    if not drop_uid:
        return sys.executable
    for path in candidates:
        if _world_reachable(path):
            return os.path.realpath(path)
    raise SandboxUnavailable(
        f"no Python interpreter that an unprivileged user can run: {sys.executable} is under a private directory "
        f"and none of {', '.join(FALLBACK_PYTHONS)} exists; install python3 system-wide"
    )


def _scrubbed_env(workdir: str) -> dict[str, str]:
    """Everything the program may see of the environment; nothing is inherited."""
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONHASHSEED": "0",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        # numpy's thread pools otherwise reserve address space per core and hit the memory limit
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _bwrap_prefix(workdir: str, python: str) -> list[str]:
    args = ["bwrap", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    prefix = str(Path(os.path.realpath(python)).parent.parent)
    if not prefix.startswith("/usr/"):
        args += ["--ro-bind", prefix, prefix]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    # every writable place is a size-limited tmpfs: nothing reaches the host's disk, and memory stays bounded
    args += ["--proc", "/proc", "--dev", "/dev", "--size", TMPFS_BYTES, "--tmpfs", "/dev/shm",
             "--size", TMPFS_BYTES, "--tmpfs", "/tmp", "--size", TMPFS_BYTES, "--perms", "0700", "--tmpfs", workdir,
             "--chdir", workdir]
    # --as-pid-1: the driver is process 1 of the PID namespace, which its programs cannot kill
    args += ["--unshare-all", "--die-with-parent", "--new-session", "--as-pid-1", "--"]
    return args


UNSHARE_PREFIX = ["unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--"]


@dataclass(frozen=True)
class Launch:
    """How a sandbox process is started at one level."""

    level: str
    drop_uid: bool  # rlexp runs as root: programs run as SLOT_UID_BASE + slot
    python: str

    def command(self, workdir: str, slot: int) -> list[str]:
        prefix: list[str] = []
        if self.drop_uid:
            uid = str(slot_uid(slot))
            prefix = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
        if self.level == "bwrap":
            prefix += _bwrap_prefix(workdir, self.python)
        elif self.level == "namespaces":
            prefix += UNSHARE_PREFIX
        return prefix + [self.python, "-I", "-c", DRIVER_SOURCE]


def _try_level(level: str, drop_uid: bool) -> tuple[Optional[Launch], str]:
    needs = {"bwrap": ["bwrap"], "namespaces": ["unshare"], "rlimit-only": []}[level] + (["setpriv"] if drop_uid else [])
    missing = [tool for tool in needs if shutil.which(tool) is None]
    if missing:
        return None, f"{', '.join(missing)} not installed"
    try:
        launch = Launch(level, drop_uid, _interpreter(drop_uid))
    except SandboxUnavailable as exc:
        return None, str(exc)
    try:
        results = _run_job(launch, Job("print(1 + 1)", [""], time_limit=10.0), slot=0, memory_mb=512, out_cap=1 << 20)
    except OSError as exc:
        return None, str(exc)
    if results[0].verdict == "ok" and results[0].stdout.strip() == "2":
        return launch, "works"
    return None, (results[0].stderr or (results[0].error or {}).get("message", "") or results[0].verdict).strip()[-300:]


@functools.lru_cache(maxsize=None)
def probe(level: str = "auto") -> Launch:
    """The strongest isolation this machine allows (or exactly `level`), tried once per process."""
    drop_uid = os.geteuid() == 0
    tried = []
    for candidate in LEVELS if level == "auto" else (level,):
        launch, reason = _try_level(candidate, drop_uid)
        if launch:
            if tried:
                log.warning("sandbox level %s (%s)", candidate, "; ".join(tried))
            else:
                log.info("sandbox level %s", candidate)
            return launch
        tried.append(f"{candidate} unavailable: {reason}")
    raise SandboxUnavailable("; ".join(tried))


def _hidden_dirs() -> list[str]:
    """What the `namespaces` level covers with an empty tmpfs: shared scratch space and the homes."""
    candidates = ["/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/home", "/root", os.path.expanduser("~"),
                  tempfile.gettempdir()]
    found = sorted({os.path.realpath(p) for p in candidates if os.path.isdir(p)} - {"/", "/usr"})
    # covering a directory also covers what is below it
    return [p for p in found if not any(p.startswith(q.rstrip("/") + "/") for q in found if q != p)]


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    log.warning(message)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def _close_and_wait(proc: subprocess.Popen, timeout: float) -> None:
    """Close the driver's input and give it `timeout` seconds to exit (Popen.wait(timeout) polls with sleeps)."""
    try:
        proc.stdin.close()
        pidfd = os.pidfd_open(proc.pid)
    except OSError:
        return
    try:
        select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)


class _Pipes:
    """Line-oriented, deadline-bounded talk with the driver; its stderr is drained under a cap."""

    def __init__(self, proc: subprocess.Popen, line_cap: int):
        self.proc, self.line_cap = proc, line_cap
        self.selector = selectors.DefaultSelector()
        self.selector.register(proc.stdout, selectors.EVENT_READ, "out")
        self.selector.register(proc.stderr, selectors.EVENT_READ, "err")
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
        self.out, self.err = bytearray(), bytearray()
        self.open = {"out", "err"}

    def send(self, data: bytes, deadline: float) -> bool:
        fd = self.proc.stdin.fileno()
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                n = os.write(fd, view[: 1 << 16])
                view = view[n:]
            except BlockingIOError:
                self._pump(min(left, 0.05))
            except OSError:  # the driver is gone
                return False
        return True

    def _pump(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            try:
                data = os.read(key.fileobj.fileno(), 1 << 16)
            except BlockingIOError:
                continue
            if not data:
                self.selector.unregister(key.fileobj)
                self.open.discard(key.data)
            elif key.data == "out":
                self.out += data
            elif len(self.err) < STDERR_CAP:
                self.err += data[: STDERR_CAP - len(self.err)]

    def recv(self, deadline: float) -> Optional[dict]:
        """The next JSON line, or None on timeout, EOF or an over-long line."""
        while b"\n" not in self.out:
            left = deadline - time.monotonic()
            if left <= 0 or "out" not in self.open or len(self.out) > self.line_cap:
                return None
            self._pump(left)
        line, _, rest = bytes(self.out).partition(b"\n")
        self.out = bytearray(rest)
        try:
            return json.loads(line)
        except ValueError:
            return None

    def close(self) -> None:
        self.selector.close()


def _record_to_result(record: dict) -> RunResult:
    return RunResult(
        verdict=record.get("status", "sandbox_error"),
        stdout=record.get("stdout", ""),
        stderr=record.get("stderr", ""),
        exit_code=record.get("exit_code"),
        wall_s=record.get("elapsed_ms", 0.0) / 1000,
        value=record.get("value"),
        error=record.get("error"),
        unencodable=record.get("unencodable"),
    )


def _run_job(launch: Launch, job: Job, slot: int, memory_mb: int, out_cap: int,
             deadline: Optional[float] = None, file_size_mb: int = 1, max_processes: int = 64) -> list[RunResult]:
    """Start one sandbox process, run `job`'s tests in it one by one, and always clean up."""
    start = time.monotonic()
    # a backstop over the driver's own per-test clock: tests * limit * 1.5 + 2 s (code.md section 7)
    backstop = start + len(job.inputs) * job.time_limit * 1.5 + 2.0
    deadline = backstop if deadline is None else min(deadline, backstop)
    results: list[RunResult] = []
    workdir = tempfile.mkdtemp(prefix="sbx-")
    proc = None
    pipes = None
    try:
        os.chmod(workdir, 0o700)
        if launch.drop_uid:
            os.chown(workdir, slot_uid(slot), slot_uid(slot))
        proc = subprocess.Popen(
            launch.command(workdir, slot),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=workdir, env=_scrubbed_env(workdir), start_new_session=True, close_fds=True,
        )
        caps = job.out_caps or [out_cap] * len(job.inputs)
        pipes = _Pipes(proc, line_cap=max(caps, default=out_cap) * 7 + STDERR_CAP * 7 + (1 << 16))
        header = {
            "code": job.code, "mode": job.mode, "fn_name": job.fn_name, "time_limit": job.time_limit,
            "memory_mb": memory_mb, "file_size_mb": file_size_mb, "max_processes": max_processes,
            "out_cap": out_cap, "err_cap": STDERR_CAP,
            # process 1 of a PID namespace may kill everything a test leaves behind
            "kill_all": launch.level != "rlimit-only",
            # bubblewrap builds the file system itself; at `namespaces` the driver does (see driver.py)
            "isolate_fs": launch.level == "namespaces",
            "hidden": _hidden_dirs(),
            "keep": [str(Path(os.path.realpath(launch.python)).parent.parent)],
        }
        ready = pipes.send((json.dumps(header) + "\n").encode(), deadline) and pipes.recv(deadline)
        if ready and header["isolate_fs"] and not ready.get("fs_isolated"):
            _warn_once(f"sandbox: {bytes(pipes.err).decode('utf-8', 'replace').strip()[-300:]}; programs can read "
                       "world-readable files and write (1 MiB at most) to /tmp; install bubblewrap")
        if not ready:
            detail = bytes(pipes.err).decode("utf-8", "replace").strip()[-500:]
            return results + [RunResult("sandbox_error", stderr=detail)] * (len(job.inputs) - len(results))
        for i, test_input in enumerate(job.inputs):
            sent = time.monotonic()
            test_deadline = min(deadline, sent + job.time_limit * 1.5 + 2.0)
            request = json.dumps({"input": test_input, "out_cap": caps[i]}) + "\n"
            record = pipes.send(request.encode(), test_deadline) and pipes.recv(test_deadline)
            if not record:
                timed_out = time.monotonic() >= test_deadline
                _kill_group(proc)
                proc.wait()
                if timed_out and test_deadline == deadline < sent + job.time_limit * 1.5 + 2.0:
                    break  # the batch's deadline, not the program's time limit: this test was not judged
                if timed_out:
                    results.append(RunResult("timeout", wall_s=time.monotonic() - sent))
                else:
                    # the program took its test runner down with it
                    results.append(RunResult("runtime_error", exit_code=proc.returncode, wall_s=time.monotonic() - sent,
                                             error={"type": "Killed", "message": "the program killed its test runner"}))
                break
            result = _record_to_result(record)
            results.append(result)
            if job.stop_at_first_failure and not (job.check(i, result) if job.check else result.ok):
                break
    finally:
        if pipes is not None:
            pipes.close()
        if proc is not None:
            # a driver that reads end-of-input exits, and its namespace with it; killing the launcher
            # first would orphan the driver to the host's init, which may never reap it
            _close_and_wait(proc, timeout=1.0)
            _kill_group(proc)
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                try:
                    stream.close()
                except OSError:
                    pass
        shutil.rmtree(workdir, ignore_errors=True)
    return results + [RunResult("not_run")] * (len(job.inputs) - len(results))


@dataclass
class Sandbox:
    """A pool that runs jobs in parallel, each in its own sandbox process."""

    level: str = "auto"  # auto | bwrap | namespaces | rlimit-only
    workers: int = 0  # parallel sandbox processes; 0 = one per CPU core
    memory_mb: int = 2048
    out_cap: int = 1 << 20  # stdout bytes kept per test; the program is killed past it
    file_size_mb: int = 1
    max_processes: int = 64
    require_isolation: bool = False
    _slots: Any = field(default=None, init=False, repr=False)
    _pool: Any = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if self.level not in ("auto",) + LEVELS:
            raise ValueError(f"sandbox level must be auto or one of {', '.join(LEVELS)}, got {self.level!r}")
        self.workers = self.workers or os.cpu_count() or 1

    @property
    def launch(self) -> Launch:
        launch = probe(self.level)
        if self.require_isolation and launch.level == "rlimit-only":
            raise SandboxUnavailable(
                "the sandbox could only limit resources (no user namespaces, no bubblewrap): programs could read this "
                "process's secrets and kill it; install bubblewrap or allow user namespaces, or set require_isolation=false"
            )
        return launch

    def _pool_and_slots(self):
        if self._pool is None:
            self._slots = queue.Queue()
            for slot in range(self.workers):
                self._slots.put(slot)
            self._pool = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="sandbox")
        return self._pool, self._slots

    def run(self, job: Job, deadline: Optional[float] = None) -> list[RunResult]:
        launch = self.launch
        _, slots = self._pool_and_slots()
        slot = slots.get()
        try:
            if deadline is not None and time.monotonic() >= deadline:
                return [RunResult("not_run")] * len(job.inputs)
            return _run_job(launch, job, slot, self.memory_mb, self.out_cap, deadline, self.file_size_mb, self.max_processes)
        except Exception as exc:  # noqa: BLE001 - one broken job must not take the batch (or training) down
            log.warning("sandbox: a job failed: %s: %s", type(exc).__name__, exc)
            return [RunResult("sandbox_error", stderr=f"{type(exc).__name__}: {exc}")] * len(job.inputs)
        finally:
            slots.put(slot)

    def run_many(self, jobs: list[Job], timeout_s: Optional[float] = None) -> list[list[RunResult]]:
        """Run jobs in parallel; nothing runs past `timeout_s` from now (tests it cuts off come back `not_run`)."""
        _ = self.launch  # probe, and refuse rlimit-only when isolation is required, before starting threads
        pool, _ = self._pool_and_slots()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        futures = [pool.submit(self.run, job, deadline) for job in jobs]
        return [f.result() for f in futures]

    def __getstate__(self):  # a Sandbox pickles without its threads
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init} | {"_slots": None, "_pool": None}

    def __setstate__(self, state):
        self.__dict__.update(state)


_DEFAULT = Sandbox()


def run_program(code: str, stdin: str = "", timeout_s: float = 6.0, memory_mb: int = 2048,
                level: str = "auto", out_cap: int = 1 << 20) -> RunResult:
    """Run one stdin/stdout program on one input in the sandbox; see `RunResult` for what comes back."""
    sandbox = _DEFAULT if (memory_mb, level, out_cap) == (2048, "auto", 1 << 20) else \
        Sandbox(level=level, workers=1, memory_mb=memory_mb, out_cap=out_cap)
    return sandbox.run(Job(code, [stdin], time_limit=timeout_s))[0]


def level(name: str = "auto") -> str:
    """The isolation level a sandbox gets here (probing once)."""
    return probe(name).level


__all__ = ["Job", "RunResult", "Sandbox", "SandboxUnavailable", "run_program", "probe", "level", "LEVELS"]
