"""The test driver that runs inside the sandbox (standard library only; started as `python -I -S -c <this file>`).

One driver serves one worker slot for as long as its `Sandbox` lives, so a job (one program and its tests)
pays no interpreter start. Three kinds of process take part:

- the **driver** (process 1 of the sandbox's PID namespace): reads the setup message, builds the file system
  (at the `namespaces` level), imports LiveCodeBench's preamble, handles no signal (so none sent from inside
  reaches it), forks the supervisor, and then forks a runner whenever the supervisor asks. It never reads a
  job's code or inputs, so nothing of one job is in the memory the next job's programs are forked from;
- the **supervisor**, forked once: reads job after job from the parent (code, then one test at a time), has
  each job's tests run by a runner, keeps the wall clock and the output caps, empties the scratch space after
  each test, and answers with one JSON record per test. Expected outputs never come here: the parent compares.
  It never forks, and programs cannot read its memory;
- a **runner**, forked by the driver for one job: compiles the program, imports the heavy packages it names
  (numpy, ...), then runs the job's tests one after another, as LiveCodeBench does, the program's module executed
  afresh for each with a new stdin pipe holding only that test's input. It is replaced by a new fork when a
  test ends it or leaves anything of its own running or open (`Runner.fit`); with `fresh_process_per_test`,
  after every test.

After each test, with every process the test started killed, the supervisor empties every place a program can
write (the scratch tmpfs and the working directory; at the namespace levels also the sandbox's System V IPC
objects), so the next test starts with clean writable space. POSIX message queues cannot be made at all.

As root, programs run as an unprivileged user. When the trainer's interpreter sits under a directory that
user cannot enter (a venv or pyenv under /root), `--prelude` runs first, as root, in a mount namespace of its
own: it covers that directory with a read-only tmpfs holding only the interpreter's directories, then execs
the rest of the sandbox's command.
"""

import builtins
import ctypes
import gc
import json
import linecache
import os
import random
import re
import resource
import select
import signal
import socket
import stat
import struct
import sys
import time
import traceback
import types
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
OUTPUT_WAIT_S = 0.002  # how long a test runs before its output pipes are read while it runs (`run_in_runner`)
STARTUP_S = 60.0  # a runner compiles and imports (numpy, ...) in far less; the parent's own clock is shorter anyway
CHUNK = 65536
TMPFS_LIMITS = "size=64m,nr_inodes=4096"  # each scratch directory a program can write to
EOF_EXIT = 3  # the supervisor read end-of-input: the parent is gone
SETUP_FAILED_EXIT = 4
LEFTOVERS_EXIT = 5  # the supervisor could not kill (or remove) what a test left behind
# the first byte a runner writes on its socket, before any program code runs
SETUP_OK, SETUP_ERROR = b"K", b"E"
CLONE_NEWNS = 0x00020000
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


class Messages:
    """The parent's length-prefixed JSON messages, read as they come (several at once: the parent sends tests ahead).
    The driver reads its setup, and nothing comes before its answer; the supervisor, which never forks, reads the
    rest, so what it reads of a job is in no other process."""

    def __init__(self, fd):
        self.fd, self.data, self.ended = fd, bytearray(), False

    def next(self):
        """The next message, or None at end of input."""
        while (size := self.whole()) == 0:
            if not self.read():
                return None
        message = json.loads(self.data[4:size])
        del self.data[:size]
        return message

    def read(self):
        """Add what comes next to the buffer (waiting for it); False at end of input."""
        chunk = b"" if self.ended else os.read(self.fd, CHUNK)
        self.data += chunk
        self.ended = not chunk
        return not self.ended

    def whole(self, at=0):
        """The end of the message that starts at `at`, with its length prefix, once all of it is here; else 0."""
        end = at + 4 + struct.unpack_from(">I", self.data, at)[0] if len(self.data) >= at + 4 else 0
        return end if len(self.data) >= end else 0

    def waiting(self):
        """How many whole messages are here, counting to two, with what the pipe holds now."""
        first = self.whole()
        if not (first and self.whole(first)) and not self.ended and select.select([self.fd], [], [], 0)[0]:
            self.read()
            first = self.whole()
        return 0 if not first else 1 + bool(self.whole(first))


