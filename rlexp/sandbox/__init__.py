"""Run untrusted, model-written Python programs, isolated from the trainer and from each other.

    from rlexp.sandbox import run_program
    result = run_program("print(input()[::-1])", stdin="abc\\n", timeout_s=2)
    result.verdict, result.stdout        # ("ok", "cba\\n")

The trainer never executes model code. Each worker slot of a `Sandbox` keeps one sandbox process (a driver,
`driver.py`) that runs job after job; each job's program runs in a process of its own, forked for it:

- **process**: a new session (its own process group, killed whole with SIGKILL); a CPU-time limit per test
  (SIGXCPU; with `fresh_process_per_test` also a hard one); a wall clock, which ends every test; address-space,
  data, file-size (1 MiB), open-file and process-count limits; no core dumps, no POSIX message queues; the driver
  ignores every signal a program can send;
- **identity**: when rlexp runs as root, programs run as an unprivileged user id of their own (one per sandbox
  process), so they cannot write what root owns nor signal another sandbox's processes;
- **environment**: rebuilt from a short allowlist (no `HF_TOKEN`, `WANDB_API_KEY`, cloud keys, `PYTHONPATH`),
  `python -I`, a private 0700 working directory as cwd, `HOME` and `TMPDIR`;
- **interpreter**: the trainer's own, with its standard library and site-packages (numpy, ...) read-only at
  every level, also as root when they sit under a directory the unprivileged user cannot enter;
- **state**: each test starts with the program's module run afresh (new globals and builtins, a new stdin
  pipe holding only its input) and empty writable space (after each test, with everything it started killed, every
  writable place is emptied: the scratch tmpfs and, at the namespace levels, the sandbox's own IPC objects; at
  `rlimit-only` the working directory); nothing of one job is in the memory of the next. A job's tests run one
  after another in one process, as LiveCodeBench runs them: what the program imported stays imported, and the
  process is replaced by a new fork after a test that ends it or leaves a thread, a process or an open file
  behind. `fresh_process_per_test=True` forks a process for each test instead (a fork of one that never ran the
  program: nothing of an earlier test at all), which then compiles the program and imports what it needs for
  that test alone: several times slower;
- **output**: stdout and stderr are read while the program runs and it is killed at the cap, so a flood never
  reaches the trainer's memory; expected outputs never enter the sandbox (the caller compares);
- **namespaces** (level `namespaces`): a new user, network, mount and PID namespace with a fresh `/proc`: no
  network, no view of the trainer's processes or their environment, and every process a test started dies
  with it; every file system read-only, empty tmpfs over the scratch directories and the homes, and no
  capabilities left to undo that;
- **bubblewrap** (level `bwrap`, when `bwrap` is installed): all of the above plus a file system that is
  `/usr` and the interpreter's directories read-only, an empty `/tmp` and `/dev/shm`, and nothing else.

The level is probed once per process (`probe()`): `bwrap` if it works, else `namespaces` if the kernel lets an
unprivileged process create user namespaces (Docker's default seccomp profile does not), else `rlimit-only`,
logged with the reason. `require_isolation=True` refuses to run at `rlimit-only`.

Many jobs run at once on a pool of threads, one per worker slot (`Sandbox.run_many`); a batch has a deadline
after which what is still running is killed and what has not started is not started. A worker's processes take
turns and run on one CPU at a time, another than the other workers' where one is free (the driver's `Runner`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import itertools
import json
import logging
import math
import os
import queue
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

LEVELS = ("bwrap", "namespaces", "rlimit-only")
DRIVER_SOURCE = (Path(__file__).parent / "driver.py").read_text()
# when rlexp is root, the programs of each sandbox process run as a user of their own, one of this process's range
# SANDBOX_UID_BASE + 128 * (pid % 250) + 0..127 (otherwise unused) that no live worker of this process holds, so
# programs cannot signal another sandbox's processes or this process's
SANDBOX_UID_BASE = 61000
UIDS_PER_PROCESS = 128
_uid_numbers = itertools.count()
_uids_held: set[int] = set()
_uid_lock = threading.Lock()


def sandbox_uid() -> int:
    """The next uid of this process's range that no live worker holds (a reused one only past 128 live workers)."""
    first = SANDBOX_UID_BASE + UIDS_PER_PROCESS * (os.getpid() % 250)
    with _uid_lock:
        for _ in range(UIDS_PER_PROCESS):
            uid = first + next(_uid_numbers) % UIDS_PER_PROCESS
            if uid not in _uids_held:
                break
        _uids_held.add(uid)
    return uid


