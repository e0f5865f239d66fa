"""rlexp.sandbox: every protection the README's code-sandbox section lists, and hostile programs against each.

Each test runs at every isolation level this machine supports; a protection that needs a level skips below it
(the README's table of levels), so the same file runs on a laptop, in Docker and in CI.
"""

import ast
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from rlexp import sandbox
from rlexp.sandbox import Job, Sandbox, SandboxUnavailable, run_program


def _available(level):
    try:
        return sandbox.probe(level).level == level
    except SandboxUnavailable:
        return False


LEVELS = [level for level in sandbox.LEVELS if _available(level)]
ROOT = os.geteuid() == 0
RANK = {"bwrap": 2, "namespaces": 1, "rlimit-only": 0}


# every level with a job's tests run one after another in one process (the default), and the best level with a
# process forked for each test
MODES = [(level, False) for level in LEVELS] + [(LEVELS[0], True)] if LEVELS else []


@pytest.fixture(params=MODES, ids=lambda mode: mode[0] + ("-fresh-process-per-test" if mode[1] else ""))
def box(request):
    level, fresh = request.param
    box = Sandbox(level=level, workers=2, fresh_process_per_test=fresh)
    yield box
    box.close()


def run1(box, code, stdin="", time_limit=1.0, **kw):
    return box.run(Job(code, [stdin], time_limit=time_limit, **kw))[0]


def needs(box, level):
    if RANK[box.level] < RANK[level]:
        pytest.skip(f"needs sandbox level {level}; running at {box.level}")


def test_some_isolation_is_available_here():
    # CI's machine has user namespaces; bubblewrap comes with `make setup` where apt is usable
    assert LEVELS and LEVELS[0] in ("bwrap", "namespaces")


def test_run_program_returns_everything():
    r = run_program("import sys\nprint(input()[::-1])\nprint('warn', file=sys.stderr)", stdin="abc\n", timeout_s=2)
    assert (r.verdict, r.stdout, r.exit_code) == ("ok", "cba\n", 0)
    assert r.stderr == "warn\n" and r.wall_s > 0
    sandbox._DEFAULT.close()


def test_runtime_error_traceback_names_solution_py_only(box):
    r = run1(box, "def f(x):\n    return 1 // x\n\nf(0)\n")
    assert r.verdict == "runtime_error" and r.exit_code == 1
    assert r.error == {
        "type": "ZeroDivisionError",
        "message": "integer division or modulo by zero",
        "line": 2,
        "func": "f",
        "source": "return 1 // x",
    }
    assert 'File "Solution.py", line 2, in f' in r.stderr
    assert "driver" not in r.stderr and "<string>" not in r.stderr and "/rlexp/" not in r.stderr


def test_syntax_error_is_a_runtime_error_on_every_test(box):
    results = box.run(Job("def f(:\n  pass", ["", ""]))
    assert [r.verdict for r in results] == ["runtime_error", "runtime_error"]
    assert results[0].error["type"] == "SyntaxError" and results[0].error["line"] == 1


def test_preamble_names_work_without_imports_and_builtins_win(box):
    # LiveCodeBench prepends `from collections import *` etc.; math's pow must not shadow pow(a, b, mod)
    r = run1(box, "print(deque([1, 2]).pop(), gcd(12, 18), heappop([3]), pow(3, 4, 5))")
    assert r.stdout == "2 6 3 1\n"


def test_a_program_finds_every_builtin_it_looks_up_and_fresh_ones_in_each_test(box):
    # a runner gives a program only the builtins its source names (`builtins_for`): names in strings, annotations
    # under `from __future__ import annotations`, and code it evaluates must still find theirs
    code = (
        "from __future__ import annotations\n"
        "import typing\n"
        "def f(x: List[int]) -> Optional[int]:\n"
        "    pass\n"
        "print(__builtins__['Counter']('aab')['a'], typing.get_type_hints(f)['x'])\n"
        "print(__builtins__.get('marker', 'fresh'))\n"
        "__builtins__['marker'] = 'left'\n"
    )
    assert [r.stdout for r in box.run(Job(code, ["", ""]))] == ["2 typing.List[int]\nfresh\n"] * 2
    assert run1(box, "print(eval(input()))", "gcd(4, 6) + len(deque([1]))").stdout == "3\n"


def test_a_program_gets_the_builtins_its_source_names():
    from rlexp.sandbox import driver

    full = {"print": print, "len": len, "deque": object(), "gcd": object(), "__build_class__": 1, "__import__": 2}
    names = lambda source: set.union(*driver.names_in(compile(source, "Solution.py", "exec")))  # noqa: E731
    got = driver.builtins_for(names("class A:\n    def f(self):\n        return [deque() for _ in 'len']\nprint()"), full)
    assert got.keys() == {"print", "deque", "len", "__build_class__", "__import__"}
    assert driver.builtins_for(names("exec(input())"), full) is full
    assert driver.builtins_for(names("import re\nre.compile('a')"), full) is full  # an attribute counts too


@pytest.mark.parametrize("mode", ["stdin", "functional"])
def test_streams_a_program_closed_or_detached_are_new_in_the_next_test(box, mode):
    # sys.stdin, sys.stdout and sys.stderr serve from test to test where they can: what one test did to them, or left
    # unread in them, never reaches the next, where each of these tests passes as in a fresh process
    body = (
        "print(k, file=sys.stderr)\n"
        "if k % 3 == 0:\n"
        "    sys.stdout = io.TextIOWrapper(sys.stdout.detach(), encoding='utf-8')\n"
        "    sys.stdin.detach()\n"
        "elif k % 3 == 1:\n"
        "    sys.stdin.close()\n"
        "    sys.stderr.close()\n"
        "print(k, flush=True)\n"
    )
    inputs = [str(k) for k in range(6)]
    if mode == "stdin":
        job = Job("import io, sys\nk = int(input())\n" + body, [f"{k}\nleft unread\n" for k in inputs])
    else:
        read_nothing = "try:\n    input()\nexcept EOFError:\n    pass\n"
        method = "".join(f"        {line}\n" for line in (read_nothing + body + "return k").splitlines())
        job = Job("import io, sys\nclass Solution:\n    def f(self, k):\n" + method, inputs, mode="functional", fn_name="f")
    results = box.run(job)
    assert [(r.verdict, r.stdout, r.stderr) for r in results] == [("ok", f"{k}\n", f"{k}\n") for k in inputs]
    if mode == "functional":
        assert [r.value for r in results] == inputs


