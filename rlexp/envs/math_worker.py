"""One verifier worker process of `rlexp.envs.math.BoundedPool`.

Started as `python -m rlexp.envs.math_worker MODULE:FUNCTION [MODULE:WARM]`, it imports the function by name,
runs WARM once, answers "ready" (or ("failed", why)), then for each argument tuple read from its stdin writes
FUNCTION(*args) to its stdout, both as multiprocessing messages (length-prefixed pickles). Being a plain
program rather than a multiprocessing child, it never imports its caller's `__main__`: a script without an
`if __name__ == "__main__":` guard, an interactive session or a forked process can start it. Its main thread
runs the function, so math-verify's `signal.alarm` timeouts work.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Callable


def load(name: str) -> Callable:
    """MODULE:QUALNAME -> the object."""
    module, _, qualname = name.partition(":")
    found = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def exit_when_orphaned(parent: int) -> None:
    """A worker stuck in one long check would outlive a killed caller; it checks once a second."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def send(replies: Connection, message) -> bool:
    """Whether `message` reached the caller (not when the caller is gone)."""
    try:
        replies.send(message)
    except OSError:
        return False
    return True


def main(argv: list[str]) -> int:
    # the messages get private copies of stdin and stdout; a library that prints writes to stderr instead
    requests = Connection(os.dup(0), writable=False)
    replies = Connection(os.dup(1), readable=False)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the caller's terminal is the caller's to handle
    exit_when_orphaned(os.getppid())
    try:
        target = load(argv[0])
        if len(argv) > 1:
            load(argv[1])()
    except BaseException as exc:  # noqa: BLE001 - the caller reports why its worker did not start
        send(replies, ("failed", f"{type(exc).__name__}: {str(exc)[:300]}"))
        return 1
    if not send(replies, "ready"):
        return 0
    while True:
        try:
            args = requests.recv()
        except (EOFError, OSError):  # the caller closed the pipe or is gone
            return 0
        if not send(replies, target(*args)):
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