STDERR_CAP = 64 << 10
TMPFS_BYTES = str(64 << 20)
STARTUP_S = 60.0  # a new sandbox (bubblewrap, the interpreter, the preamble) starts in far less, even on a busy host
QUEUED = 2  # tests sent ahead of the running one
# a job that does not stop at its first failure: more tests go ahead, as long as they take no more of the pipe than
# this (a pipe holds 64 KiB), so sending never waits
AHEAD_BYTES = 32 << 10
QUEUED_GRACE_S = 1.0  # after a failure, how long queued tests may still run before the sandbox is killed


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


# -- the interpreter the sandbox runs ---------------------------------------------------------------------------


def _under(path: str, roots) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _outermost(paths) -> list[str]:
    """The paths that are not below another one of them."""
    paths = set(paths)
    return sorted(p for p in paths if not _under(p, paths - {p}))


@functools.lru_cache(maxsize=None)
def _world_reachable(path: str) -> bool:
    """Whether a user who owns nothing here can enter `path` (it and every directory on the way searchable)."""
    real = Path(os.path.realpath(path))
    try:
        return all(p.stat().st_mode & stat.S_IXOTH for p in [real, *real.parents])
    except OSError:
        return False


def _barrier(path: str) -> str:
    """The outermost directory on the way to `path` that a user who owns nothing here cannot enter (e.g. /root)."""
    real = Path(os.path.realpath(path))
    for p in [*reversed(real.parents), real]:
        if not p.stat().st_mode & stat.S_IXOTH:
            return str(p)
    return str(real)