def read_small(path):
    """A small /proc file's text, in three system calls (open() would make a Python file object: seven)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 1 << 16).decode()
    finally:
        os.close(fd)


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data) :]


def answer(fd, record):
    write_all(fd, (json.dumps(record) + "\n").encode())


class Answers:
    """The supervisor's records to the parent. Records wait while two tests or more are already there to run (short
    tests: the parent wakes once for several); with one left, they go, so that the parent can send more while it
    runs. They also go before the supervisor waits for anything: the parent's next message, a new runner, or a test
    that runs long. A job that stops at its first failure loses nothing by it: the tests already sent run whatever
    their records say."""

    def __init__(self, messages, proto_out):
        self.messages, self.proto_out = messages, proto_out
        self.held = []

    def send(self, record):
        self.held.append(json.dumps(record) + "\n")
        if self.messages.waiting() < 2:
            self.flush()

    def flush(self):
        data = "".join(self.held).encode()
        self.held.clear()
        write_all(self.proto_out, data)


# -- what a runner reports ----------------------------------------------------------------------------------------


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


# -- the runner -----------------------------------------------------------------------------------------------


def execute(job, code_obj, program_builtins, stdio, test_input, source_lines):
    """Run the program once, in this process, on one test; (report, exit code). `stdio` are the program's text
    streams, on fds 0, 1 and 2."""
    report = {}
    exit_code = 0
    sys.stdin, sys.stdout, sys.stderr = sys.__stdin__, sys.__stdout__, sys.__stderr__ = stdio
    # `from sys import *` gave the preamble the driver's stdin; the program's own shadow them
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
    return report, exit_code


def text_streams(previous, functional):
    """Text streams on fds 0, 1 and 2, as a fresh Python process has them. Those of the previous test serve again
    unless the program closed or detached them: stdout and stderr (flushed: empty), and a functional test's stdin,
    whose fd 0 is the runner's empty pipe in every test (a new stream for each costs 5% of the throughput). A stdin
    test's is new: its fd 0 is a new pipe, and the last stream may hold unread input of the last test."""
    stdin, stdout, stderr = previous
    if not (functional and usable(stdin)):
        stdin = open(0, "r", encoding="utf-8", errors="surrogateescape", closefd=False)
    if not (usable(stdout) and usable(stderr)):
        stdout = open(1, "w", encoding="utf-8", closefd=False)
        stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)
    return stdin, stdout, stderr


def usable(stream):
    """Made, and not closed or detached from its buffer."""
    try:
        return stream is not None and not stream.closed
    except ValueError:  # detached
        return False


def names_in(code):
    """(names, words): the names a program's code objects hold (`co_names`: those it looks up, imports or reads as
    attributes), and the words of its strings (which it could look up by name: `__builtins__["deque"]`)."""
    names, words, pending = set(), set(), [code]
    while pending:
        item = pending.pop()
        if isinstance(item, types.CodeType):
            names.update(item.co_names)
            pending.extend(item.co_consts)
        elif isinstance(item, str):
            words.update(re.findall(r"[^\W\d]\w*", item))
        elif isinstance(item, (tuple, frozenset)):
            pending.extend(item)
    return names, words


def builtins_for(names, program_builtins):
    """The builtins of a program whose code holds `names` (both kinds of `names_in`): those among them, and those
    the interpreter looks up itself; all of them if it may evaluate or compile code it makes (`eval`, `exec` or
    `compile` among them, even as an attribute: `re.compile`), which could name any. A name it never looks up makes
    no difference to it, and each costs: a runner copies its builtins for each test, and the first copy writes to
    the reference count of every object in it, so each memory page one is on, shared with the driver until then, is
    copied. All of them: about 280 page faults per job, 6% of the realistic benchmark's throughput."""
    if names & {"eval", "exec", "compile"}:
        return program_builtins
    names = names | {"__build_class__", "__import__"}  # class statements and import statements look them up
    return {name: program_builtins[name] for name in names if name in program_builtins}


def frame_of(message):
    """A message as it goes on a socket: its JSON, length-prefixed."""
    data = json.dumps(message).encode("utf-8", "surrogateescape")
    return struct.pack(">I", len(data)) + data


def send_frame(sock, message, fds=()):
    """A length-prefixed JSON message on a (blocking) socket, with file descriptors when given."""
    frame = frame_of(message)
    sent = socket.send_fds(sock, [frame[:CHUNK]], list(fds)) if fds else 0
    sock.sendall(frame[sent:])


def receive_frame(sock, max_fds=0):
    """(message, fds) from `send_frame`; None at the other side's end."""
    data, fds, _, _ = socket.recv_fds(sock, CHUNK, max_fds) if max_fds else (sock.recv(CHUNK), [], 0, None)
    while 0 < len(data) < 4:
        more = sock.recv(4 - len(data))
        if not more:
            return None
        data += more
    if len(data) < 4:
        return None
    size = struct.unpack(">I", data[:4])[0]
    data = bytearray(data[4:])
    while len(data) < size:
        chunk = sock.recv(min(size - len(data), 1 << 20))
        if not chunk:
            return None
        data += chunk
    return json.loads(data), fds