def test_each_test_gets_only_its_own_input(box):
    code = "import sys, gc\ndata = sys.stdin.read()\nprint(repr(data), sum('SECOND' in str(o) for o in gc.get_objects() if isinstance(o, str)))"
    first, second = box.run(Job(code, ["FIRST\n", "SECOND\n"]))
    assert first.stdout == "'FIRST\\n' 0\n"
    assert second.stdout.startswith("'SECOND\\n'")


def test_functional_mode_returns_json_values(box):
    code = (
        "class Solution:\n"
        "    def f(self, a, b):\n"
        "        return (a + b, [a])\n"
        "    def g(self, a, b):\n"
        "        return {a, b}\n"
        "    def h(self, a, b):\n"
        "        return input()\n"
        "    def stdin_kind(self, a, b):\n"
        "        import os, stat\n"
        "        return [stat.S_ISFIFO(os.fstat(0).st_mode), os.read(0, 10).decode()]\n"
    )
    job = lambda fn: Job(code, ["1\n2", "[1]\n[2]"], mode="functional", fn_name=fn)
    r1, r2 = box.run(job("f"))
    assert (r1.value, r2.value) == ("[3, [1]]", "[[1, 2], [[1]]]")
    unencodable = box.run(job("g"))[0]
    assert unencodable.verdict == "ok" and unencodable.value is None and "set" in unencodable.unencodable
    eof = box.run(job("h"))[0]
    assert eof.verdict == "runtime_error" and eof.error["type"] == "EOFError"
    # fd 0 is an empty pipe, at its end (code.md section 8), in every test of the job
    assert [r.value for r in box.run(job("stdin_kind"))] == ['[true, ""]'] * 2


def test_functional_state_does_not_leak_between_tests(box):
    code = "class Solution:\n    seen = []\n    def f(self, x):\n        self.seen.append(x)\n        return len(self.seen)"
    assert [r.value for r in box.run(Job(code, ["1", "2", "3"], mode="functional", fn_name="f"))] == ["1", "1", "1"]


def test_spoofed_eq_never_crosses_the_boundary(box):
    code = "class Any:\n    def __eq__(self, o): return True\nclass Solution:\n    def f(self, x):\n        return Any()"
    r = box.run(Job(code, ["1"], mode="functional", fn_name="f"))[0]
    assert r.value is None and "Any" in r.unencodable


def test_a_jobs_tests_share_a_process_but_each_runs_the_program_afresh(box):
    # LiveCodeBench's way: the program's own module state is new for each test, what it imported stays imported
    code = (
        "import os, sys\n"
        "counter = globals().get('counter', 0) + 1\n"
        "sys.runs = getattr(sys, 'runs', 0) + 1\n"
        "print(counter, sys.runs, os.getpid())\n"
    )
    lines = [r.stdout.split() for r in box.run(Job(code, ["", "", ""]))]
    assert [line[0] for line in lines] == ["1", "1", "1"]
    pids = {line[2] for line in lines}
    if box.fresh_process_per_test:
        assert [line[1] for line in lines] == ["1", "1", "1"] and len(pids) == 3
    else:
        assert [line[1] for line in lines] == ["1", "2", "3"] and len(pids) == 1


@pytest.mark.parametrize(
    "leaves",
    [
        "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()",
        "import os, time\nif os.fork() == 0:\n    time.sleep(30)\n    os._exit(0)",
        "import os, time\nif os.fork() == 0:\n    if os.fork() == 0:\n        time.sleep(30)\n    os._exit(0)",
        "import sys\nsys.kept = open('left-open', 'w')\nsys.kept.write('x')",
        "import os\nos._exit(0)",
        "import signal\nsignal.setitimer(signal.ITIMER_REAL, 0.3)",
    ],
    ids=["a thread", "a child", "an orphan", "an open file", "its own exit", "a timer"],
)
def test_what_a_test_leaves_in_its_process_never_reaches_the_next(leaves):
    # a process that is no longer as the runner was made (a thread, a process, an open file more) is replaced
    box = Sandbox(level=LEVELS[0], workers=1)
    try:
        code = (
            "import os, sys, time\n"
            "if input() == 'leave':\n" + "".join(f"    {line}\n" for line in leaves.splitlines()) + "else:\n"
            "    time.sleep(0.5)\n"  # a timer left running would fire now
            "    print(os.path.exists('left-open'), getattr(sys, 'kept', None) is None)\n"
        )
        first, second = box.run(Job(code, ["leave", "look"], time_limit=10.0))
        assert first.verdict == "ok", first
        assert (second.verdict, second.stdout) == ("ok", "False True\n"), second
    finally:
        box.close()


def test_before_linux_6_2_the_runners_file_descriptors_are_listed(monkeypatch):
    # there /proc/PID/fd has no size (the number of open file descriptors that `Runner.fit` compares)
    if not LEVELS:
        pytest.skip("no isolation level is available here")
    old_kernel = sandbox.DRIVER_SOURCE.replace("count = os.fstat(self.fd_dir).st_size", "count = 0")
    assert old_kernel != sandbox.DRIVER_SOURCE
    monkeypatch.setattr(sandbox, "DRIVER_SOURCE", old_kernel)
    test_what_a_test_leaves_in_its_process_never_reaches_the_next("import sys\nsys.kept = open('left-open', 'w')")