def _interpreter_paths() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the trainer's interpreter directories: its prefixes and site-packages, resolved; its import path below
    them). The sandbox shows the first read-only and imports from the second, so programs import what the trainer
    can: its standard library, numpy, ... but not the project's own source (an editable install's path)."""
    prefixes = [
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        str(Path(os.path.realpath(sys.executable)).parent.parent),
    ]
    site_dirs = [p for p in sys.path if os.path.basename(p.rstrip("/")) in ("site-packages", "dist-packages")]
    roots = _outermost({os.path.realpath(p) for p in prefixes + site_dirs if p and os.path.isdir(p)} - {"/"})
    import_path = []
    for entry in sys.path:
        real = os.path.realpath(entry) if entry and os.path.isabs(entry) and os.path.exists(entry) else ""
        if real and _under(real, roots) and real not in import_path:
            import_path.append(real)
    return tuple(roots), tuple(import_path)


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


SYSTEM_TOPS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
BWRAP_SCRATCH = ("/tmp", "/dev/shm")


def _bwrap_prefix(keep: tuple[str, ...]) -> list[str]:
    args = ["bwrap", "--ro-bind", "/usr", "/usr"]
    for top in SYSTEM_TOPS:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    # the writable places are size-limited tmpfs (emptied after every test): nothing reaches the host's disk, and
    # memory stays bounded
    args += ["--proc", "/proc", "--dev", "/dev"]
    for scratch in BWRAP_SCRATCH:
        args += ["--size", TMPFS_BYTES, "--tmpfs", scratch]
    for root in keep:
        if not _under(root, ("/usr",) + SYSTEM_TOPS):
            args += ["--ro-bind", root, root]
    # bubblewrap's own root and /dev are tmpfs without a size limit: read-only, like everything else
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/"]
    # --as-pid-1: the driver is process 1 of the PID namespace, which its programs cannot kill
    args += ["--unshare-all", "--die-with-parent", "--new-session", "--as-pid-1", "--"]
    return args


UNSHARE_PREFIX = [
    "unshare",
    "--user",
    "--map-root-user",
    "--net",
    "--ipc",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount-proc",
    "--",
]


@dataclass(frozen=True)
class Launch:
    """How a sandbox process is started at one level."""

    level: str
    drop_uid: bool  # rlexp runs as root: programs run as an unprivileged user (sandbox_uid)
    python: str  # the trainer's interpreter, as the sandbox reaches it
    keep: tuple[str, ...] = ()  # the interpreter's directories, shown read-only
    sys_path: tuple[str, ...] = ()  # the trainer's import path, as the sandbox reaches it
    # root, bwrap or namespaces: directories the unprivileged user cannot enter, covered first (driver.prelude)
    barriers: tuple[str, ...] = ()
    # root, rlimit-only: open directories the sandbox reaches the interpreter through (/proc/self/fd/N)
    fds: tuple[int, ...] = ()

    def command(self, uid: Optional[int]) -> list[str]:
        prefix: list[str] = []
        if self.barriers:
            spec = {"barriers": list(self.barriers), "keep": [k for k in self.keep if _under(k, self.barriers)]}
            prefix = [sys.executable, "-I", "-S", "-c", DRIVER_SOURCE, "--prelude", json.dumps(spec)]
        if self.drop_uid:
            prefix += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
        if self.level == "bwrap":
            prefix += _bwrap_prefix(self.keep)
        elif self.level == "namespaces":
            prefix += UNSHARE_PREFIX
        # -S: no site (its imports, e.g. an editable install's finder, would make every fork slower); the driver
        # sets the import path itself, and gives programs the exit() and quit() that site would
        return prefix + [self.python, "-I", "-S", "-c", DRIVER_SOURCE]


def _launch_for(level: str, drop_uid: bool) -> Launch:
    keep, sys_path = _interpreter_paths()
    unreachable = [r for r in keep if drop_uid and not _world_reachable(r)]
    if not unreachable:
        return Launch(level, drop_uid, sys.executable, keep, sys_path)
    if level != "rlimit-only":
        return Launch(level, drop_uid, sys.executable, keep, sys_path, barriers=tuple(_outermost(map(_barrier, unreachable))))
    # no mount namespace to rearrange: the sandbox goes through directories opened here. Lookups through an open
    # directory skip the permission checks of the directories above it, so the unprivileged user can also read
    # what is world-readable in the outermost directory holding it below the barrier (e.g. all of /root/.pyenv)
    opened = {root: os.open(root, os.O_PATH | os.O_DIRECTORY) for root in unreachable}

    def through_fd(path: str) -> str:
        for root, fd in opened.items():
            if _under(path, [root]):
                return f"/proc/self/fd/{fd}{path[len(root) :]}"
        return path

    return Launch(
        level,
        drop_uid,
        through_fd(os.path.realpath(sys.executable)),
        keep,
        tuple(map(through_fd, sys_path)),
        fds=tuple(opened.values()),
    )


def _try_level(level: str, drop_uid: bool) -> tuple[Optional[Launch], str]:
    needs = {"bwrap": ["bwrap"], "namespaces": ["unshare"], "rlimit-only": []}[level] + (["setpriv"] if drop_uid else [])
    missing = [tool for tool in needs if shutil.which(tool) is None]
    if missing:
        return None, f"{', '.join(missing)} not installed"
    launch = _launch_for(level, drop_uid)
    worker = _Worker(launch, memory_mb=512, out_cap=1 << 20)
    try:
        result = worker.run(Job("print(1 + 1)", [""], time_limit=10.0))[0]
    except OSError as exc:
        result = RunResult("sandbox_error", stderr=str(exc))
    finally:
        worker.close()
    if result.verdict == "ok" and result.stdout.strip() == "2":
        return launch, "works"
    for fd in launch.fds:
        os.close(fd)
    return None, (result.stderr or (result.error or {}).get("message", "") or result.verdict).strip()[-300:]


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
    candidates = ["/home", "/root", os.path.expanduser("~")] + _scratch_candidates()
    return _outermost({os.path.realpath(p) for p in candidates if os.path.isdir(p)} - {"/", "/usr"})


def _scratch_candidates() -> list[str]:
    return ["/tmp", "/var/tmp", "/dev/shm", "/run/lock", tempfile.gettempdir()]


def _scratch_dirs() -> list[str]:
    """Where a program at the `namespaces` level may write (a tmpfs each, emptied after every test)."""
    return _outermost({os.path.realpath(p) for p in _scratch_candidates() if os.path.isdir(p)} - {"/", "/usr"})


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
    """Length-prefixed messages to the driver, JSON lines back, both deadline-bounded; its stderr is drained
    under a cap."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.line_cap = proc, 1 << 20
        self.out_fd, self.err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        self.poll = select.poll()  # the lightest wait (the selectors module wraps each call in more Python)
        for fd in (self.out_fd, self.err_fd):
            self.poll.register(fd, select.POLLIN)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
        self.out, self.err = bytearray(), bytearray()
        self.open = {self.out_fd, self.err_fd}

    def send(self, message: dict, deadline: float) -> bool:
        return self.send_frame(_frame(message), deadline)

    def send_frame(self, frame: bytes, deadline: float) -> bool:
        view = memoryview(frame)
        fd = self.proc.stdin.fileno()
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
        for fd, _ in self.poll.poll(math.ceil(timeout * 1000)):
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            if not data:
                self.poll.unregister(fd)
                self.open.discard(fd)
            elif fd == self.out_fd:
                self.out += data
            elif len(self.err) < STDERR_CAP:
                self.err += data[: STDERR_CAP - len(self.err)]

    def recv(self, deadline: float) -> Optional[dict]:
        """The next JSON line, or None on timeout, EOF or an over-long line."""
        while b"\n" not in self.out:
            left = deadline - time.monotonic()
            if left <= 0 or self.out_fd not in self.open or len(self.out) > self.line_cap:
                return None
            self._pump(left)
        end = self.out.index(b"\n")
        line = self.out[:end].decode("utf-8", "replace")
        del self.out[: end + 1]
        try:
            return json.loads(line)
        except ValueError:
            return None

    def stderr_text(self) -> str:
        return bytes(self.err).decode("utf-8", "replace").strip()[-500:]