def runner_main(setup, program_builtins, sock, empty_fd):
    """A runner, forked by the driver for one job (and forked again when a test leaves it unfit; with
    `fresh_process_per_test`, for each test). On its socket: SETUP_OK (or SETUP_ERROR) first; then the job (code
    and mode) comes and the compile outcome goes back; then test after test: a message holding the functional
    test's arguments (a stdin test's: with the read end of its stdin pipe), and back the report, length-prefixed. Per
    test the program's module runs afresh (new globals and builtins) and what a program may change in this process
    that a fresh one would not have (working directory, recursion and integer-digit limits, timers, the collector
    switched off) is reset; imported modules stay."""
    try:
        os.chdir(setup["workdir"])
    except OSError as exc:
        sock.sendall(SETUP_ERROR + f"working directory: {exc}".encode()[:500])
        os._exit(SETUP_FAILED_EXIT)
    sock.sendall(SETUP_OK)
    received = receive_frame(sock)
    if received is None:
        os._exit(EOF_EXIT)
    job = received[0]
    source = job.pop("code")
    source_lines = source.splitlines()
    linecache.cache[SOLUTION_FILE] = (len(source), None, source.splitlines(True), SOLUTION_FILE)
    try:
        code_obj = compile(source, SOLUTION_FILE, "exec")
    except BaseException as exc:  # noqa: BLE001 - SyntaxError, or Memory/RecursionError on degenerate code
        send_frame(sock, {"compile_error": error_info(exc, source_lines)})
        os._exit(0)
    names, words = names_in(code_obj)
    # slow to import and free of side effects: imported once per runner, as LiveCodeBench imports a program's
    # modules once for all its tests (a name it only reads as an attribute imports one for nothing)
    for name in {name.split(".")[0] for name in names} & set(PREIMPORTS):
        try:
            __import__(name)
        except BaseException:  # noqa: BLE001 - not installed, or broken: the program meets it itself
            pass
    program_builtins = builtins_for(names | words, program_builtins)
    del source
    gc.freeze()
    send_frame(sock, {"compiled": True})
    cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    stdio = (None, None, None)
    while True:
        received = receive_frame(sock, max_fds=1)
        if received is None:
            os._exit(0)
        test_input, fds = received  # a stdin test's input pipe; a functional test's fd 0 stays on the empty pipe
        exit_code = 0
        try:
            for in_r in fds:
                os.dup2(in_r, 0)
                os.close(in_r)
            os.chdir(setup["workdir"])
            sys.setrecursionlimit(50000)  # LiveCodeBench's; the driver itself keeps a small one
            sys.set_int_max_str_digits(50000)
            for timer in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
                signal.setitimer(timer, 0)
            gc.enable()
            used = resource.getrusage(resource.RUSAGE_SELF)
            cpu = int(used.ru_utime + used.ru_stime + job["time_limit"]) + 1
            # soft: SIGXCPU. A hard value cannot be raised again for the next test: only a runner for one test has one
            # (SIGKILL, even if SIGXCPU is ignored); the supervisor's wall clock ends every test anyway
            set_limit(resource.RLIMIT_CPU, cpu, cpu + 1 if setup["fresh_process_per_test"] else cpu_hard)
            stdio = text_streams(stdio, job["mode"] == "functional")
            report, exit_code = execute(job, code_obj, dict(program_builtins), stdio, test_input, source_lines)
            report["exit_code"] = exit_code
            os.dup2(empty_fd, 0)
            send_frame(sock, report)
        except BaseException:  # noqa: BLE001 - the program broke this process (deleted os.dup2, ...): it ends
            os._exit(exit_code or 1)


# -- the supervisor -------------------------------------------------------------------------------------------