def test_a_runner_the_program_broke_ends_the_test_with_a_verdict_and_the_next_runs(box):
    code = (
        "import os\n"
        "if input() == 'break':\n"
        "    del os.dup2\n"  # the harness in this process needs it after the program
        "print('ran')\n"
    )
    first, second = box.run(Job(code, ["break", "again"]))
    assert first.verdict in ("ok", "runtime_error") and first.stdout == "ran\n"
    assert (second.verdict, second.stdout) == ("ok", "ran\n")


# -- hostile programs (code.md section 8) ------------------------------------------------------------------------


def test_infinite_loop_and_sleep_time_out(box):
    for code in ("while True: pass", "import time; time.sleep(10**6)"):
        assert run1(box, code).verdict == "timeout"  # these end only by being killed


def test_signal_tampering_is_still_killed_on_time(box):
    code = (
        "import signal\n"
        "for s in (signal.SIGXCPU, signal.SIGTERM, signal.SIGALRM): signal.signal(s, signal.SIG_IGN)\n"
        "signal.alarm(0); signal.setitimer(signal.ITIMER_REAL, 0)\n"
        "while True: pass\n"
    )
    assert run1(box, code).verdict == "timeout"  # it ends only by being killed


def _processes_of(box):
    """Live processes running as the users of `box`'s sandboxes (root only: each sandbox process runs its programs
    as a user of its own); zombies are dead. Waits up to 5 s for processes that are being killed."""
    uids = {worker.uid for worker in box._by_slot.values()}
    for _ in range(50):
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines())
            except (OSError, ValueError):
                continue
            if int(status["Uid"].split()[0]) in uids and status["State"].split()[0] != "Z":
                found.append(pid)
        if not found:
            break
        time.sleep(0.1)
    return found


# what runs as this program's user, but the program itself, the driver (its parent) and the supervisor (in the
# driver's process group); at the namespace levels: what runs in the sandbox's PID namespace
SURVIVORS = (
    "import os\n"
    "me, driver = os.getpid(), os.getppid()\n"
    "group = lambda pid: int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[2])\n"
    "harness = group(driver)\n"
    "found = []\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n"
    "        status = dict(line.split(':', 1) for line in open(f'/proc/{pid}/status').read().splitlines())\n"
    "        in_harness = group(pid) == harness\n"
    "    except (OSError, ValueError):\n"
    "        continue\n"
    "    if int(pid) not in (me, driver) and not in_harness and int(status['Uid'].split()[0]) == os.getuid() \\\n"
    "            and status['State'].split()[0] != 'Z':\n"
    "        found.append(status['Name'].strip())\n"
    "print(found)\n"
)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    "code",
    [
        "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass",
        "import threading, time\nwhile True: threading.Thread(target=time.sleep, args=(100,)).start()",
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(100)\nprint('parent done')",
    ],
    ids=["fork-bomb", "thread-bomb", "setsid-daemon"],
)
def test_process_bombs_end_with_no_survivors(level, code):
    if not ROOT and level == "rlimit-only":
        pytest.skip("at rlimit-only, without a user of its own, a fork bomb competes with this user's processes")
    box = Sandbox(level=level, workers=1)
    try:
        r = run1(box, code)
        assert r.verdict in ("timeout", "runtime_error", "ok")
        # the next program, in the same sandbox, runs normally and finds nothing the bomb started
        assert run1(box, SURVIVORS).stdout == "[]\n"
    finally:
        box.close()
    if ROOT:
        assert _processes_of(box) == []  # and nothing at all is left once the sandbox is closed


@pytest.mark.parametrize("code", ["x = bytearray(10**10)", "x = [0] * 10**10"])
def test_memory_bombs_are_memory_errors(box, code):
    r = run1(box, code, time_limit=3.0)
    assert r.verdict == "runtime_error" and r.error["type"] == "MemoryError"


@pytest.mark.parametrize(
    "code",
    [
        "while True: print('y' * 20)",
        "import sys\nwhile True: sys.stdout.write('z' * 65536)",
        "print('x' * 10**9)",
    ],
    ids=["infinite-print", "one-huge-line", "one-gigabyte-print"],
)
def test_output_floods_are_cut_at_the_cap_and_never_reach_memory(box, code):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = run1(box, code, time_limit=3.0)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert r.verdict in ("output_limit", "timeout", "runtime_error")
    assert len(r.stdout) <= box.out_cap and grown_mib < 100


def test_writes_outside_the_workdir(box, tmp_path):
    tag = uuid.uuid4().hex
    targets = [f"/tmp/sbx-hostile-{tag}", f"/dev/shm/sbx-hostile-{tag}", f"/var/tmp/sbx-hostile-{tag}", str(tmp_path / "outside")]
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None)\n"
        "for mounted in (b'/tmp', b'/dev/shm', b'/var/tmp', b'/'):\n"  # try to undo the sandbox's mounts first
        "    libc.umount2(mounted, 2)\n"
        f"for path in {targets!r} + [os.path.join(os.getcwd(), '..', 'up-{tag}')]:\n"
        "    try:\n"
        "        with open(path, 'w') as f: f.write('x' * (2 << 20))\n"
        "    except OSError:\n"
        "        pass\n"
        "print(os.getcwd())\n"
    )
    r = run1(box, code)
    workdir = r.stdout.strip()
    written = [p for p in targets + [f"/tmp/up-{tag}"] if os.path.exists(p)]
    try:
        assert r.verdict in ("ok", "runtime_error") and workdir
        box.close()
        assert not os.path.exists(workdir)  # the private working directory goes with its sandbox
        for path in written:  # where a lower level cannot stop the write, RLIMIT_FSIZE bounds it
            assert os.path.getsize(path) <= 1 << 20
        if box.level in ("bwrap", "namespaces"):
            assert written == []
        elif ROOT:  # programs run as an unprivileged slot user: root's directories are out of reach
            assert str(tmp_path / "outside") not in written
    finally:
        for path in written:
            os.remove(path)


