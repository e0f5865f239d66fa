"""The test driver that runs inside the sandbox (standard library only; started as `python -I -c <this file>`).

It is the sandbox's process 1 where there is a PID namespace. It reads one header line from the parent
(code, mode, limits), compiles the code once with the LiveCodeBench import preamble already imported, and then,
for each test line it receives, forks one child that runs the code on that test alone:

- the child gets a fresh pipe on fd 0 holding only that test's input, capped pipes on fd 1 and fd 2, its own
  process group, a CPU-time limit and a process-count limit;
- this driver enforces the wall-clock limit and the output caps, kills the child's group when either is passed,
  kills every other process left in the namespace, and answers with one JSON record per test.

Expected outputs never come here: the parent compares, so nothing in this process tree can read them.
"""

import builtins
import json
import linecache
import os
import resource
import select
import signal
import sys
import time
import traceback

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

SOLUTION_FILE = "Solution.py"
CHUNK = 65536
TMPFS_LIMITS = "size=64m,nr_inodes=4096"  # each scratch directory a program can write to
try:
    import ctypes

    LIBC = ctypes.CDLL(None, use_errno=True)
except (ImportError, OSError):
    LIBC = None


def set_limit(kind, soft, hard=None):
    hard = soft if hard is None else hard
    try:
        resource.setrlimit(kind, (soft, hard))
    except (ValueError, OSError):
        # never raise a limit above the hard limit we were started with; lower it to that instead
        cur_hard = resource.getrlimit(kind)[1]
        resource.setrlimit(kind, (min(soft, cur_hard), min(hard, cur_hard)))


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


def plain(value):
    """The return value as plain JSON data: tuples become lists, numpy scalars and arrays Python values."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":
        return plain(value.tolist())
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    return value


def run_child(header, code_obj, base_namespace, test_input, info_w, source_lines):
    """In the forked child: run the solution on one test, report a value or an error on `info_w`, exit."""
    report = {}
    exit_code = 0
    try:
        os.setpgid(0, 0)
        if LIBC is not None:
            LIBC.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the driver
        sys.setrecursionlimit(50000)  # LiveCodeBench's; the driver itself keeps a small one
        cpu = int(header["time_limit"]) + 1
        set_limit(resource.RLIMIT_CPU, cpu, cpu + 1)  # soft: SIGXCPU; hard: SIGKILL, even if SIGXCPU is ignored
        set_limit(resource.RLIMIT_NPROC, header["max_processes"])
        sys.stdin = sys.__stdin__ = open(0, "r", encoding="utf-8", errors="surrogateescape", closefd=False)
        sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)
        namespace = dict(base_namespace)
        namespace.update(__name__="__main__", stdin=sys.stdin, stdout=sys.stdout, stderr=sys.stderr)
        try:
            exec(code_obj, namespace)
            if header["mode"] == "functional":
                args = [json.loads(line) for line in test_input.split("\n")]
                if "Solution" in namespace:
                    method = getattr(namespace["Solution"](), header["fn_name"])
                else:
                    method = namespace[header["fn_name"]]
                value = plain(method(*args))
                try:
                    report["value"] = json.dumps(value)
                except (TypeError, ValueError):
                    report["unencodable"] = f"{type(value).__name__} is not a JSON value"[:200]
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
            while data:  # the driver reads it under the output cap
                data = data[os.write(info_w, data[:CHUNK]):]
        except BaseException:  # noqa: BLE001
            pass
        os._exit(exit_code)


def kill_leftovers(header, child_pid):
    """Kill the child's group, then, as process 1 of a namespace, everything else the test started."""
    try:
        os.killpg(child_pid, signal.SIGKILL)
    except OSError:
        pass
    if header["kill_all"]:
        try:
            os.kill(-1, signal.SIGKILL)  # process 1 (us) and the caller are spared by the kernel
        except OSError:
            pass


def run_test(header, code_obj, base_namespace, test, source_lines):
    """Fork, feed the input, collect capped output, enforce the wall clock; return the record."""
    test_input = test["input"]
    out_cap = int(test.get("out_cap", header["out_cap"]))
    err_cap = int(header["err_cap"])
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
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w, info_r, header["proto_in"], header["proto_out"]):
            if fd > 2:
                os.close(fd)
        run_child(header, code_obj, base_namespace, test_input, info_w, source_lines)
    for fd in (in_r, out_w, err_w, info_w):
        os.close(fd)
    # functional mode: fd 0 is an empty pipe, so input() meets EOF
    pending = b"" if header["mode"] == "functional" else test_input.encode("utf-8", "surrogateescape")
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
    deadline = start + float(header["time_limit"])
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
        kill_leftovers(header, pid)
    _, wait_status, usage = os.wait4(pid, 0)
    elapsed = time.monotonic() - start
    kill_leftovers(header, pid)  # whatever the test started in its group, and in a namespace everything else
    for fd in list(buffers) + [exit_fd] + ([in_w] if in_w is not None else []):
        os.close(fd)
    reap()
    exit_code = os.waitstatus_to_exitcode(wait_status)
    report = checked_report(bytes(buffers[info_r]))
    cpu_seconds = usage.ru_utime + usage.ru_stime
    if status is None:
        if exit_code in (-signal.SIGXCPU, -signal.SIGKILL) and cpu_seconds >= int(header["time_limit"]) + 1:
            status = "timeout"  # the CPU-time limit
        elif exit_code == 0 and "error" not in report:
            status = "ok"
        else:
            status = "runtime_error"
            if "error" not in report:
                report["error"] = describe_exit(exit_code)
    record = {
        "status": status,
        "exit_code": exit_code,
        "stdout": bytes(buffers[out_r]).decode("utf-8", "replace"),
        "stderr": bytes(buffers[err_r]).decode("utf-8", "replace"),
        "elapsed_ms": round(elapsed * 1000, 3),
    }
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


