"""The test driver that runs inside the sandbox (standard library only; started as `python -I -S -c <this file>`).

One driver serves one worker slot for as long as its `Sandbox` lives, so a job (one program and its tests)
pays no interpreter start. Three kinds of process take part:

- the **driver** (process 1 of the sandbox's PID namespace): reads the setup message, builds the file system
  (at the `namespaces` level), imports LiveCodeBench's preamble, handles no signal (so none sent from inside
  reaches it), and then forks one job process per job. It never reads a job's code or inputs, so nothing of one job is in the memory the next
  job's programs are forked from;
- a **job process**: reads one job (code, then one test at a time) from the parent, compiles the code once and
  imports the heavy packages the code names (numpy, ...), then forks one test process per test;
- a **test process**: gets a fresh pipe on fd 0 holding only its own test's input, capped pipes on fd 1 and
  fd 2, its own process group, a CPU-time and a process-count limit, and then runs the program once.

The job process enforces the wall clock and the output caps and answers with one JSON record per test. After
each test, with every process the test started killed, it empties every place a program can write (the scratch
tmpfs and the working directory; at the namespace levels also the sandbox's System V IPC objects and POSIX
message queues), so the next test starts with clean writable space, as it starts with fresh module state.
Expected outputs never come here: the parent compares.

As root, programs run as an unprivileged user. When the trainer's interpreter sits under a directory that
user cannot enter (a venv or pyenv under /root), `--prelude` runs first, as root, in a mount namespace of its
own: it covers that directory with a read-only tmpfs holding only the interpreter's directories, then execs
the rest of the sandbox's command.
"""

import ast
import builtins
import ctypes
import gc
import json
import linecache
import os
import resource
import select
import signal
import struct
import sys
import time
import traceback
from decimal import Decimal
from fractions import Fraction

# LiveCodeBench's preamble: solutions that use `deque` or `heappush` without importing them pass there,
# so they must pass here too.
PREAMBLE = """
import string, re, datetime, collections, heapq, bisect, copy, math, random, statistics, itertools, functools
import operator, io, sys, json
from string import *
from re import *
from datetime import *
from collections import *
from heapq import *
from bisect import *
from copy import *
from math import *
from random import *
from statistics import *
from itertools import *
from functools import *
from operator import *
from io import *
from sys import *
from json import *
from typing import *
sys.setrecursionlimit(50000)
"""
# slow to import and free of side effects: imported once per job when the code names them, as LiveCodeBench
# imports a program's modules once for all its tests
PREIMPORTS = ("numpy", "scipy", "sympy", "networkx", "sortedcontainers")

SOLUTION_FILE = "Solution.py"
CHUNK = 65536
TMPFS_LIMITS = "size=64m,nr_inodes=4096"  # each scratch directory a program can write to
EOF_EXIT = 3  # a job process read end-of-input: the parent is gone
SETUP_FAILED_EXIT = 4
LEFTOVERS_EXIT = 5  # a job process could not kill what a test left behind
# the first byte a test process writes on its report pipe, before any program code runs
SETUP_OK, SETUP_ERROR = b"K", b"E"
CLONE_NEWNS = 0x00020000
MQUEUE = "/dev/mqueue"  # the sandbox's POSIX message queues, when mounted
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 36, 38
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


class Exit:
    """`exit()` and `quit()` as the `site` module would give them (the driver runs without it): end the program."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"Use {self.name}() to exit"

    def __call__(self, code=None):
        raise SystemExit(code)


def set_limit(kind, soft, hard=None):
    hard = soft if hard is None else hard
    try:
        resource.setrlimit(kind, (soft, hard))
    except (ValueError, OSError):
        # never raise a limit above the hard limit we were started with; lower it to that instead
        cur_hard = resource.getrlimit(kind)[1]
        resource.setrlimit(kind, (min(soft, cur_hard), min(hard, cur_hard)))


# -- talking to the parent --------------------------------------------------------------------------------------


def read_exactly(fd, n):
    data = bytearray()
    while len(data) < n:
        chunk = os.read(fd, min(n - len(data), 1 << 20))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def read_message(fd):
    """One length-prefixed JSON message, or None at end of input. Exactly its bytes are read, never the next
    message's: a test's input stays in the pipe, out of every process's memory, until its turn."""
    head = read_exactly(fd, 4)
    body = head and read_exactly(fd, struct.unpack(">I", head)[0])
    return None if body is None else json.loads(body)