def test_no_network(box):
    needs(box, "namespaces")
    for code in (
        "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)",
        "import socket\nsocket.getaddrinfo('example.com', 80)",
        "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)",
    ):
        r = run1(box, code, time_limit=3.0)
        assert r.verdict == "runtime_error", code


def test_killing_the_parent_or_everything_leaves_the_harness_alive(box):
    if not ROOT and box.level == "rlimit-only":
        pytest.skip("at rlimit-only a program runs as this user: os.kill(-1) would kill the test runner itself")
    for code in (
        "import os\nos.kill(os.getppid(), 9)\nprint('alive')",
        "import os\nos.kill(-1, 9)\nprint('alive')",
        "import os\nos.killpg(0, 9)",
    ):
        r = run1(box, code)
        assert r.verdict in ("ok", "runtime_error"), code
    assert run1(box, "print(8)").stdout == "8\n"
    # everything it may signal includes the process that keeps its clock: killing that is the program's runtime
    # error, and the next job gets a new sandbox
    r = run1(box, "import os\nos.kill(-1, 9)\nprint('alive')")
    assert r.verdict == "runtime_error" and r.error["message"] == "the program killed its test runner"
    assert run1(box, "print(8)").stdout == "8\n"


def test_the_driver_ignores_every_signal_a_program_can_send():
    if "namespaces" not in LEVELS:
        pytest.skip("needs a PID namespace, whose process 1 is the driver")
    code = (
        "import os, signal\n"
        "for sig in sorted(signal.valid_signals()):\n"
        "    try: os.kill(1, sig)\n"
        "    except OSError: pass\n"
        "print('alive')\n"
    )
    for level in [lv for lv in LEVELS if lv != "rlimit-only"]:
        box = Sandbox(level=level, workers=1)
        try:
            assert [r.stdout for r in box.run(Job(code, ["", ""]))] == ["alive\n", "alive\n"]
            driver = box._by_slot[0].proc.pid
            assert box.run(Job("print(9)", [""]))[0].stdout == "9\n"
            assert box._by_slot[0].proc.pid == driver, level  # the same sandbox process: nothing killed it
        finally:
            box.close()


def test_secrets_are_not_readable(box, tmp_path, monkeypatch):
    if not ROOT and box.level == "rlimit-only":
        pytest.skip("without namespaces, a program running as this user can read this user's files")
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    for name in ("HF_TOKEN", "WANDB_API_KEY", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, secret)
    netrc = tmp_path / ".netrc"
    netrc.write_text(f"machine api.wandb.ai login user password {secret}\n")
    code = (
        "import os, glob\n"
        "found = [k for k, v in os.environ.items() if " + repr(secret) + " in v]\n"
        "paths = ['/proc/self/environ', '/proc/1/environ', f'/proc/{os.getppid()}/environ', "
        f"{str(netrc)!r}, {os.path.expanduser('~/.netrc')!r}, os.path.expanduser('~/.netrc'), '/root/.netrc', "
        "'/root/.cache/huggingface/token']\n"
        "for path in paths + glob.glob('/proc/*/environ'):\n"
        "    try:\n"
        "        if " + repr(secret.encode()) + " in open(path, 'rb').read(): found.append(path)\n"
        "    except OSError:\n"
        "        pass\n"
        "print(found)\n"
    )
    r = run1(box, code)
    assert r.verdict == "ok" and r.stdout == "[]\n"


def test_deep_recursion_ends_with_a_verdict(box):
    r = run1(box, "import sys\nsys.setrecursionlimit(10**9)\ndef f(n): return f(n + 1) + 1\nf(0)", time_limit=2.0)
    assert r.verdict in ("runtime_error", "timeout")


def test_huge_integer_printing_hits_the_digit_limit(box):
    r = run1(box, "print(10**100000)")
    assert r.verdict == "runtime_error" and "50000" in r.error["message"]


def test_reading_past_eof_and_binary_output(box):
    assert run1(box, "input(); input()", stdin="one line\n").error["type"] == "EOFError"
    r = run1(box, "import sys\nsys.stdout.buffer.write(bytes(range(256)))")
    assert r.verdict == "ok" and "\ufffd" in r.stdout and r.stdout.startswith("\x00\x01")


def test_exits(box):
    assert run1(box, "import sys\nsys.exit(0)\nprint('x')").stdout == ""
    assert run1(box, "import os\nos._exit(0)").verdict == "ok"
    r = run1(box, "print(42)\nexit()")
    assert (r.verdict, r.stdout) == ("ok", "42\n")
    # the driver runs without `site`, which would have made them: they must still exist
    assert run1(box, "quit(5)").exit_code == 5
    assert run1(box, "exit('bye')").verdict == "runtime_error"
    r = run1(box, "import sys\nsys.exit(3)")
    assert r.verdict == "runtime_error" and r.exit_code == 3


# -- batches ---------------------------------------------------------------------------------------------------


def test_stop_at_first_failure_skips_the_rest(box):
    results = box.run(Job("x = int(input())\nprint(10 // x)", ["5", "0", "2"], stop_at_first_failure=True))
    assert [r.verdict for r in results] == ["ok", "runtime_error", "not_run"]