class Runner:
    """The supervisor's side of a runner, which the driver forks on request: its socket, its stdout and stderr pipes
    (which it keeps; each test brings a new stdin pipe), and what it has open between tests. A runner is replaced
    when a test ends it (a crash, a timeout, the output cap) or leaves it unfit for the next (`fit`)."""

    def __init__(self, setup, to_driver, header):
        # the supervisor, the driver and the runner take turns, never running at once: on one CPU, the wake-ups of
        # each test stay on it (across CPUs each one costs an interprocessor interrupt, often to an idle CPU that
        # must wake first). That CPU is the supervisor's now, wherever the scheduler put it, unless another worker
        # of the trainer's runs there (then one at random that none does, if any: two that met part); `kill` lets
        # it go, so that the scheduler places the three anew for the next runner
        cpu = LIBC.sched_getcpu()
        free = sorted(setup["cpus"] - set(header["avoid_cpus"]))
        if cpu not in free and free:
            cpu = random.choice(free)
        setup["cpu"] = cpu  # the parent learns it from the records
        run_on({cpu})  # the driver's too, which the runner inherits
        send_frame(to_driver, {"fork": True})
        reply, fds = receive_frame(to_driver, max_fds=3)
        self.pid, self.fds = reply["pid"], set(reply["fds"])
        self.sock = socket.socket(fileno=fds[0])
        self.out_r, self.err_r = fds[1], fds[2]
        for fd in (self.out_r, self.err_r):
            os.set_blocking(fd, False)  # read what is there, never wait on them: the socket says when a test ends
        self.pidfd = os.pidfd_open(self.pid)
        # kept open for `fit`, which then reads them in one system call each: /proc/loadavg in the sandbox's own PID
        # namespace (with the driver as its process 1), and the runner's file descriptor directory
        self.loadavg = setup["loadavg"]
        try:
            self.fd_dir = os.open(f"/proc/{self.pid}/fd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:  # it is gone already
            self.fd_dir = None
        self.to_driver = to_driver  # the socket to the driver
        self.ready = False  # its SETUP_OK came
        self.inbox = bytearray()  # what came on its socket and is not yet taken
        # non-blocking (a socket with a timeout would poll before every send): `send` waits when it must
        self.sock.setblocking(False)
        self.send_timeout = float(header["time_limit"])  # a runner that stops reading its socket times out
        self.startup = None  # SETUP_ERROR's message (a str), {"compiled": True}, or {"error": the compile error}
        try:
            self.send(header)
        except OSError:
            return
        deadline = time.monotonic() + STARTUP_S
        while self.startup is None:
            readable, _, _ = select.select([self.sock.fileno(), self.pidfd], [], [], max(0.0, deadline - time.monotonic()))
            if not readable:
                return
            drained = self.read_socket(cap=1 << 20)  # a compile error's report is far shorter
            self.startup = self.take_report(check=startup_message)
            if not drained and self.startup is None:
                return  # it is gone

    def read_socket(self, cap):
        """Move what its socket holds into the inbox, up to a little past `cap` bytes; False at its end."""
        while len(self.inbox) <= cap:
            try:
                data = os.read(self.sock.fileno(), CHUNK)
            except BlockingIOError:
                return True
            if not data:
                return False
            self.inbox += data
            if len(data) < CHUNK:
                return True
        return True

    def send(self, message, fds=()):
        """A length-prefixed JSON message to the runner, with file descriptors when given; TimeoutError when it
        stops reading its socket for `send_timeout`."""
        frame = memoryview(frame_of(message))
        deadline = None
        while frame:
            try:
                sent = socket.send_fds(self.sock, [frame[:CHUNK]], fds) if fds else self.sock.send(frame[:CHUNK])
            except BlockingIOError:
                deadline = deadline or time.monotonic() + self.send_timeout
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([], [self.sock], [], left)[1]:
                    raise TimeoutError("the runner stopped reading its socket") from None
                continue
            frame, fds = frame[sent:], ()

    def take_report(self, check=None):
        """The next whole message from the inbox, checked (by `check`, else as a report); None until there is one.
        SETUP_ERROR: a str."""
        if not self.ready:
            if self.inbox.startswith(SETUP_ERROR):
                return bytes(self.inbox[1:]).decode("utf-8", "replace")
            if not self.inbox.startswith(SETUP_OK):
                return None
            del self.inbox[:1]
            self.ready = True
        if len(self.inbox) < 4:
            return None
        size = struct.unpack(">I", self.inbox[:4])[0]
        if len(self.inbox) < 4 + size:
            return None
        raw = bytes(self.inbox[4 : 4 + size])
        del self.inbox[: 4 + size]
        return (check or checked_report)(raw)

    def fit(self):
        """Only its own thread, no process below it or orphaned to the driver, and as many file descriptors as it
        started with (one more could hold a file the emptying of the scratch space does not reach)."""
        try:
            if self.loadavg is not None:
                # the last process or thread the sandbox's PID namespace made (/proc/loadavg's last field) is this
                # runner: the program started none, not even one that has ended since, so none of them lives on
                alone = int(os.pread(self.loadavg, 128, 0).rsplit(b" ", 1)[1]) == self.pid
            else:
                threads = int(read_small(f"/proc/{self.pid}/stat").rsplit(")", 1)[1].split()[17])
                driver = os.getppid()
                alone = (
                    threads == 1
                    and not read_small(f"/proc/{self.pid}/task/{self.pid}/children").strip()
                    and set(read_small(f"/proc/{driver}/task/{driver}/children").split()) == {str(os.getpid()), str(self.pid)}
                )
            if not alone or self.fd_dir is None:
                return False
            # the directory's size is the number of open file descriptors (Linux 6.2 on; before, 0: then listed)
            count = os.fstat(self.fd_dir).st_size
            return count == len(self.fds) if count else {int(fd) for fd in os.listdir(f"/proc/{self.pid}/fd")} == self.fds
        except (OSError, ValueError, IndexError):
            return False

    def kill(self, setup):
        """Kill it and everything it started; then its exit status and the CPU seconds it used (its parent, the
        driver, reaps it)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        send_frame(self.to_driver, {"wait": self.pid})
        ended = receive_frame(self.to_driver)[0]
        for fd in (self.out_r, self.err_r, self.pidfd, self.fd_dir):
            if fd is not None:
                os.close(fd)
        self.sock.close()
        if not kill_leftovers(setup, self.to_driver):
            raise Broken("a process the program started could not be killed")
        run_on(setup["cpus"])
        return ended["status"], ended["cpu"]


def run_on(cpus):
    """Let the supervisor and the driver run only on `cpus` (and the runners the driver forks from now on)."""
    for pid in (0, os.getppid()):
        try:
            os.sched_setaffinity(pid, cpus)
        except OSError:  # the CPU went offline, or out of the trainer's set: the scheduler's choice stands
            pass


def startup_message(raw):
    """What a runner says before any program code ran: {"compiled": True} or {"compile_error": info}."""
    try:
        message = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(message, dict):
        return {}
    if message.get("compiled") is True:
        return {"compiled": True}
    return checked_report(json.dumps({"error": message.get("compile_error")}).encode())


def descendants(root):
    """Every process below `root` (the driver; orphans come to it too: it is their subreaper) but this one."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    children = [int(c) for c in f.read().split() if int(c) != os.getpid()]
            except (OSError, ValueError):
                continue
            found += children
            todo += children
    return found


def kill_leftovers(setup, to_driver):
    """Kill everything a runner left (in a PID namespace everything but process 1 and us, else every descendant of
    the driver but us), the driver reaping the dead. False if something still lives after a few seconds."""
    give_up = time.monotonic() + 5.0
    while time.monotonic() < give_up:  # a fork bomb forks while we kill: go on until nothing answers
        if setup["kill_all"]:
            try:
                os.kill(-1, signal.SIGKILL)  # process 1 and the caller are spared by the kernel
            except ProcessLookupError:
                return True
        else:
            found = descendants(os.getppid())
            if not found:
                return True
            for pid in found:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        send_frame(to_driver, {"reap": True})  # the dead still count until their parent reaps them
        receive_frame(to_driver)
        time.sleep(0.001)
    return False


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


# inotify(7): a changed file, changed attributes, an entry moved out or in, made, removed; the watched one removed
# or moved
IN_CHANGES = 0x2 | 0x4 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800
IPC_INFO = [(ctypes.c_int * 32)() for _ in range(3)]  # struct shm_info, msginfo, seminfo (all shorter)


def ipc_in_use():
    """How many System V shared memory segments, message queues and semaphore sets the sandbox's IPC namespace
    holds: one system call each."""
    shm, msg, sem = IPC_INFO
    LIBC.shmctl(0, 14, shm)  # SHM_INFO: used_ids, the first field
    LIBC.msgctl(0, 12, msg)  # MSG_INFO: msgpool, the first field
    LIBC.semctl(0, 0, 19, sem)  # SEM_INFO: semusz, the eighth
    return shm[0], msg[0], sem[7]


def remove_ipc_objects():
    """The System V shared memory segments, message queues and semaphores of the sandbox's own IPC namespace: a
    test could leave data there for the next."""
    for kind, remove in (("shm", LIBC.shmctl), ("msg", LIBC.msgctl), ("sem", LIBC.semctl)):
        try:
            ids = [int(line.split()[1]) for line in read_small(f"/proc/sysvipc/{kind}").splitlines()[1:] if line.strip()]
        except (OSError, ValueError, IndexError):
            continue
        for ipc_id in ids:
            remove(ipc_id, 0, None)  # IPC_RMID


class Changes:
    """An inotify watch on every directory the emptying leaves: each scratch root, the working directory, and those
    on the way from a scratch root to the interpreter's directories (read-only themselves). Whatever a program
    makes in the scratch space starts with a new entry in one of them, and what it may set on them (modes, times,
    extended attributes) changes their attributes: each is an event here, so no event since the last emptying
    means nothing to empty. What only a file descriptor reaches (an unnamed file) goes with the runner that holds
    it when the runner holds more descriptors than it started with (`Runner.fit`)."""

    def __init__(self, setup):
        self.paths = setup["scratch"] + [setup["workdir"]]
        for kept in setup["keep"]:
            for root in setup["scratch"]:
                if kept.startswith(root.rstrip("/") + "/"):
                    parts = kept[len(root) :].strip("/").split("/")
                    self.paths += [os.path.join(root, *parts[:i]) for i in range(1, len(parts))]
        self.fd = LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)  # -1: this user has none left

    def watch(self):
        """Watch the paths (the working directory may be a new one); False if one cannot be watched."""
        return self.fd >= 0 and all(LIBC.inotify_add_watch(self.fd, p.encode(), IN_CHANGES) >= 0 for p in self.paths)

    def seen(self):
        """Whether anything changed since the last call."""
        changed = False
        while True:
            try:
                changed = bool(os.read(self.fd, 1 << 16)) or changed
            except BlockingIOError:
                return changed


