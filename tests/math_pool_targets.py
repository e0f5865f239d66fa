"""Functions that tests/test_math.py runs in verifier workers: a worker imports them by name, so they live in a
module of their own (importing the test module would import pytest and the whole project into every worker)."""

import os
import sys
import time


def slow_echo(seconds, value):
    time.sleep(seconds)
    return value


def crash(now):
    if now:
        os._exit(3)
    return "fine"


def crash_on_start():
    raise SystemExit(4)


def describe_worker():
    """What a worker runs as, and the thread counts numeric libraries would read."""
    main = sys.modules["__main__"]
    return {
        "main": main.__spec__.name if main.__spec__ else None,
        "threads": {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
    }
