"""Test executions per second: rlexp.sandbox (every protection on) against a naive runner, side by side.

    python scripts/bench_sandbox.py            # or: make bench

The naive runner is `subprocess.run([sys.executable, file])` once per test, given the same number of parallel
workers as the sandbox. Both run the same programs on the same tests in each round, alternating, and the ratio
is taken per round. Programs:
- trivial: read one number, print its double (10 tests each);
- realistic: the reference solutions of rlexp's procedural LiveCodeBench-style problems on all their tests.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlexp import sandbox
from rlexp.envs import make
from rlexp.sandbox import Job, Sandbox


def trivial_jobs(n_programs: int) -> list[Job]:
    return [Job(f"print(int(input()) * 2 + {k} - {k})", [f"{i}\n" for i in range(10)]) for k in range(n_programs)]


def realistic_jobs() -> list[Job]:
    env = make("livecode")
    jobs = []
    for row in env.dataset("test"):
        tests, _ = env.tests_for(row)
        functional = row["testtype"] == "functional"
        jobs.append(Job(row["reference"], [t["input"] for t in tests], mode="functional" if functional else "stdin",
                        fn_name=row["fn_name"] or None))
    return jobs


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
            code = job.code if job.mode == "stdin" else "from typing import *\n" + job.code + NAIVE_FUNCTIONAL_CALL.format(fn=job.fn_name)
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


def measure(name: str, jobs: list[Job], box: Sandbox, rounds: int) -> None:
    n_tests = sum(len(j.inputs) for j in jobs)
    rates = {"sandbox": [], "naive": []}
    for _ in range(rounds):
        for runner in ("sandbox", "naive"):
            start = time.perf_counter()
            answered = run_sandboxed(box, jobs) if runner == "sandbox" else run_naive(jobs, box.workers)
            elapsed = time.perf_counter() - start
            if answered != n_tests:
                raise SystemExit(f"{runner} answered {answered} of {n_tests} tests: the benchmark is broken")
            rates[runner].append(n_tests / elapsed)
    ratios = [s / n for s, n in zip(rates["sandbox"], rates["naive"])]
    print(f"{name:10s} {len(jobs):5d} programs {n_tests:6d} tests | sandbox {statistics.median(rates['sandbox']):7.1f}/s"
          f" | naive {statistics.median(rates['naive']):7.1f}/s | ratio {statistics.median(ratios):5.2f}x "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trivial-programs", type=int, default=40)
    args = parser.parse_args()
    box = Sandbox()
    level = sandbox.level()
    print(f"sandbox level {level}, {box.workers} workers, {os.cpu_count()} CPU cores, python {sys.version.split()[0]}")
    measure("trivial", trivial_jobs(args.trivial_programs), box, args.rounds)
    measure("realistic", realistic_jobs(), box, args.rounds)


if __name__ == "__main__":
    main()