def answer(fd, record):
    data = (json.dumps(record) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


# -- what a test process reports ----------------------------------------------------------------------------------


def error_info(exc, source_lines):
    """Exception type, message and the last frame inside the solution: what LeetCode-style feedback shows."""
    info = {"type": type(exc).__name__, "message": str(exc)[:1000], "line": None, "func": None, "source": ""}
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == SOLUTION_FILE]
    if isinstance(exc, SyntaxError) and exc.filename == SOLUTION_FILE:
        info.update(message=exc.msg, line=exc.lineno, func="<module>")
    elif frames:
        info.update(line=frames[-1].lineno, func=frames[-1].name)
    if info["line"] and 0 < info["line"] <= len(source_lines):
        info["source"] = source_lines[info["line"] - 1].strip()[:200]
    return info


def print_traceback(exc):
    """The traceback as the program's author would see it: only frames of Solution.py, no harness paths."""
    summary = traceback.TracebackException.from_exception(exc)
    summary.stack = traceback.StackSummary.from_list([f for f in summary.stack if f.filename == SOLUTION_FILE])
    sys.stderr.write("".join(summary.format()))


class Unmatchable(ValueError):
    """A returned value that equals no JSON value under Python's ==, so LiveCodeBench could never accept it."""


def exact_number(value):
    """A Fraction or Decimal as the int or float it equals exactly (Python compares them exactly, and so does
    LiveCodeBench's ==); NaN stays NaN; a value equal to no int and no float is Unmatchable."""
    if isinstance(value, Decimal):
        if value.is_nan():
            return float("nan")
        if value.is_infinite():
            return float(value)
        if value.adjusted() > 50000:  # more digits than any expected answer can have (int_max_str_digits)
            raise Unmatchable(f"{value!r} has more digits than any expected answer")
        if value == value.to_integral_value():
            return int(value)
    elif value.denominator == 1:
        return int(value.numerator)
    try:
        nearest = float(value)
    except OverflowError:
        raise Unmatchable(f"{value!r} equals no int or float") from None
    if type(value)(nearest) != value:
        raise Unmatchable(f"{value!r} equals no int or float")
    return nearest


