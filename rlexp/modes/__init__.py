"""Run modes, found by name: `mode=train | eval | discover`.

Each module here (but `base`) is one mode: its `main(run)` does the mode's work with the `Run` that
rlexp/worker.py builds (environment, model config, tracker, run directory, summary); the worker imports the
module `mode=` names when the run starts. A mode's name is its module's name, listed here without importing it: a
mode imports torch, and checking `mode=` must not. A new mode is one module here.
"""

from __future__ import annotations

import pkgutil


def names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base")