def clean_up(setup, quick=False):
    """After a test, with everything it started killed, or with a fit runner idle: empty every place a program can
    write, and reset what it may have set on the scratch roots and the working directory (their modes, times and
    extended attributes, which outlive the emptying). `quick`: first check, in one system call, whether anything
    changed since the last emptying (`Changes`; possible where the scratch directories are the sandbox's own
    tmpfs), and the System V IPC objects in three."""
    changes = setup["changes"]
    if quick and changes is not None and not changes.seen() and ipc_in_use() == setup["clean_ipc"]:
        return
    for path, mode in zip(setup["scratch"], setup["scratch_modes"]):
        os.chmod(path, mode)  # a program could have changed them: it ran as our user
    workdir = setup["workdir"]
    try:
        kept = stat.S_ISDIR(os.lstat(workdir).st_mode)
    except FileNotFoundError:
        kept = False
    if kept:
        os.chmod(workdir, 0o700)
        empty_directory(workdir)
    keep = setup["keep"] + [workdir] if kept else setup["keep"]
    for path in setup["scratch"]:
        empty_directory(path, keep)
    if setup["kill_all"]:
        remove_ipc_objects()
    if not kept:
        os.makedirs(workdir, mode=0o700, exist_ok=True)
    for path in setup["scratch"] + [workdir]:
        try:
            for name in os.listxattr(path, follow_symlinks=False):
                os.removexattr(path, name, follow_symlinks=False)
            os.utime(path)
        except OSError:  # not ours to change (no extended attributes here, a root another user owns)
            pass
    if changes is not None:
        if changes.watch():
            changes.seen()  # the emptying's own
            setup["clean_ipc"] = ipc_in_use()
        else:
            setup["changes"] = None  # every test then empties everything