def plain(value):
    """The return value as plain JSON data: tuples become lists, numpy scalars and arrays Python values,
    Fractions and Decimals the number they equal. Dicts keep only string keys: JSON would turn 1 into "1",
    and LiveCodeBench's {1: 2} == {"1": 2} is False."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise Unmatchable("a dict with keys that are not strings equals no JSON object")
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (Fraction, Decimal)):
        return exact_number(value)
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":
        return plain(value.tolist())
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    return value


# -- the test process ------------------------------------------------------------------------------------------


def run_child(setup, job, code_obj, program_builtins, stdio, test_input, info_w, source_lines):
    """In the forked test process: set up, run the solution on one test, report a value or an error on `info_w`,
    exit. What is written on `info_w` after SETUP_OK comes from a process running model code."""
    report = {}
    exit_code = 0
    try:
        os.setpgid(0, 0)
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # die with the job process
        # the program may read its own /proc/self; the driver and the job process stay undumpable
        LIBC.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
        try:
            os.chdir(setup["workdir"])
        except OSError as exc:
            os.write(info_w, SETUP_ERROR + f"working directory: {exc}".encode()[:500])
            os._exit(SETUP_FAILED_EXIT)
        os.write(info_w, SETUP_OK)
        sys.setrecursionlimit(50000)  # LiveCodeBench's; the driver itself keeps a small one
        cpu = int(job["time_limit"]) + 1
        set_limit(resource.RLIMIT_CPU, cpu, cpu + 1)  # soft: SIGXCPU; hard: SIGKILL, even if SIGXCPU is ignored
        set_limit(resource.RLIMIT_NPROC, setup["max_processes"])
        sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__ = stdio
        # `from sys import *` gave the preamble the job process's stdin; the program's own shadow them
        namespace = {
            "__name__": "__main__",
            "__builtins__": program_builtins,
            "stdin": sys.stdin,
            "stdout": sys.stdout,
            "stderr": sys.stderr,
        }
        returned, has_value = None, False
        try:
            exec(code_obj, namespace)
            if job["mode"] == "functional":
                args = [json.loads(line) for line in test_input.split("\n")]
                if "Solution" in namespace:
                    method = getattr(namespace["Solution"](), job["fn_name"])
                else:
                    method = namespace[job["fn_name"]]
                returned, has_value = method(*args), True
        except SystemExit as stop:
            if stop.code not in (None, 0):
                exit_code = stop.code if isinstance(stop.code, int) else 1
                report["error"] = {"type": "SystemExit", "message": f"exit code {stop.code}"[:200]}
        except BaseException as exc:  # noqa: BLE001 - any failure of the program is its runtime error
            report["error"] = error_info(exc, source_lines)
            exit_code = 1
            try:
                print_traceback(exc)
            except BaseException:  # noqa: BLE001
                pass
        if has_value:
            try:
                report["value"] = json.dumps(plain(returned))
            except BaseException as exc:  # noqa: BLE001 - not JSON (a set, an object, Decimal('0.1')): never equal
                report["unencodable"] = (
                    str(exc) if isinstance(exc, Unmatchable) else f"{type(returned).__name__} is not a JSON value"
                )[:200]
        try:
            sys.stdout.flush()
        except BaseException as exc:  # noqa: BLE001 - e.g. the output pipe was closed at the cap
            report.setdefault("error", error_info(exc, source_lines))
        try:
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        try:
            data = json.dumps(report).encode()
            while data:  # the job process reads it under the output cap
                data = data[os.write(info_w, data[:CHUNK]) :]
        except BaseException:  # noqa: BLE001
            pass
        os._exit(exit_code)


# -- the job process ------------------------------------------------------------------------------------------


def descendants():
    """Every process below this one (orphans come here too: the job process is their subreaper)."""
    found, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except (OSError, ValueError):
                continue
            found += children
            todo += children
    return found


def kill_leftovers(setup, child_pid):
    """After the test process is reaped: kill its group, then everything else the test started (in a PID namespace
    everything but process 1 and us, else every descendant of ours). False if something still lives after a few
    seconds of trying."""
    try:
        os.killpg(child_pid, signal.SIGKILL)
    except OSError:
        pass
    give_up = time.monotonic() + 5.0
    while time.monotonic() < give_up:  # a fork bomb forks while we kill: go on until nothing answers
        if setup["kill_all"]:
            try:
                os.kill(-1, signal.SIGKILL)  # process 1 and the caller are spared by the kernel
            except ProcessLookupError:
                return True
            reap()  # the dead come to us (we are their subreaper) and still count until reaped
        else:
            found = descendants()
            if not found:
                return True
            for pid in found:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            reap()
        time.sleep(0.001)
    return False


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def empty_directory(path, keep=()):
    """Remove everything below `path` but the directories in `keep` (the interpreter's, bound read-only) and those
    leading to them. Whatever a program left: any depth (a subdirectory's entries move up before it goes, so
    neither the path length nor the number of open files grows), directories it made unreadable or unwritable
    (ours again first: the program ran as our user), links (removed, never followed)."""
    guarded = {k for k in keep if k.startswith(path.rstrip("/") + "/")}
    root = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    moved = 0
    try:
        while True:
            entries = list(os.scandir(root))
            left = 0
            for entry in entries:
                full = os.path.join(path, entry.name)
                if full in guarded:
                    left += 1
                    continue
                if any(k.startswith(full + "/") for k in guarded):
                    empty_directory(full, guarded)
                    left += 1
                    continue
                if not entry.is_dir(follow_symlinks=False):
                    os.unlink(entry.name, dir_fd=root)
                    continue
                os.chmod(entry.name, 0o700, dir_fd=root)
                inner = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root)
                try:
                    for child in list(os.scandir(inner)):
                        if child.is_dir(follow_symlinks=False):
                            os.chmod(child.name, 0o700, dir_fd=inner)  # moving a directory rewrites its ".."
                        while True:
                            moved += 1
                            name = f".emptied-{moved}"
                            try:
                                os.stat(name, dir_fd=root, follow_symlinks=False)
                            except FileNotFoundError:
                                break
                        os.rename(child.name, name, src_dir_fd=inner, dst_dir_fd=root)
                finally:
                    os.close(inner)
                os.rmdir(entry.name, dir_fd=root)
            if len(entries) == left:
                return
    finally:
        os.close(root)


def remove_ipc_objects():
    """The System V shared memory segments, message queues and semaphores of the sandbox's own IPC namespace, and
    its POSIX message queues: a test could leave data there for the next."""
    for kind, remove in (("shm", LIBC.shmctl), ("msg", LIBC.msgctl), ("sem", LIBC.semctl)):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                ids = [int(line.split()[1]) for line in f.read().splitlines()[1:] if line.strip()]
        except (OSError, ValueError, IndexError):
            continue
        for ipc_id in ids:
            remove(ipc_id, 0, None)  # IPC_RMID
    if os.path.isdir(MQUEUE):
        for name in os.listdir(MQUEUE):
            try:
                os.unlink(os.path.join(MQUEUE, name))
            except OSError:
                pass


def clean_up(setup):
    """After a test, with everything it started killed: empty every place a program can write, and make the
    working directory again."""
    for path, mode in zip(setup["scratch"], setup["scratch_modes"]):
        os.chmod(path, mode)  # a program could have changed it: it ran as our user
        empty_directory(path, setup["keep"])
    if setup["kill_all"]:
        remove_ipc_objects()
    os.makedirs(setup["workdir"], mode=0o700, exist_ok=True)


def run_test(setup, job, code_obj, program_builtins, stdio, test, source_lines, proto_fds):
    """Fork, feed the input, collect capped output, enforce the wall clock; return the record."""
    test_input = test["input"]
    out_cap = int(test.get("out_cap", setup["out_cap"]))
    err_cap = int(setup["err_cap"])
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    info_r, info_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.dup2(in_r, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w, info_r) + proto_fds:
            if fd > 2:
                os.close(fd)
        run_child(setup, job, code_obj, program_builtins, stdio, test_input, info_w, source_lines)
    for fd in (in_r, out_w, err_w, info_w):
        os.close(fd)
    # functional mode: fd 0 is an empty pipe, so input() meets EOF
    pending = b"" if job["mode"] == "functional" else test_input.encode("utf-8", "surrogateescape")
    if not pending:
        os.close(in_w)
        in_w = None
    else:
        os.set_blocking(in_w, False)
    buffers = {out_r: bytearray(), err_r: bytearray(), info_r: bytearray()}
    caps = {out_r: out_cap, err_r: err_cap, info_r: out_cap + CHUNK}
    open_fds = set(buffers)
    # the child's exit ends the test even if a process it started still holds the pipes open
    exit_fd = os.pidfd_open(pid)
    exited = False
    deadline = start + float(job["time_limit"])
    status = None
    while not (exited and not open_fds):
        left = deadline - time.monotonic()
        if left <= 0:
            status = "timeout"
            break
        writers = [in_w] if in_w is not None and not exited else []
        # until the child exits, wait on its exit too: closing its pipes must not stop the clock
        readable, writable, _ = select.select(list(open_fds) + ([] if exited else [exit_fd]), writers, [], 0 if exited else left)
        if exit_fd in readable:
            exited = True
            readable.remove(exit_fd)
        elif exited and not readable:
            break  # exited and nothing left to read right now
        if writable:
            try:
                sent = os.write(in_w, pending[:CHUNK])
                pending = pending[sent:]
            except (BrokenPipeError, BlockingIOError) as exc:
                if isinstance(exc, BrokenPipeError):
                    pending = b""
            if not pending:
                os.close(in_w)
                in_w = None
        for fd in readable:
            data = os.read(fd, CHUNK)
            if not data:
                open_fds.discard(fd)
                continue
            buffers[fd] += data
            if len(buffers[fd]) > caps[fd]:
                del buffers[fd][caps[fd] :]
                if fd in (out_r, info_r):
                    status = "output_limit"
                elif fd == err_r:
                    open_fds.discard(fd)  # stop reading stderr; the program may go on
        if status:
            break
    if status:
        os.kill(pid, signal.SIGKILL)  # the test process itself: it may have left its process group
    _, wait_status, usage = os.wait4(pid, 0)
    elapsed = time.monotonic() - start
    # whatever the test started in its group, and everything else it left; then what it wrote. When either fails,
    # the parent starts a new sandbox, and no other test meets what is left
    if not kill_leftovers(setup, pid):
        os._exit(LEFTOVERS_EXIT)
    try:
        clean_up(setup)
    except OSError:
        os._exit(LEFTOVERS_EXIT)
    for fd in list(buffers) + [exit_fd] + ([in_w] if in_w is not None else []):
        os.close(fd)
    reap()
    exit_code = os.waitstatus_to_exitcode(wait_status)
    info = bytes(buffers[info_r])
    record = {
        "status": status,
        "exit_code": exit_code,
        "stdout": bytes(buffers[out_r]).decode("utf-8", "replace"),
        "stderr": bytes(buffers[err_r]).decode("utf-8", "replace"),
        "elapsed_ms": round(elapsed * 1000, 3),
    }
    if info.startswith(SETUP_ERROR):  # written before any program code ran: the sandbox failed, not the program
        record.update(status="sandbox_error", stderr=info[1:].decode("utf-8", "replace"))
        return record
    report = checked_report(info[1:] if info.startswith(SETUP_OK) else b"")
    cpu_seconds = usage.ru_utime + usage.ru_stime
    if status is None:
        if exit_code in (-signal.SIGXCPU, -signal.SIGKILL) and cpu_seconds >= int(job["time_limit"]) + 1:
            status = "timeout"  # the CPU-time limit
        elif exit_code == 0 and "error" not in report:
            status = "ok"
        else:
            status = "runtime_error"
            if "error" not in report:
                report["error"] = describe_exit(exit_code)
    record["status"] = status
    record.update(report)
    return record


def checked_report(raw):
    """The child's report, reduced to fields of the expected types: the child runs model code and may forge it."""
    try:
        report = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        return {}
    if not isinstance(report, dict):
        return {}
    checked = {}
    for key in ("value", "unencodable"):
        if isinstance(report.get(key), str):
            checked[key] = report[key]
    error = report.get("error")
    if isinstance(error, dict):
        checked["error"] = {
            "type": str(error.get("type", "Error"))[:100],
            "message": str(error.get("message", ""))[:1000],
            "line": error.get("line") if isinstance(error.get("line"), int) else None,
            "func": str(error.get("func") or "")[:100] or None,
            "source": str(error.get("source", ""))[:200],
        }
    return checked


def describe_exit(exit_code):
    if exit_code < 0:
        name = signal.Signals(-exit_code).name if -exit_code in signal.valid_signals() else str(-exit_code)
        hint = " (stack overflow: recursion too deep?)" if exit_code == -signal.SIGSEGV else ""
        return {"type": "Killed", "message": f"killed by signal {name}{hint}"}
    return {"type": "ExitCode", "message": f"exit code {exit_code}"}


def imported_packages(tree):
    """The top-level package of every import statement in the program's syntax tree."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def job_process(setup, program_builtins, stdio, proto_in, proto_out):
    """Run one job: its code, then its tests one by one as the parent sends them. Exits 0 at the job's end."""
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # what a test orphans is ours to kill and reap
    # what every test process inherits: a fresh Python process's handling of signals (the driver's has none)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    job = read_message(proto_in)
    if job is None:
        os._exit(EOF_EXIT)
    source = job.pop("code")
    source_lines = source.splitlines()
    linecache.cache[SOLUTION_FILE] = (len(source), None, source.splitlines(True), SOLUTION_FILE)
    compile_error = code_obj = None
    try:
        tree = compile(source, SOLUTION_FILE, "exec", ast.PyCF_ONLY_AST)
        code_obj = compile(tree, SOLUTION_FILE, "exec")
    except BaseException as exc:  # noqa: BLE001 - SyntaxError, or Memory/RecursionError on degenerate code
        compile_error = error_info(exc, source_lines)
    else:
        for name in imported_packages(tree) & set(PREIMPORTS):
            try:
                __import__(name)
            except BaseException:  # noqa: BLE001 - not installed, or broken: the program meets it itself
                pass
        del tree
    del source
    gc.freeze()  # the test processes then leave the inherited objects' pages unwritten
    proto_fds = (proto_in, proto_out)
    failed = False
    while True:
        test = read_message(proto_in)
        if test is None:
            os._exit(EOF_EXIT)
        if test.get("end"):
            os._exit(0)
        if failed and job["stop_at_first_failure"]:
            record = {"status": "not_run"}  # queued behind a failure: the parent does not judge it
        elif compile_error:
            record = {
                "status": "runtime_error",
                "exit_code": 1,
                "stdout": "",
                "stderr": "",
                "elapsed_ms": 0.0,
                "error": compile_error,
            }
        else:
            record = run_test(setup, job, code_obj, program_builtins, stdio, test, source_lines, proto_fds)
        failed = failed or record["status"] != "ok"
        answer(proto_out, record)


# -- the driver -------------------------------------------------------------------------------------------------


def mount(source, target, fstype, flags, data=None):
    args = [None if v is None else v.encode() for v in (source, target, fstype, data)]
    if LIBC.mount(args[0], args[1], args[2], flags, args[3]) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}: {os.strerror(ctypes.get_errno())}")