def test_tests_queued_behind_a_failure_are_not_judged_and_cannot_stall_the_job(box):
    # tests wait queued behind the running one; after the first failure (here a wrong answer, which only the
    # caller can see) they are not judged, and a slow one is cut short
    # (judged, the queued tests would take 3 x 60 s; the bound leaves a loaded machine half a minute)
    code = "if input() == '0':\n    print('wrong')\nelse:\n    import time\n    time.sleep(1000)"
    start = time.monotonic()
    results = box.run(
        Job(code, ["0", "1", "2", "3"], time_limit=60.0, stop_at_first_failure=True, check=lambda i, r: r.stdout == "right\n")
    )
    assert time.monotonic() - start < 30
    assert [r.verdict for r in results] == ["ok", "not_run", "not_run", "not_run"] and results[0].stdout == "wrong\n"
    assert run1(box, "print(5)").stdout == "5\n"


def test_a_job_that_runs_every_test_gets_every_record_in_order(box):
    # without stop_at_first_failure, tests go ahead as far as the pipe takes them and records wait while the next
    # test is there to run: many tests, far more input than a pipe holds, failures, and a test that runs long
    code = (
        "import sys, time\n"
        "s = sys.stdin.read()\n"
        "if s.startswith('slow'):\n"
        "    time.sleep(1.0)\n"
        "print(len(s) // (0 if s.startswith('fail') else 1))"
    )
    inputs = [("fail" if i % 7 == 3 else "slow" if i == 20 else "x") + "y" * (i * 997) for i in range(40)]
    results = box.run(Job(code, inputs, time_limit=5.0))
    expected = [("runtime_error", "") if t.startswith("fail") else ("ok", f"{len(t)}\n") for t in inputs]
    assert [(r.verdict, r.stdout) for r in results] == expected
    assert results[20].wall_s >= 1.0


@pytest.mark.parametrize("level", LEVELS)
def test_batch_deadline_bounds_a_reward_call(level):
    box = Sandbox(level=level, workers=2)
    # without the deadline the batch would take 6 jobs x 2 tests x 60 s over 2 workers; the bound leaves a
    # loaded machine half a minute
    jobs = [Job("import time; time.sleep(1000)", ["", ""], time_limit=60.0) for _ in range(6)]
    start = time.monotonic()
    results = box.run_many(jobs, timeout_s=1.5)
    assert time.monotonic() - start < 30
    # the sandboxes still running at the deadline were killed, not orphaned
    assert all(worker.proc is None for worker in box._by_slot.values())
    if ROOT:
        assert _processes_of(box) == []
    # the batch's deadline is not the programs' fault: their tests count as not run, not as timed out
    assert {r.verdict for rs in results for r in rs} == {"not_run"}
    box.close()


def test_a_workers_processes_run_on_one_cpu_and_avoid_the_other_workers():
    box = Sandbox(workers=1)
    job = Job("import os\nprint(sorted(os.sched_getaffinity(0)))", [""])
    first = ast.literal_eval(box.run(job)[0].stdout)
    assert len(first) == 1
    others = sorted(os.sched_getaffinity(0) - set(first))
    if others:  # a CPU another worker runs on is left to it
        moved = ast.literal_eval(box._by_slot[0].run(job, None, avoid_cpus=tuple(first))[0].stdout)
        assert len(moved) == 1 and moved[0] in others
    box.close()


def test_parallel_jobs_keep_their_own_results():
    box = Sandbox(workers=2)
    jobs = [Job(f"print(int(input()) * {k})", [str(i) for i in range(5)]) for k in range(8)]
    results = box.run_many(jobs)
    assert [[r.stdout for r in rs] for rs in results] == [[f"{i * k}\n" for i in range(5)] for k in range(8)]


# -- levels ------------------------------------------------------------------------------------------------------


def test_probe_falls_back_and_says_why(monkeypatch, caplog):
    if "namespaces" not in LEVELS:
        pytest.skip("user namespaces are not available here")
    real_which = sandbox.shutil.which
    monkeypatch.setattr(sandbox.shutil, "which", lambda tool: None if tool == "bwrap" else real_which(tool))
    with caplog.at_level("WARNING"):
        launch = sandbox.probe.__wrapped__("auto")
    assert launch.level == "namespaces"
    assert "bwrap unavailable: bwrap not installed" in caplog.text


def test_asking_for_an_unavailable_level_is_one_clear_error(monkeypatch):
    real_which = sandbox.shutil.which
    monkeypatch.setattr(sandbox.shutil, "which", lambda tool: None if tool == "bwrap" else real_which(tool))
    with pytest.raises(SandboxUnavailable, match="bwrap unavailable: bwrap not installed"):
        sandbox.probe.__wrapped__("bwrap")


def test_require_isolation_refuses_rlimit_only():
    if "rlimit-only" not in LEVELS:
        pytest.skip("rlimit-only does not run here")
    with pytest.raises(SandboxUnavailable, match="require_isolation"):
        Sandbox(level="rlimit-only", require_isolation=True).run(Job("print(1)", [""]))


# -- what a program can forge or break (found in review) ----------------------------------------------------------


@pytest.mark.parametrize(
    "report",
    [
        '{"value": 5}',
        '{"error": "x"}',
        '{"error": ' + "[" * 3000 + "]" * 3000 + "}",
        '{"value": "[1]", "error": {"line": "NaN", "type": [1]}}',
        "not json",
    ],
)
def test_a_forged_report_is_reduced_to_checked_fields(box, report):
    code = (
        "import os\n"
        "for fd in range(3, 64):\n"
        "    try: os.write(fd, " + repr(report.encode()) + ")\n"
        "    except OSError: pass\n"
        "os._exit(0)\n"
    )
    r = box.run(Job(code, ["1"], mode="functional", fn_name="f"))[0]
    assert r.value is None or isinstance(r.value, str)
    if r.error is not None:
        assert isinstance(r.error["type"], str) and (r.error["line"] is None or isinstance(r.error["line"], int))