def _frame(message: dict) -> bytes:
    """A message to the driver: its JSON, length-prefixed."""
    payload = json.dumps(message).encode()
    return struct.pack(">I", len(payload)) + payload


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


class _Worker:
    """One worker slot's sandbox process: started on first use, then kept for job after job. Anything that goes
    wrong with it (a deadline, a program that killed its test runner) ends it; the next job starts a new one."""

    def __init__(
        self,
        launch: Launch,
        memory_mb: int,
        out_cap: int,
        file_size_mb: int = 1,
        max_processes: int = 64,
        fresh_process_per_test: bool = False,
    ):
        self.launch = launch
        self.uid = sandbox_uid() if launch.drop_uid else None
        self.limits = {
            "memory_mb": memory_mb,
            "out_cap": out_cap,
            "file_size_mb": file_size_mb,
            "max_processes": max_processes,
            "fresh_process_per_test": fresh_process_per_test,
        }
        self.proc: Optional[subprocess.Popen] = None
        self.pipes: Optional[_Pipes] = None
        self.host_dir: Optional[str] = None  # the working directory's, when it is on the host (rlimit-only)
        # at the namespace levels the working directory is in the sandbox's own /tmp, the same at every restart
        self.sandbox_workdir = f"/tmp/sbx-{os.urandom(4).hex()}"
        self.cpu: Optional[int] = None  # the CPU its processes last ran on (the driver's `Runner` says why one)

    def _setup(self) -> dict:
        level = self.launch.level
        if level == "rlimit-only":
            if self.host_dir is None:
                self.host_dir = tempfile.mkdtemp(prefix="sbx-")
                os.chmod(self.host_dir, 0o700)
                if self.launch.drop_uid:
                    os.chown(self.host_dir, self.uid, self.uid)
            workdir = os.path.join(self.host_dir, "work")
            scratch = [workdir]
        else:
            workdir = self.sandbox_workdir
            scratch = list(BWRAP_SCRATCH) if level == "bwrap" else _scratch_dirs()
        return {
            **self.limits,
            "err_cap": STDERR_CAP,
            # process 1 of a PID namespace may kill everything a test leaves behind
            "kill_all": level != "rlimit-only",
            # bubblewrap builds the file system itself; at `namespaces` the driver does (see driver.py)
            "isolate_fs": level == "namespaces",
            "hidden": _hidden_dirs() if level == "namespaces" else [],
            "scratch": scratch,  # emptied after every test
            "workdir": workdir,
            "keep": list(self.launch.keep),
            "sys_path": list(self.launch.sys_path),
            "keep_fds": list(self.launch.fds),
        }

    def _start(self, deadline: float) -> Optional[str]:
        """Start the sandbox process; None when it is ready, else why not."""
        setup = self._setup()
        self.proc = subprocess.Popen(
            self.launch.command(self.uid),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd="/",
            env=_scrubbed_env(setup["workdir"]),
            start_new_session=True,
            close_fds=True,
            pass_fds=self.launch.fds,
        )
        self.pipes = _Pipes(self.proc)
        ready = self.pipes.send(setup, deadline) and self.pipes.recv(deadline)
        if not ready or not ready.get("ready"):
            detail = self.pipes.stderr_text() or "the sandbox did not start in time"
            self._end()
            return detail
        if setup["isolate_fs"] and not ready.get("fs_isolated"):
            _warn_once(
                f"sandbox: {self.pipes.stderr_text()}; programs can read world-readable files and write to "
                "/tmp; install bubblewrap"
            )
            self.host_dir = setup["workdir"]  # then on the host's /tmp: it goes with the worker
        if ready.get("missing"):
            _warn_once(f"sandbox: programs cannot import from {', '.join(ready['missing'])}")
        return None

    def _end(self) -> None:
        """Kill the sandbox process and everything in it."""
        if self.proc is not None:
            _kill_group(self.proc)
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    stream.close()
                except OSError:
                    pass
        self.proc = self.pipes = None

    def run(self, job: Job, deadline: Optional[float] = None, avoid_cpus: tuple[int, ...] = ()) -> list[RunResult]:
        """Run `job`'s tests in order, on a CPU other than `avoid_cpus` (those of the other workers) if one is free.
        Up to QUEUED tests wait behind the running one (in the pipe, or read by the sandbox's supervisor); without
        stop_at_first_failure, as many as AHEAD_BYTES allows, so the sandbox never waits on this process between
        tests. After the first failure of a stop_at_first_failure job nothing more is sent, and what was queued is
        not judged: it comes back `not_run`, as if it had never been sent (if it runs past QUEUED_GRACE_S, the
        sandbox is killed)."""
        n = len(job.inputs)
        results: list[RunResult] = []
        not_run = lambda: results + [RunResult("not_run")] * (n - len(results))  # noqa: E731
        caps = job.out_caps or [self.limits["out_cap"]] * n
        per_test = job.time_limit * 1.5 + 2.0  # a backstop over the sandbox's own clock (code.md section 7)
        bounded = (lambda t: t) if deadline is None else (lambda t: min(t, deadline))  # noqa: E731
        header = {
            "code": job.code,
            "mode": job.mode,
            "fn_name": job.fn_name,
            "time_limit": job.time_limit,
            "stop_at_first_failure": job.stop_at_first_failure,
            "avoid_cpus": list(avoid_cpus),
        }
        # a sandbox that a program of the last job took down after its last answer is gone: start a new one (once)
        for attempt in range(2):
            if self.proc is not None and self.proc.poll() is not None:
                self._end()
            if self.proc is None:
                start_deadline = time.monotonic() + STARTUP_S
                problem = self._start(start_deadline if deadline is None else min(deadline, start_deadline))
                if problem:
                    if deadline is not None and time.monotonic() >= deadline:
                        return not_run()
                    return [RunResult("sandbox_error", stderr=problem)] * n
            turn_started = time.monotonic()  # when the awaited test could start: when the previous record came
            if self.pipes.send(header, bounded(turn_started + per_test)):
                break
            self._end()
            if attempt:
                return not_run()
        # a record carries stdout and a return value (each up to its cap, JSON-escaped) and capped stderr
        self.pipes.line_cap = max(caps, default=0) * 14 + STDERR_CAP * 7 + (1 << 16)
        sent, stop_by = 0, None  # stop_by: set at the first failure
        sizes: list[int] = []  # of the tests sent, in bytes
        next_frame, send_failed = None, False
        while len(results) < n:
            i = len(results)
            test_deadline = bounded(turn_started + per_test)
            while stop_by is None and sent < n and not send_failed:
                next_frame = next_frame or _frame({"input": job.inputs[sent], "out_cap": caps[sent]})
                if sent >= i + 1 + QUEUED and (job.stop_at_first_failure or sum(sizes[i:]) + len(next_frame) > AHEAD_BYTES):
                    break
                # a message not sent whole leaves the pipe unusable: the sandbox is stuck or gone, and ends below
                send_failed = not self.pipes.send_frame(next_frame, test_deadline)
                if not send_failed:
                    sizes.append(len(next_frame))
                    next_frame, sent = None, sent + 1
            if sent == i or send_failed:  # after the first failure, with nothing queued; or the sandbox took no input
                if stop_by is not None:
                    break
                record = None
            else:
                record = self.pipes.recv(test_deadline if stop_by is None else min(test_deadline, stop_by))
            if stop_by is not None:
                if not record or "runner_died" in record:
                    self._end()
                    break
                results.append(RunResult("not_run"))  # ran after the first failure: not judged
                continue
            if not record or "runner_died" in record:
                timed_out = time.monotonic() >= test_deadline
                exit_code = self.proc.poll()
                self._end()
                if timed_out and deadline is not None and deadline < turn_started + per_test:
                    break  # the batch's deadline, not the program's time limit: this test was not judged
                if timed_out:
                    results.append(RunResult("timeout", wall_s=time.monotonic() - turn_started))
                else:
                    # the program took its test runner down with it
                    results.append(
                        RunResult(
                            "runtime_error",
                            exit_code=exit_code,
                            wall_s=time.monotonic() - turn_started,
                            error={"type": "Killed", "message": "the program killed its test runner"},
                        )
                    )
                break
            turn_started = time.monotonic()
            if type(record.get("cpu")) is int:
                self.cpu = record["cpu"]
            result = _record_to_result(record)
            results.append(result)
            if job.stop_at_first_failure and not (job.check(i, result) if job.check else result.ok):
                stop_by = time.monotonic() + QUEUED_GRACE_S
        if self.proc is not None and not self.pipes.send({"end": True}, time.monotonic() + per_test):
            self._end()
        return not_run()

    def close(self, keep_uid: bool = False) -> None:
        """End its sandbox; its uid goes back to the pool unless it is to start again (`keep_uid`)."""
        if self.proc is not None:
            # a driver that reads end-of-input exits, and its namespace with it; killing the launcher first
            # would orphan the driver to the host's init, which may never reap it
            _close_and_wait(self.proc, timeout=1.0)
        self._end()
        if self.host_dir is not None:
            shutil.rmtree(self.host_dir, ignore_errors=True)
            self.host_dir = None
        if not keep_uid:
            with _uid_lock:
                _uids_held.discard(self.uid)


