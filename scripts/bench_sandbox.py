"""Test executions per second: rlexp.sandbox (every protection on) against two baselines, in the same run.

    python scripts/bench_sandbox.py            # or: make bench

The sandbox runs as configured by default (a job's tests in turn in one process), with the jobs stopping at their
first failure as LiveCode's all-or-nothing reward runs them (each record judged before more tests are sent), and,
for reference, with a process forked for each test (`fresh_process_per_test`). Each baseline gets the same number
of parallel workers:
- one-process, the way LiveCodeBench's harness grades: a pool of light worker processes; per program, the worker
  forks one process that runs all of the program's tests in-process, with no isolation: the code compiled once,
  each test run with sys.stdin and sys.stdout swapped for in-memory files under a signal.alarm time limit, the
  results sent back through a pipe;
- naive: `subprocess.run([sys.executable, file])`, a fresh interpreter per test.
All runners run the same programs on the same tests in each round, in turn, after one warm-up run each; each
ratio is taken per round, and the median is printed with every round's value. Programs:
- trivial: read one number, print its double (10 tests each);
- realistic: the reference solutions of rlexp's procedural LiveCodeBench-style problems on all their tests.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import io
import json
import math
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlexp import sandbox
from rlexp.sandbox import Job, Sandbox
from rlexp.sandbox.driver import PREAMBLE


def trivial_jobs(n_programs: int) -> list[Job]:
    return [Job(f"print(int(input()) * 2 + {k} - {k})", [f"{i}\n" for i in range(10)]) for k in range(n_programs)]


def realistic_jobs() -> list[Job]:
    from rlexp.envs import make  # heavy (datasets, torch): only in the process that needs it

    env = make("livecode")
    jobs = []
    for row in env.dataset("test"):
        tests, _ = env.tests_for(row)
        functional = row["testtype"] == "functional"
        jobs.append(
            Job(
                row["reference"],
                [t["input"] for t in tests],
                mode="functional" if functional else "stdin",
                fn_name=row["fn_name"] or None,
            )
        )
    return jobs


# -- one process per program, all tests in it (LiveCodeBench's way) ------------------------------------------------


class _TimeLimit(Exception):
    pass


def _on_alarm(signum, frame):
    raise _TimeLimit


def _run_all_tests_here(code: str, inputs: list[str], mode: str, fn_name, time_limit: float) -> int:
    """Run every test of one program in this process; the number of tests that answered something."""
    namespace: dict = {}
    exec(PREAMBLE, namespace)
    compiled = compile(code, "Solution.py", "exec")
    signal.signal(signal.SIGALRM, _on_alarm)
    answered = 0
    for test_input in inputs:
        sys.stdin = io.StringIO("" if mode == "functional" else test_input)
        sys.stdout = out = io.StringIO()
        signal.alarm(max(1, math.ceil(time_limit)))
        try:
            globals_ = dict(namespace, __name__="__main__")
            exec(compiled, globals_)
            if mode == "functional":
                args = [json.loads(line) for line in test_input.split("\n")]
                out.write(json.dumps(getattr(globals_["Solution"](), fn_name)(*args)))
        except SystemExit:
            pass
        except BaseException:  # noqa: BLE001 - the program's error is a verdict, not the harness's
            pass
        finally:
            signal.alarm(0)
            sys.stdout = sys.__stdout__
        answered += bool(out.getvalue())
    return answered


def grade_in_one_process(code: str, inputs: list[str], mode: str, fn_name, time_limit: float) -> int:
    """In a pool worker: fork one process for the program, run all its tests there, read back the count."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        answered = 0
        try:
            answered = _run_all_tests_here(code, inputs, mode, fn_name, time_limit)
        finally:
            os.write(write_end, str(answered).encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return int(data or 0)


def run_one_process(pool: concurrent.futures.Executor, jobs: list[Job]) -> int:
    futures = [pool.submit(grade_in_one_process, j.code, j.inputs, j.mode, j.fn_name, j.time_limit) for j in jobs]
    return sum(f.result() for f in futures)


# -- a fresh interpreter per test ----------------------------------------------------------------------------------


NAIVE_FUNCTIONAL_CALL = """
import json, sys
from typing import *
args = [json.loads(line) for line in sys.stdin.read().split("\\n")]
print(json.dumps(getattr(Solution(), {fn!r})(*args)))
"""


def run_naive(jobs: list[Job], workers: int) -> int:
    """One fresh interpreter per test; returns the number of tests that printed something."""
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, job in enumerate(jobs):
            path = Path(tmp) / f"p{i}.py"
            code = (
                job.code
                if job.mode == "stdin"
                else "from typing import *\n" + job.code + NAIVE_FUNCTIONAL_CALL.format(fn=job.fn_name)
            )
            path.write_text(code)
            files.append(path)

        def one(args):
            path, test_input = args
            done = subprocess.run([sys.executable, str(path)], input=test_input, capture_output=True, text=True, timeout=30)
            return bool(done.stdout)

        work = [(path, t) for path, job in zip(files, jobs) for t in job.inputs]
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            return sum(pool.map(one, work))


def run_sandboxed(box: Sandbox, jobs: list[Job]) -> int:
    return sum(bool(r.stdout or r.value) for results in box.run_many(jobs) for r in results)


def stopping_at_first_failure(jobs: list[Job]) -> list[Job]:
    """The jobs as LiveCode's all-or-nothing reward sends them: the parent judges each test before more are sent.
    Every test passes here, so all of them run; a record with output counts as passed."""
    passed = lambda i, result: bool(result.stdout or result.value)  # noqa: E731
    return [dataclasses.replace(j, stop_at_first_failure=True, check=passed) for j in jobs]


def measure(name: str, jobs: list[Job], box: Sandbox, fresh_box: Sandbox, pool, rounds: int) -> None:
    n_tests = sum(len(j.inputs) for j in jobs)
    stopping = stopping_at_first_failure(jobs)
    runners = {
        "sandbox": lambda: run_sandboxed(box, jobs),
        "sandbox-stop-at-first-failure": lambda: run_sandboxed(box, stopping),
        "process-per-test": lambda: run_sandboxed(fresh_box, jobs),
        "one-process": lambda: run_one_process(pool, jobs),
        "naive": lambda: run_naive(jobs, box.workers),
    }
    for runner in runners.values():  # warm-up: sandbox processes and pool workers started, files cached
        runner()
    rates: dict[str, list[float]] = {runner: [] for runner in runners}
    for _ in range(rounds):
        for runner, run in runners.items():
            start = time.perf_counter()
            answered = run()
            elapsed = time.perf_counter() - start
            if answered != n_tests:
                raise SystemExit(f"{runner} answered {answered} of {n_tests} tests: the benchmark is broken")
            rates[runner].append(n_tests / elapsed)
    line = f"{name:10s} {len(jobs):4d} programs {n_tests:5d} tests | " + " | ".join(
        f"{runner} {statistics.median(r):7.1f}/s" for runner, r in rates.items()
    )
    print(line)
    pairs = [("sandbox", "one-process"), ("sandbox-stop-at-first-failure", "one-process"), ("sandbox", "naive")]
    for runner, baseline in pairs + [("process-per-test", "one-process")]:
        ratios = [s / b for s, b in zip(rates[runner], rates[baseline])]
        print(
            f"{'':10s} {runner} / {baseline}: {statistics.median(ratios):5.2f}x (rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trivial-programs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=0, help="parallel workers for every runner (0: one per core)")
    args = parser.parse_args()
    box = Sandbox(workers=args.workers)
    fresh_box = Sandbox(workers=args.workers, fresh_process_per_test=True)
    level = sandbox.level()
    print(
        f"sandbox level {level}, {box.workers} workers, {os.cpu_count()} CPU cores, load average "
        f"{os.getloadavg()[0]:.1f}, python {sys.version.split()[0]}"
    )
    jobs = {"trivial": trivial_jobs(args.trivial_programs), "realistic": realistic_jobs()}
    # light pool workers (forkserver: they do not inherit this process's imports), as in LiveCodeBench's pool
    context = multiprocessing.get_context("forkserver")
    with concurrent.futures.ProcessPoolExecutor(box.workers, mp_context=context) as pool:
        for name, batch in jobs.items():
            measure(name, batch, box, fresh_box, pool, args.rounds)
    box.close()
    fresh_box.close()


if __name__ == "__main__":
    main()