def isolate_filesystem(workdir, hidden, keep):
    """At the `namespaces` level (no bubblewrap): make every file system read-only, put fresh empty tmpfs over
    `hidden` (the shared scratch directories and the homes) and the work directory (size-limited, so neither
    disk nor memory fills up), mount `keep` (the interpreter) back read-only, then drop every capability, so
    that nothing a program does can undo it.

    Runs as root of the sandbox's own user namespace, whose mount namespace unshare created; nothing here
    reaches the host's mounts."""
    libc = LIBC
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]

    def mount(source, target, fstype, flags, data=None):
        args = [None if v is None else v.encode() for v in (source, target, fstype)]
        if libc.mount(args[0], args[1], args[2], flags, None if data is None else data.encode()) != 0:
            raise OSError(ctypes.get_errno(), f"mount {target}")

    ms_rdonly, ms_nosuid, ms_nodev, ms_remount, ms_bind, ms_rec, ms_private = 1, 2, 4, 32, 4096, 16384, 1 << 18
    mount(None, "/", None, ms_rec | ms_private)
    handles = {path: os.open(path, os.O_PATH) for path in keep}
    # struct mount_attr {u64 attr_set, attr_clr, propagation, userns_fd}: MOUNT_ATTR_RDONLY on every mount
    attr = (ctypes.c_uint64 * 4)(1, 0, 0, 0)
    sys_mount_setattr, at_fdcwd, at_recursive = 442, -100, 0x8000
    if libc.syscall(sys_mount_setattr, at_fdcwd, b"/", at_recursive, ctypes.byref(attr), ctypes.sizeof(attr)) != 0:
        raise OSError(ctypes.get_errno(), "mount_setattr / read-only")
    for target in hidden:
        mount("tmpfs", target, "tmpfs", ms_nosuid | ms_nodev, f"mode=1777,{TMPFS_LIMITS}")
    os.makedirs(workdir, exist_ok=True)
    mount("tmpfs", workdir, "tmpfs", ms_nosuid | ms_nodev, f"mode=0700,{TMPFS_LIMITS}")
    for path, handle in handles.items():
        if any(path.startswith(h.rstrip("/") + "/") for h in hidden):
            os.makedirs(path, exist_ok=True)
            # a bind mount keeps its source's flags; the remount makes sure it is read-only
            mount(f"/proc/self/fd/{handle}", path, None, ms_bind | ms_rec)
            mount(None, path, None, ms_bind | ms_remount | ms_rdonly)
        os.close(handle)
    os.chdir(workdir)
    # give up root's powers in this namespace: no capability now, none regained by exec
    pr_capbset_drop, pr_set_no_new_privs = 24, 38
    cap = 0
    while libc.prctl(pr_capbset_drop, cap, 0, 0, 0) == 0:
        cap += 1
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    if libc.capset(header, (ctypes.c_uint32 * 6)()) != 0:
        raise OSError(ctypes.get_errno(), "capset")
    libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0)


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main():
    # the protocol uses private copies of fd 0 and fd 1; the real fds go to the children
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    header = json.loads(proto_in.readline())
    header["proto_in"], header["proto_out"] = proto_in.fileno(), proto_out
    fs_isolated = False
    if header.get("isolate_fs"):
        try:
            isolate_filesystem(os.getcwd(), header["hidden"], header["keep"])
            fs_isolated = True
        except OSError as exc:  # an older kernel: the parent logs it and the rest of the sandbox still holds
            print(f"file-system isolation failed: {exc}", file=sys.stderr)

    set_limit(resource.RLIMIT_AS, header["memory_mb"] << 20)
    set_limit(resource.RLIMIT_DATA, header["memory_mb"] << 20)
    set_limit(resource.RLIMIT_FSIZE, header["file_size_mb"] << 20)
    set_limit(resource.RLIMIT_NOFILE, 64)
    set_limit(resource.RLIMIT_CORE, 0)
    sys.set_int_max_str_digits(50000)
    if LIBC is not None:
        LIBC.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: the children cannot ptrace or read our memory

    source = header["code"]
    source_lines = source.splitlines()
    linecache.cache[SOLUTION_FILE] = (len(source), None, source.splitlines(True), SOLUTION_FILE)
    compile_error = None
    try:
        code_obj = compile(source, SOLUTION_FILE, "exec")
    except BaseException as exc:  # noqa: BLE001 - SyntaxError, or Memory/RecursionError on degenerate code
        code_obj = None
        compile_error = error_info(exc, source_lines)
    del header["code"], source

    base_namespace = {"__builtins__": __builtins__}
    exec(compile(PREAMBLE, "<preamble>", "exec"), base_namespace)
    sys.setrecursionlimit(1000)  # the preamble's 50000 is for the programs (each child sets it again)
    # `from math import *` brings math.pow, which would break pow(a, b, mod): builtins win over the preamble
    for name in dir(builtins):
        base_namespace.pop(name, None)

    def answer(record):
        os.write(proto_out, (json.dumps(record) + "\n").encode())

    answer({"ready": True, "pid": os.getpid(), "fs_isolated": fs_isolated})
    for line in proto_in:
        test = json.loads(line)
        if compile_error:
            answer({"status": "runtime_error", "exit_code": 1, "stdout": "", "stderr": "", "elapsed_ms": 0.0,
                    "error": compile_error})
            continue
        answer(run_test(header, code_obj, base_namespace, test, source_lines))
    os._exit(0)  # end of input: the parent is done; skip the interpreter's slow shutdown


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