def feed(in_w, pending):
    """Write what the stdin pipe of a test takes of its input (non-blocking, unless all of it fits at once); close
    the pipe when all is written (or the program closed its end). Returns the pipe (None once closed) and what is
    left to write."""
    try:
        while pending:
            pending = pending[os.write(in_w, pending[:CHUNK]) :]
    except (BrokenPipeError, BlockingIOError) as exc:
        if isinstance(exc, BrokenPipeError):
            pending = b""
    if not pending:
        os.close(in_w)
        in_w = None
    return in_w, pending


def sandbox_error(message, elapsed):
    return {"status": "sandbox_error", "exit_code": None, "stdout": "", "stderr": message, "elapsed_ms": round(elapsed * 1000, 3)}


def make_record(status, exit_code, cpu_limit_hit, out, err, elapsed, report):
    """The record of one test. `status` is set when the supervisor ended it (timeout, output_limit)."""
    if status is None:
        if cpu_limit_hit:
            status = "timeout"  # the CPU-time limit
        elif exit_code == 0 and "error" not in report:
            status = "ok"
        else:
            status = "runtime_error"
            if "error" not in report:
                report["error"] = describe_exit(exit_code)
    return {
        "status": status,
        "exit_code": exit_code,
        "stdout": bytes(out).decode("utf-8", "replace"),
        "stderr": bytes(err).decode("utf-8", "replace"),
        "elapsed_ms": round(elapsed * 1000, 3),
        **report,
    }


def run_in_runner(setup, job, runner, test, answers):
    """Run one test in `runner`: send it the test's stdin pipe, feed the input, collect capped output until its
    report, enforce the wall clock. Returns (the record, whether the runner may run the next test)."""
    test_input = test["input"]
    out_cap = int(test.get("out_cap", setup["out_cap"]))
    err_cap = int(setup["err_cap"])
    functional = job["mode"] == "functional"
    # stdin mode: a new pipe holding only the test's input. An input that fits in the pipe is all there (and the
    # pipe closed) before the runner gets it; a longer one is fed as the runner reads. Functional mode: fd 0 stays
    # on the runner's empty pipe, so input() meets EOF
    in_r, in_w, pending = None, None, b""
    if not functional:
        in_r, in_w = os.pipe()
        data = test_input.encode("utf-8", "surrogateescape")
        if len(data) > select.PIPE_BUF:  # no more than that always fits in a new pipe at once
            os.set_blocking(in_w, False)
        in_w, pending = feed(in_w, data)
    start = time.monotonic()
    status = None
    try:
        runner.send(test_input if functional else "", [in_r] if in_r is not None else [])
    except TimeoutError:
        status = "timeout"  # it stopped reading its socket
    except OSError:
        pass  # it is gone: its exit ends the test below
    if in_r is not None:
        os.close(in_r)
    out, err = bytearray(), bytearray()
    sock_fd = runner.sock.fileno()
    reading = [runner.out_r, runner.err_r, sock_fd]
    report, exited = None, False
    deadline = start + float(job["time_limit"])
    # at first only its report (or its exit) is awaited: a short test's output is in the pipes when its report
    # comes, and waking for the output first would double the wake-ups. From OUTPUT_WAIT_S on, the output pipes
    # are read as they fill (a program that filled one waits for that; the caps apply)
    watch_output = start + OUTPUT_WAIT_S
    while status is None and report is None and not exited:
        now = time.monotonic()
        left = deadline - now
        if left <= 0:
            status = "timeout"
            break
        if now >= watch_output and answers.held:
            answers.flush()  # a test that runs long: the parent has every earlier record meanwhile
        watched = reading if now >= watch_output else [sock_fd]
        timeout = left if now >= watch_output else min(left, watch_output - now)
        readable, writable, _ = select.select(watched + [runner.pidfd], [in_w] if in_w is not None else [], [], timeout)
        if writable:
            in_w, pending = feed(in_w, pending)
        exited = runner.pidfd in readable
        status = drain(runner, out, err, out_cap, err_cap, [fd for fd in readable if fd != runner.pidfd])
        if status is None and sock_fd in readable:
            report = runner.take_report()
    if status is None:
        # what it wrote before its report (or its exit) is in the pipes now
        status = drain(runner, out, err, out_cap, err_cap, select.select(reading, [], [], 0)[0])
        if report is None:
            report = runner.take_report()
    elapsed = time.monotonic() - start
    if in_w is not None:
        os.close(in_w)
    keep = status is None and report is not None and not exited and runner.fit()
    if keep:
        exit_code = report.pop("exit_code", 1)  # none: the report was written by the program, not by the runner
        clean_up_or_break(setup, quick=True)
        return make_record(None, exit_code, False, out, err, elapsed, report), True
    wait_status, cpu_seconds = runner.kill(setup)
    clean_up_or_break(setup)
    if report is not None and not exited and status is None:  # it reported; killed only because it was unfit
        exit_code = report.pop("exit_code", 1)
    else:
        exit_code = os.waitstatus_to_exitcode(wait_status)
        report = report if isinstance(report, dict) else {}
        report.pop("exit_code", None)
    # the CPU-time limit: its soft value (SIGXCPU), or the hard one of a runner for one test (SIGKILL)
    cpu_limit_hit = exit_code == -signal.SIGXCPU or (
        exit_code == -signal.SIGKILL and setup["fresh_process_per_test"] and cpu_seconds >= int(job["time_limit"]) + 1
    )
    return make_record(status, exit_code, cpu_limit_hit, out, err, elapsed, report), False


