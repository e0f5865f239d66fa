"""What rlexp prints, and where.

Only rlexp's own lines (stage headers, the results table, where the run went) go to stdout, so
`python -m rlexp --cfg job > cfg.yaml` and `python -m rlexp ... | tee` carry nothing else.
Libraries print on import and while they train (transformers' "[INFO] Running in WANDB offline
mode", DeepSpeed's accelerator notice, the Trainer's log dicts): inside `libraries_to_stderr()`
their stdout goes to stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys

_stdout = None  # the real stdout while libraries_to_stderr() is active


def say(*parts) -> None:
    """Print one of rlexp's own lines to stdout, also inside libraries_to_stderr(). The progress bars on stderr
    (rlexp's run bar, TRL's) are cleared first and drawn again after it, so a terminal showing both stays readable."""
    bars = sys.modules.get("tqdm.auto")  # a bar exists only once tqdm is imported; the command line does not import it
    with bars.tqdm.external_write_mode(file=sys.stderr) if bars else contextlib.nullcontext():
        print(*parts, file=_stdout or sys.stdout, flush=True)


def error(message: str) -> None:
    print(f"rlexp: error: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def libraries_to_stderr():
    global _stdout
    if _stdout is not None:  # nested: already redirected
        yield
        return
    _stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _stdout = None


def exit_now(code: int) -> None:
    """Exit once output is flushed, skipping the interpreter's teardown of torch and friends
    (about a second). Only for points where nothing is left to clean up: no worker processes,
    no open run."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