def _close_workers(workers: dict, pool) -> None:
    for worker in list(workers.values()):
        try:
            worker.close()
        except Exception:  # noqa: BLE001 - closing is best effort, often at interpreter exit
            pass
    workers.clear()
    if pool is not None:
        pool.shutdown(wait=False)


@dataclass
class Sandbox:
    """A pool of worker slots, each with a sandbox process of its own that runs one job at a time."""

    level: str = "auto"  # auto | bwrap | namespaces | rlimit-only
    workers: int = 0  # parallel sandbox processes; 0 = one per CPU core
    memory_mb: int = 2048
    out_cap: int = 1 << 20  # stdout bytes kept per test; the program is killed past it
    file_size_mb: int = 1
    max_processes: int = 64
    require_isolation: bool = False
    # False: a job's tests run one after another in one process, its module run afresh for each (LiveCodeBench's
    # way, and several times faster); True: a process forked for each test (see "state" above)
    fresh_process_per_test: bool = False
    _slots: Any = field(default=None, init=False, repr=False)
    _pool: Any = field(default=None, init=False, repr=False)
    _by_slot: Any = field(default=None, init=False, repr=False)

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
            self._by_slot = {}
            # the sandbox processes end with this object (or at exit), not with the trainer's next batch
            weakref.finalize(self, _close_workers, self._by_slot, self._pool)
        return self._pool, self._slots

    def run(self, job: Job, deadline: Optional[float] = None) -> list[RunResult]:
        launch = self.launch
        _, slots = self._pool_and_slots()
        slot = slots.get()
        worker = None
        try:
            if deadline is not None and time.monotonic() >= deadline:
                return [RunResult("not_run")] * len(job.inputs)
            worker = self._by_slot.get(slot)
            if worker is None or worker.launch != launch:
                worker = self._by_slot[slot] = _Worker(
                    launch, self.memory_mb, self.out_cap, self.file_size_mb, self.max_processes, self.fresh_process_per_test
                )
            avoid = tuple(w.cpu for s, w in list(self._by_slot.items()) if s != slot and w.cpu is not None)
            return worker.run(job, deadline, avoid)
        except Exception as exc:  # noqa: BLE001 - one broken job must not take the batch (or training) down
            log.warning("sandbox: a job failed: %s: %s", type(exc).__name__, exc)
            if worker is not None:
                worker.close(keep_uid=True)  # it stays this slot's worker: the next job starts it again
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

    def close(self) -> None:
        """End the sandbox processes now (they also end when this object is collected, or at exit)."""
        if self._by_slot is not None:
            _close_workers(self._by_slot, None)

    def __getstate__(self):  # a Sandbox pickles without its threads and processes
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init} | {
            "_slots": None,
            "_pool": None,
            "_by_slot": None,
        }

    def __setstate__(self, state):
        self.__dict__.update(state)


_DEFAULT = Sandbox()


def run_program(
    code: str, stdin: str = "", timeout_s: float = 6.0, memory_mb: int = 2048, level: str = "auto", out_cap: int = 1 << 20
) -> RunResult:
    """Run one stdin/stdout program on one input in the sandbox; see `RunResult` for what comes back."""
    if (memory_mb, level, out_cap) == (2048, "auto", 1 << 20):
        return _DEFAULT.run(Job(code, [stdin], time_limit=timeout_s))[0]
    box = Sandbox(level=level, workers=1, memory_mb=memory_mb, out_cap=out_cap)
    try:
        return box.run(Job(code, [stdin], time_limit=timeout_s))[0]
    finally:
        box.close()


def level(name: str = "auto") -> str:
    """The isolation level a sandbox gets here (probing once)."""
    return probe(name).level


__all__ = ["Job", "RunResult", "Sandbox", "SandboxUnavailable", "run_program", "probe", "level", "LEVELS"]