def drain(runner, out, err, out_cap, err_cap, fds):
    """Read what is there on the runner's stdout, stderr and socket (of `fds`); "output_limit" past a cap."""
    for fd in fds:
        if fd == runner.sock.fileno():
            runner.read_socket(cap=out_cap + CHUNK)
            if len(runner.inbox) > out_cap + CHUNK:
                return "output_limit"
            continue
        while True:
            try:
                data = os.read(fd, CHUNK)
            except BlockingIOError:
                break
            if not data:
                break
            if fd == runner.out_r:
                out += data
                if len(out) > out_cap:
                    del out[out_cap:]
                    return "output_limit"
            else:
                err += data[: max(0, err_cap - len(err))]  # beyond the cap read and dropped: the program goes on
            if len(data) < CHUNK:
                break
    return None


def checked_report(raw):
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
    if type(report.get("exit_code")) is int:
        checked["exit_code"] = report["exit_code"]
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


def supervisor(setup, proto_in, proto_out, to_driver):
    """Run job after job as the parent sends them: a job's code, then its tests one by one. Each job's tests run in a
    runner the driver forks for it; this process keeps the clock and the caps, empties the scratch space, and
    answers with one JSON record per test. It never forks: what it reads of a job is in no other process."""
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    messages = Messages(proto_in)
    answers = Answers(messages, proto_out)
    setup["changes"] = Changes(setup) if setup["quick_clean"] else None
    setup["loadavg"] = os.open("/proc/loadavg", os.O_RDONLY | os.O_CLOEXEC) if setup["kill_all"] else None
    try:
        clean_up_or_break(setup)  # and the state the quick check compares with
        while True:
            header = messages.next()
            if header is None:
                os._exit(EOF_EXIT)
            run_job(setup, header, messages, answers, to_driver)
    except Broken as exc:
        print(f"sandbox ended: {exc}", file=sys.stderr, flush=True)
        answers.flush()  # the records of the tests that ran; then the parent reads that the sandbox ended
        os._exit(LEFTOVERS_EXIT)


def run_job(setup, header, messages, answers, to_driver):
    """One job's tests, until its end."""
    runner, failed, compile_error = None, False, None
    while True:
        test = messages.next()
        if test is None or test.get("end"):
            if runner is not None:
                # it may have written since its last test (the next job must not see it); dead, it writes nothing
                # more, so what it wrote shows as at the end of a test
                runner.kill(setup)
                clean_up_or_break(setup, quick=True)
            if test is None:
                os._exit(EOF_EXIT)
            return
        if failed and header["stop_at_first_failure"]:
            record = {"status": "not_run"}  # queued behind a failure: the parent does not judge it
        elif compile_error:
            record = compile_error_record(compile_error)
        else:
            if runner is None:
                answers.flush()  # a runner may take a while to start (numpy, ...)
                runner = Runner(setup, to_driver, header)
            startup = runner.startup
            if isinstance(startup, dict) and startup.get("compiled"):
                try:
                    record, fit = run_in_runner(setup, header, runner, test, answers)
                except OSError as exc:  # the supervisor's own pipes failed
                    raise Broken(str(exc)) from None
                if fit and setup["fresh_process_per_test"]:
                    runner.kill(setup)
                    clean_up_or_break(setup, quick=True)  # what it may have written after its report
                    fit = False
                if not fit:
                    runner = None
            else:  # it did not start, or the code does not compile: no program code ran
                runner.kill(setup)
                runner = None
                if isinstance(startup, dict) and "error" in startup:
                    compile_error = startup["error"]
                    record = compile_error_record(compile_error)
                else:
                    record = sandbox_error(startup if isinstance(startup, str) else "the runner did not start", 0.0)
        failed = failed or record["status"] != "ok"
        record["cpu"] = setup["cpu"]
        answers.send(record)


def compile_error_record(error):
    return {"status": "runtime_error", "exit_code": 1, "stdout": "", "stderr": "", "elapsed_ms": 0.0, "error": error}


class Broken(Exception):
    """What a test left could not be killed or removed: the sandbox ends (the parent starts a new one), so no other
    test meets it."""