def bind_read_only(handle, path):
    os.makedirs(path, exist_ok=True)
    mount(f"/proc/self/fd/{handle}", path, None, MS_BIND | MS_REC)
    # a bind mount keeps its source's flags; the remount makes sure it is read-only
    mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def drop_capabilities():
    """No capability now and none regained by exec, in the user namespace this process is root of."""
    cap = 0
    while LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:  # until past the last capability
        cap += 1
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    if LIBC.capset(header, (ctypes.c_uint32 * 6)()) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


class Unsupported(OSError):
    """The kernel cannot isolate the file system (Linux < 5.12); nothing has changed yet."""


def isolate_filesystem(hidden, scratch, keep):
    """At the `namespaces` level (no bubblewrap): make every file system read-only, put empty tmpfs over `hidden`
    (the shared scratch directories and the homes; only `scratch` stays writable), mount `keep` (the interpreter's
    directories) back read-only, mount the sandbox's own POSIX message queues where they can be listed (and so
    removed), then drop every capability, so that nothing a program does can undo it.

    Runs as root of the sandbox's own user namespace, whose mount namespace unshare created; nothing here
    reaches the host's mounts."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    handles = {path: os.open(path, os.O_PATH) for path in keep}
    # struct mount_attr {u64 attr_set, attr_clr, propagation, userns_fd}: MOUNT_ATTR_RDONLY on every mount
    attr = (ctypes.c_uint64 * 4)(1, 0, 0, 0)
    sys_mount_setattr, at_fdcwd, at_recursive = 442, -100, 0x8000
    if LIBC.syscall(sys_mount_setattr, at_fdcwd, b"/", at_recursive, ctypes.byref(attr), ctypes.sizeof(attr)) != 0:
        raise Unsupported(ctypes.get_errno(), "mount_setattr / read-only")
    for target in hidden:
        mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,{TMPFS_LIMITS}")
    for path, handle in handles.items():
        if any(path.startswith(h.rstrip("/") + "/") for h in hidden):
            bind_read_only(handle, path)
        os.close(handle)
    for target in scratch:
        if target not in hidden:  # e.g. a TMPDIR under a home: a tmpfs of its own
            os.makedirs(target, exist_ok=True)
            mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,{TMPFS_LIMITS}")
    for target in hidden:
        if target not in scratch:
            mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    if os.path.isdir(MQUEUE):
        mount("mqueue", MQUEUE, "mqueue", MS_NOSUID | MS_NODEV)
    drop_capabilities()


def prelude(spec, command):
    """As root, before the sandbox starts: in a mount namespace of our own, cover each of `barriers` (directories
    the sandbox's unprivileged user cannot enter, such as /root) with a read-only tmpfs that holds only the `keep`
    directories below it, bound read-only; then exec `command`."""
    if LIBC.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), f"unshare: {os.strerror(ctypes.get_errno())}")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    handles = {path: os.open(path, os.O_PATH) for path in spec["keep"]}
    for barrier in spec["barriers"]:
        mount("tmpfs", barrier, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m,nr_inodes=1024")
    for path, handle in handles.items():
        bind_read_only(handle, path)
        os.close(handle)
    for barrier in spec["barriers"]:
        mount(None, barrier, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.execvp(command[0], command)


def close_other_fds(keep):
    for fd in sorted(int(name) for name in os.listdir("/proc/self/fd")):
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def main():
    # the protocol uses private copies of fd 0 and fd 1; the real fds go to the test processes
    proto_in, proto_out = os.dup(0), os.dup(1)
    # fd 0 an empty pipe (not /dev/null, which is seekable: the text streams made on it for the test processes
    # must be like theirs), fd 1 our stderr
    empty_r, empty_w = os.pipe()
    os.dup2(empty_r, 0)
    os.dup2(2, 1)
    os.close(empty_r)
    os.close(empty_w)
    setup = read_message(proto_in)
    if setup is None:
        os._exit(0)
    keep_fds = set(setup["keep_fds"])
    # nothing of the trainer's stays open here, but the interpreter's directories at rlimit-only as root
    close_other_fds(keep_fds | {proto_in, proto_out})
    fs_isolated = False
    if setup["isolate_fs"]:
        try:
            isolate_filesystem(setup["hidden"], setup["scratch"], setup["keep"])
            fs_isolated = True
        except Unsupported as exc:  # an older kernel: the parent logs it and the rest of the sandbox still holds
            print(f"file-system isolation failed: {exc}", file=sys.stderr)
            # the scratch directories are then the host's, shared: only our own working directory is emptied
            setup["scratch"] = [setup["workdir"]]
    os.makedirs(setup["workdir"], mode=0o700, exist_ok=True)
    # what cleaning restores: a program runs as our user, so it may chmod them
    setup["scratch_modes"] = [os.stat(path).st_mode & 0o7777 for path in setup["scratch"]]
    # the trainer's import path: its standard library and site-packages, read-only
    sys.path[:] = [p for p in setup["sys_path"] if os.path.exists(p)]
    missing = [p for p in setup["sys_path"] if p not in sys.path]

    set_limit(resource.RLIMIT_AS, setup["memory_mb"] << 20)
    set_limit(resource.RLIMIT_DATA, setup["memory_mb"] << 20)
    set_limit(resource.RLIMIT_FSIZE, setup["file_size_mb"] << 20)
    set_limit(resource.RLIMIT_NOFILE, 64)
    set_limit(resource.RLIMIT_CORE, 0)
    sys.set_int_max_str_digits(50000)
    LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # the test processes cannot ptrace or read our memory

    preamble = {}
    exec(compile(PREAMBLE, "<preamble>", "exec"), preamble)
    sys.setrecursionlimit(1000)  # the preamble's 50000 is for the programs (each test process sets it again)
    # the preamble's names reach a program as builtins do (a test process then copies nothing); `from math import *`
    # brings math.pow, which would break pow(a, b, mod): builtins win over the preamble
    program_builtins = {name: value for name, value in preamble.items() if not name.startswith("__")}
    program_builtins.update(vars(builtins), exit=Exit("exit"), quit=Exit("quit"))
    # process 1 of a PID namespace receives from inside it only the signals it handles: with Python's one handler
    # (SIGINT's) gone, none, so no program can end it (elsewhere, at rlimit-only, SIGKILL would anyway)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # unused text streams on fds 0, 1 and 2 (here an empty pipe and stderr), which each test process points at
    # its own pipes: made once, not once per test
    stdio = (
        open(0, "r", encoding="utf-8", errors="surrogateescape", closefd=False),
        open(1, "w", encoding="utf-8", closefd=False),
        open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False),
    )
    gc.freeze()
    answer(proto_out, {"ready": True, "pid": os.getpid(), "fs_isolated": fs_isolated, "missing": missing})

    while True:
        job_pid = os.fork()
        if job_pid == 0:
            job_process(setup, program_builtins, stdio, proto_in, proto_out)
        while True:  # reap whatever else ends up here (as process 1, orphans do) until the job process is done
            pid, status = os.waitpid(-1, 0)
            if pid == job_pid:
                break
        exit_code = os.waitstatus_to_exitcode(status)
        if exit_code == 0:
            continue
        if exit_code != EOF_EXIT:  # a program killed its job process: the parent starts a new sandbox
            answer(proto_out, {"runner_died": describe_exit(exit_code)["message"]})
        os._exit(0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--prelude"]:
        prelude(json.loads(sys.argv[2]), sys.argv[3:])
    main()