def test_a_large_return_value_is_not_cut(box):
    code = "class Solution:\n    def f(self, n):\n        return list(range(n))"
    r = box.run(Job(code, ["20000"], mode="functional", fn_name="f"))[0]
    assert r.verdict == "ok" and len(r.value) > 100_000 and r.value.startswith("[0, 1, 2")


def test_degenerate_code_is_a_compile_error_not_a_broken_sandbox(box):
    for code in ("x = " + "-" * 100000 + "1", "a" + ".b" * 200000, "x = " + "1+" * 300000 + "1"):
        r = run1(box, code)
        assert r.verdict == "runtime_error" and r.error["type"] in ("MemoryError", "RecursionError", "SyntaxError")


def test_closing_its_pipes_does_not_stop_the_clock(box):
    code = "import os, time\nfor fd in range(64):\n    try: os.close(fd)\n    except OSError: pass\ntime.sleep(100)"
    first, second = box.run(Job(code, ["", ""], time_limit=1.0))
    assert first.verdict == "timeout" and second.verdict == "timeout"  # they end only by being killed


def test_scratch_space_is_bounded_and_the_host_work_dir_stays_empty(box):
    needs(box, "namespaces")
    code = (
        "import os\n"
        "written = 0\n"
        "try:\n"
        "    for i in range(1000):\n"
        "        with open(f'f{i}', 'wb') as f: f.write(b'x' * (1 << 20))\n"
        "        written += 1\n"
        "except OSError as e:\n"
        "    print(written, e.errno)\n"
    )
    r = run1(box, code, time_limit=5.0)
    written, errno = map(int, r.stdout.split())
    assert written <= 64 and errno == 28  # ENOSPC: the work dir is a 64 MiB tmpfs, not the host's disk


def test_a_live_workers_uid_is_never_given_to_another():
    # as root, each worker's programs run as a uid of its own: one taken while another worker still holds it would
    # let one sandbox's programs signal the other's (and leftover checks would see the other's processes)
    held = sandbox.sandbox_uid()
    try:
        for _ in range(3 * sandbox.UIDS_PER_PROCESS):
            uid = sandbox.sandbox_uid()
            assert uid != held
            sandbox._uids_held.discard(uid)
    finally:
        sandbox._uids_held.discard(held)


def test_a_sandbox_pickles_after_use():
    import pickle

    box = Sandbox(workers=1)
    box.run(Job("print(1)", [""]))
    clone = pickle.loads(pickle.dumps(box))
    assert clone.run(Job("print(2)", [""]))[0].stdout == "2\n"


# -- what programs see of the trainer, and what carries over from test to test ------------------------------------


def test_programs_import_the_trainers_packages_read_only(box):
    # LiveCodeBench runs programs in its own interpreter, where numpy imports; so must it here, at every level and
    # also as root, where programs run as a user who cannot enter /root (where a venv or pyenv may live)
    r = run1(box, "import numpy\nprint(numpy.array([1, 2, 3]).sum())", time_limit=10.0)
    assert (r.verdict, r.stdout) == ("ok", "6\n")
    if ROOT or box.level != "rlimit-only":  # else the program runs as this user, who owns the venv
        plant = (
            "import numpy, os\n"
            "try:\n"
            "    open(os.path.join(os.path.dirname(numpy.__file__), 'planted.py'), 'w')\n"
            "    print('written')\n"
            "except OSError:\n"
            "    print('refused')\n"
        )
        assert run1(box, plant, time_limit=10.0).stdout == "refused\n"


def test_heavy_packages_a_program_imports_are_imported_before_its_tests(box):
    # once per job, as LiveCodeBench imports them once for all of a program's tests; not when only a string names one
    look = "import sys\nprint('numpy' in sys.modules)\n"
    imports = box.run(Job(look + "from numpy import array", ["", ""], time_limit=10.0))
    assert [r.stdout for r in imports] == ["True\n", "True\n"]
    assert run1(box, look, time_limit=10.0).stdout == "False\n"


def test_each_test_starts_with_empty_writable_space(box):
    places = ["'.'", "os.environ['HOME']", "tempfile.gettempdir()"]
    if box.level != "rlimit-only":  # there, /tmp and the rest are the host's, shared
        places += ["'/tmp'", "'/dev/shm'", "'/var/tmp'"]
    code = (
        "import os, tempfile\n"
        f"paths = [os.path.join(place, 'left-by-an-earlier-test') for place in [{', '.join(places)}]]\n"
        "seen = [path for path in paths if os.path.exists(path)]\n"
        "for path in paths:\n"
        "    try: open(path, 'w').write('x')\n"
        "    except OSError: pass\n"
        "print(seen)\n"
    )
    first, second = box.run(Job(code, ["", ""]))
    assert (first.stdout, second.stdout) == ("[]\n", "[]\n")


@pytest.mark.parametrize("level", LEVELS)
def test_what_a_runner_writes_after_its_last_test_is_gone_for_the_next_job(level):
    # the program takes over its runner's sending of reports: a moment after its report, the runner writes a file,
    # while the parent (slow to judge the record here) has not yet ended the job
    places = ["'.'"] + (["'/tmp'"] if level != "rlimit-only" else [])
    late = (
        "import os, sys, time\n"
        "driver = sys._getframe(1).f_globals\n"
        "send = driver['send_frame']\n"
        "def send_then_write(*args, **kwargs):\n"
        "    send(*args, **kwargs)\n"
        "    time.sleep(0.1)\n"
        f"    for place in [{', '.join(places)}]:\n"
        "        open(os.path.join(place, 'written-late'), 'w').write('x')\n"
        "driver['send_frame'] = send_then_write\n"
    )
    look = f"import os\nprint([p for p in [{', '.join(places)}] if os.path.exists(os.path.join(p, 'written-late'))])"
    slow_judge = lambda i, result: time.sleep(0.3) or result.ok  # noqa: E731
    box = Sandbox(level=level, workers=1)
    try:
        assert box.run(Job(late, [""], stop_at_first_failure=True, check=slow_judge))[0].verdict == "ok"
        assert box.run(Job(look, [""]))[0].stdout == "[]\n"
    finally:
        box.close()