def clean_up_or_break(setup, quick=False):
    try:
        clean_up(setup, quick)
    except OSError as exc:
        raise Broken(f"the scratch space could not be emptied: {exc}") from None


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
    directories) back read-only, then drop every capability, so that nothing a program does can undo it.

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
    # the protocol uses private copies of fd 0 and fd 1; fd 0 becomes an empty pipe, fd 1 our stderr
    proto_in, proto_out = os.dup(0), os.dup(1)
    empty_r, empty_w = os.pipe()
    os.dup2(empty_r, 0)
    os.dup2(2, 1)
    os.close(empty_r)
    os.close(empty_w)
    setup = Messages(proto_in).next()
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
    # the scratch directories are tmpfs of the sandbox's own (bubblewrap's, or ours at `namespaces`), whose inode
    # counts only its programs change
    setup["quick_clean"] = setup["kill_all"] and (fs_isolated or not setup["isolate_fs"])
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
    # no POSIX message queue can be made (none has room), so none can carry data from one test to the next
    set_limit(resource.RLIMIT_MSGQUEUE, 0)
    sys.set_int_max_str_digits(50000)
    # programs cannot ptrace or read the memory of the driver or the supervisor (which holds the job's tests)
    LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    setup["cpus"] = os.sched_getaffinity(0)  # the CPUs the trainer's process may use
    setup["cpu"] = None  # the one the last runner ran on (`Runner`)
    # what a runner orphans comes here (at rlimit-only; in a PID namespace, as its process 1, anyway)
    LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    preamble = {}
    exec(compile(PREAMBLE, "<preamble>", "exec"), preamble)
    sys.setrecursionlimit(1000)  # the preamble's 50000 is for the programs (a runner sets it for each test)
    # the preamble's names reach a program as builtins do (a runner copies one dict per test); `from math import *`
    # brings math.pow, which would break pow(a, b, mod): builtins win over the preamble
    program_builtins = {name: value for name, value in preamble.items() if not name.startswith("__")}
    program_builtins.update(vars(builtins), exit=Exit("exit"), quit=Exit("quit"))
    # process 1 of a PID namespace receives from inside it only the signals it handles: with Python's one handler
    # (SIGINT's) gone, none, so no program can end it (elsewhere, at rlimit-only, SIGKILL would anyway)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.collect()
    gc.freeze()  # the collector never writes to these objects' pages, which the runners share until written
    LIBC.malloc_trim(0)  # heap pages left free go back: a fork copies the page tables of the rest
    answer(proto_out, {"ready": True, "pid": os.getpid(), "fs_isolated": fs_isolated, "missing": missing})

    control, theirs = socket.socketpair()
    supervisor_pid = os.fork()
    if supervisor_pid == 0:
        control.close()
        supervisor(setup, proto_in, proto_out, theirs)
    theirs.close()
    os.close(proto_in)  # the driver reads no job
    serve(setup, program_builtins, control, proto_out, supervisor_pid)


def serve(setup, program_builtins, control, proto_out, supervisor_pid):
    """The driver's loop: fork a runner when the supervisor asks, give it a runner's exit status, reap the dead.
    When the supervisor is gone (the parent's end of input, or a program killed it), the sandbox ends."""
    while True:
        received = receive_frame(control)
        if received is None:
            exit_code = os.waitstatus_to_exitcode(wait_for(supervisor_pid)[0])
            if exit_code != EOF_EXIT:  # the parent starts a new sandbox
                answer(proto_out, {"runner_died": describe_exit(exit_code)["message"]})
            os._exit(0)
        request = received[0]
        if request.get("fork"):
            start_runner(setup, program_builtins, control)
        elif "wait" in request:
            status, cpu_seconds = wait_for(int(request["wait"]))
            send_frame(control, {"status": status, "cpu": cpu_seconds})
        else:
            reap()
            send_frame(control, {"reaped": True})


def wait_for(pid):
    """A child's exit status and the CPU seconds it used."""
    try:
        _, status, usage = os.wait4(pid, 0)
    except ChildProcessError:  # reaped already
        return signal.SIGKILL, 0.0
    return status, usage.ru_utime + usage.ru_stime


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def start_runner(setup, program_builtins, control):
    """Fork a runner from this process, which never read a job; hand the supervisor its socket and output pipes."""
    ours, theirs = socket.socketpair()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    empty_fd, no_writer = os.pipe()  # an empty pipe, at its end: fd 0 between tests and in functional tests
    os.close(no_writer)
    # what it has open between tests, by number: fd 0 on the empty pipe, its stdout and stderr pipes, the empty
    # pipe, its socket, and the interpreter's directories (at rlimit-only as root, sys.path reaches them through fds)
    fds = {0, 1, 2, empty_fd, theirs.fileno()} | set(setup["keep_fds"])
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # die with the driver
            LIBC.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # the program may read its own /proc/self; we stay undumpable
            # a fresh Python process's handling of signals (the driver's has none)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            set_limit(resource.RLIMIT_NPROC, setup["max_processes"])
            for fd, target in ((empty_fd, 0), (out_w, 1), (err_w, 2)):
                os.dup2(fd, target)
            close_other_fds(fds)
            runner_main(setup, program_builtins, theirs, empty_fd)
        finally:
            os._exit(SETUP_FAILED_EXIT)
    try:
        send_frame(control, {"pid": pid, "fds": sorted(fds)}, [ours.fileno(), out_r, err_r])
    finally:
        for fd in (out_r, out_w, err_r, err_w, empty_fd):
            os.close(fd)
        ours.close()
        theirs.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--prelude"]:
        prelude(json.loads(sys.argv[2]), sys.argv[3:])
    main()