@pytest.mark.parametrize("level", [level for level in LEVELS if level != "rlimit-only"])
def test_what_a_test_makes_beside_the_interpreters_directories_is_gone_in_the_next(level, monkeypatch):
    # an interpreter under /tmp (a clone there, with its venv) is shown read-only inside the sandbox's own /tmp,
    # below directories the sandbox makes on the way, which programs can write to
    place = Path(tempfile.mkdtemp(dir="/tmp"))
    kept = place / "venv" / "lib"
    kept.mkdir(parents=True)
    roots, import_path = sandbox._interpreter_paths()
    monkeypatch.setattr(sandbox, "_interpreter_paths", lambda: (roots + (str(kept),), import_path))
    sandbox.probe.cache_clear()
    box = Sandbox(level=level, workers=1)
    try:
        code = (
            "import os\n"
            f"place = {str(place)!r}\n"
            "if input() == 'make':\n"
            "    open(os.path.join(place, 'left'), 'w').write('x')\n"
            "    os.mkdir(os.path.join(place, 'venv', 'also'))\n"
            "print(sorted(os.listdir(place)), sorted(os.listdir(os.path.join(place, 'venv'))))\n"
        )
        made, seen = box.run(Job(code, ["make", "look"]))
        assert made.stdout == "['left', 'venv'] ['also', 'lib']\n", made
        assert seen.stdout == "['venv'] ['lib']\n", seen
    finally:
        box.close()
        monkeypatch.undo()
        sandbox.probe.cache_clear()
        shutil.rmtree(place)


def test_what_a_hostile_test_leaves_is_gone_in_the_next(box):
    mess = (  # deeper than any path may be long, unreadable, unwritable, links out, a FIFO, the directories locked
        "import os\n"
        "home = os.getcwd()\n"
        "for _ in range(1500):\n"
        "    os.mkdir('d')\n"
        "    os.chdir('d')\n"
        "open('f', 'w').write('x')\n"
        "os.chdir(home)\n"
        "os.mkdir('locked')\n"
        "open('locked/f', 'w').write('x')\n"
        "os.chmod('locked/f', 0)\n"
        "os.chmod('locked', 0)\n"
        "os.symlink('/usr', 'link')\n"
        "os.mkfifo('fifo')\n"
        "os.chmod(home, 0)\n"
    )
    look = "import os\nprint(sorted(os.listdir('.')))"
    if box.level != "rlimit-only":  # /tmp too: the sandbox's own (at rlimit-only, the host's)
        mess += "open('/tmp/left', 'w').write('x')\ntry:\n    os.chmod('/tmp', 0)\nexcept OSError:\n    pass\n"
        look += "\nprint(sorted(set(os.listdir('/tmp')) - {os.path.basename(os.getcwd())}))"
    code = (
        "if input() == 'mess':\n"
        + "".join(f"    {line}\n" for line in mess.splitlines())
        + "else:\n"
        + "".join(f"    {line}\n" for line in look.splitlines())
    )
    first, second = box.run(Job(code, ["mess", "look"], time_limit=10.0))
    assert first.verdict == "ok", first.stderr
    assert second.verdict == "ok", second.stderr
    lines = second.stdout.splitlines()
    assert lines[0] == "[]", "the working directory was not emptied"
    if box.level != "rlimit-only":
        # the trainer's interpreter is mounted read-only where it lives: under /tmp when the clone is there
        trainer = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.executable)}
        mounted = {str(p.relative_to("/tmp").parts[0]) for p in trainer if p.is_relative_to("/tmp")}
        assert set(ast.literal_eval(lines[1])) <= mounted, "the sandbox's /tmp was not emptied"


def test_what_a_program_sets_on_the_scratch_directories_is_gone_in_the_next_test_and_job(box):
    # the scratch roots and the working directory outlive the emptying: their extended attributes, times and modes
    # could carry data from one test, or job, to the next
    needs(box, "namespaces")
    code = (
        "import os, tempfile\n"
        "places = ['/tmp', os.getcwd()]\n"
        "if input() == 'set':\n"
        "    for place in places:\n"
        "        try: os.setxattr(place, 'user.note', b'left')\n"
        "        except OSError: pass\n"
        "        os.utime(place, (12345, 12345))\n"
        "    os.chmod('/tmp', 0o700)\n"
        "else:\n"
        "    print([(os.listxattr(p), os.stat(p).st_mtime == 12345) for p in places], oct(os.stat('/tmp').st_mode))\n"
    )
    next_test = box.run(Job(code, ["set", "look"]))[1]
    box.run(Job(code, ["set"]))
    next_job = box.run(Job(code, ["look"]))[0]
    for seen in (next_test, next_job):
        assert seen.verdict == "ok" and seen.stdout.startswith("[([], False), ([], False)]"), seen
        assert not seen.stdout.strip().endswith("700"), seen


@pytest.mark.parametrize(
    "get",
    ["libc.shmget(0x5EED, 4096, 0o600{})", "libc.msgget(0x5EED, 0o600{})", "libc.semget(0x5EED, 1, 0o600{})"],
    ids=["shared memory", "a message queue", "a semaphore"],
)
def test_ipc_objects_of_one_test_are_gone_in_the_next(box, get):
    needs(box, "namespaces")
    code = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        f"existed = {get.format('')} != -1\n"
        f"{get.format(' | 0o1000')}\n"  # IPC_CREAT
        "print(existed)\n"
    )
    assert [r.stdout for r in box.run(Job(code, ["", ""]))] == ["False\n", "False\n"]


def test_programs_cannot_make_posix_message_queues(box):
    # so no test can leave data in one for the next
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.mq_open(b'/rlexp', os.O_RDWR | os.O_CREAT, 0o600, None))\n"
    )
    assert run1(box, code).stdout == "-1\n"


CANARY_SCAN = (  # does the memory of these processes hold a canary? (the pattern itself does not match itself)
    "import os, re\n"
    "pattern = re.compile(rb'rlexp-canary-[0-9a-f]{32}')\n"
    "found = False\n"
    "for pid in PIDS:\n"
    "    try:\n"
    "        maps = open(f'/proc/{pid}/maps').read().splitlines()\n"
    "    except OSError:\n"
    "        continue\n"
    "    for line in maps:\n"
    "        span, perms = line.split()[:2]\n"
    "        start, end = (int(x, 16) for x in span.split('-'))\n"
    "        if 'r' not in perms or end - start > 1 << 28:\n"
    "            continue\n"
    "        try:\n"
    "            with open(f'/proc/{pid}/mem', 'rb', buffering=0) as mem:\n"
    "                mem.seek(start)\n"
    "                found = found or bool(pattern.search(mem.read(end - start)))\n"
    "        except (OSError, ValueError, OverflowError):\n"
    "            pass\n"
    "print(found)\n"
)
OWN_MEMORY = CANARY_SCAN.replace("PIDS", "['self']")
EVERY_MEMORY = CANARY_SCAN.replace("PIDS", "[p for p in os.listdir('/proc') if p.isdigit()] + ['self']")


@pytest.mark.parametrize("level", LEVELS)
def test_a_job_finds_nothing_of_an_earlier_jobs_inputs_in_its_memory(level):
    # one sandbox process runs job after job; a job's runner is a fork of a driver that never read a job, and the
    # supervisor, which read them all, is not readable
    canary = f"rlexp-canary-{uuid.uuid4().hex}"
    box = Sandbox(level=level, workers=1)
    try:
        # the scan finds a canary where there is one: its own input
        assert box.run(Job("data = input()\n" + OWN_MEMORY, [canary], time_limit=10.0))[0].stdout == "True\n"
        driver = box._by_slot[0].proc.pid
        assert box.run(Job(OWN_MEMORY, [""], time_limit=10.0))[0].stdout == "False\n"
        if ROOT or level != "rlimit-only":  # else every process of this user is the program's to read
            assert box.run(Job(EVERY_MEMORY, [""], time_limit=10.0))[0].stdout == "False\n"
        assert box._by_slot[0].proc.pid == driver  # the same sandbox process ran all the jobs
    finally:
        box.close()


def test_functional_return_values_cross_as_the_numbers_they_equal(box):
    code = (
        "from fractions import Fraction\n"
        "from decimal import Decimal\n"
        "class Solution:\n"
        "    def f(self, k):\n"
        "        return [Fraction(1, 2), Fraction(6, 3), Decimal('2.50'), Decimal('3.000'), Decimal('-0'), 10**5000,\n"
        "                Fraction(1, 3), Decimal('0.1'), {1: 2}][k]\n"
    )
    results = box.run(Job(code, [str(k) for k in range(9)], mode="functional", fn_name="f"))
    assert [r.value for r in results[:5]] == ["0.5", "2", "2.5", "3", "0"]
    assert results[5].value == "1" + "0" * 5000  # past Python's 4300-digit default, below LiveCodeBench's 50000
    # equal to no int and no float, so never to an expected answer (LiveCodeBench compares them with ==)
    for r in results[6:]:
        assert r.verdict == "ok" and r.value is None and "equals no" in r.unencodable


def test_without_file_system_isolation_only_its_own_working_directory_is_emptied(monkeypatch):
    # a kernel without mount_setattr (Linux < 5.12) leaves /tmp the host's: cleaning must not touch it
    if "namespaces" not in LEVELS:
        pytest.skip("user namespaces are not available here")
    old_kernel = sandbox.DRIVER_SOURCE.replace(
        "sys_mount_setattr, at_fdcwd, at_recursive = 442,", "sys_mount_setattr, at_fdcwd, at_recursive = 99999,"
    )
    assert old_kernel != sandbox.DRIVER_SOURCE
    monkeypatch.setattr(sandbox, "DRIVER_SOURCE", old_kernel)  # a system call this kernel does not know
    box = Sandbox(level="namespaces", workers=1)
    neighbour = Path(tempfile.gettempdir()) / f"rlexp-neighbour-{uuid.uuid4().hex}"
    try:
        box.run(Job("print(1)", [""]))  # starts the sandbox (as root: under a user of its own, which owns the file)
        neighbour.write_text("keep me")
        if ROOT:
            os.chown(neighbour, box._by_slot[0].uid, box._by_slot[0].uid)
        first, second = box.run(Job("import os\nprint(sorted(os.listdir('.')))\nopen('mine', 'w').write('x')", ["", ""]))
        assert (first.stdout, second.stdout) == ("[]\n", "[]\n")  # its own working directory is still emptied
        workdir = box._by_slot[0].host_dir
        assert workdir and os.path.isdir(workdir)
        assert neighbour.read_text() == "keep me"
    finally:
        box.close()
        neighbour.unlink(missing_ok=True)
    assert not os.path.exists(workdir)


def test_emptying_keeps_the_interpreters_directories(tmp_path):
    from rlexp.sandbox.driver import empty_directory

    keep = tmp_path / "venv" / "lib"
    keep.mkdir(parents=True)
    (keep / "numpy.py").write_text("")
    (tmp_path / "venv" / "junk").write_text("")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    empty_directory(str(tmp_path), keep=[str(keep)])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["venv", "venv/lib", "venv/lib/numpy.py"]
