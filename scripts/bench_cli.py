"""Wall time of the command line's quick answers, beside a minimal Hydra app on the same machine.

    python scripts/bench_cli.py            # or: make bench

Two commands each, run in turn (one warm-up, then `--rounds` rounds); the median wall time of each and the median of
the per-round ratios are printed:
- a misspelt key: `python -m rlexp algo.learning_rat=1` (one line, exit 2), beside the minimal app's `lrr=1`;
- `--help`, beside the minimal app's `--help`.
The minimal app is one `@hydra.main` function and a one-key YAML, written to a temporary directory; it runs on the
same interpreter, so the ratio is what rlexp adds to Hydra: its config groups, schemas and checks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MINIMAL_APP = """
import hydra


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg):
    print(cfg)


if __name__ == "__main__":
    main()
"""


def wall(command: list[str], expect_code: int, cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != expect_code:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}, not {expect_code}: {done.stderr[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp)
        (app / "app.py").write_text(MINIMAL_APP)
        (app / "config.yaml").write_text("lr: 0.1\n")
        rlexp = [sys.executable, "-m", "rlexp"]
        minimal = [sys.executable, str(app / "app.py")]
        cases = {
            "typo": ((rlexp + ["algo.learning_rat=1"], 2, ROOT), (minimal + ["lrr=1"], 1, app)),
            "--help": ((rlexp + ["--help"], 0, ROOT), (minimal + ["--help"], 0, app)),
        }
        for name, (ours, theirs) in cases.items():
            wall(*ours), wall(*theirs)  # warm-up: files cached, bytecode written
            times = {"rlexp": [], "hydra": []}
            for _ in range(args.rounds):
                times["rlexp"].append(wall(*ours))
                times["hydra"].append(wall(*theirs))
            ratios = [a / b for a, b in zip(times["rlexp"], times["hydra"])]
            print(
                f"{name:7s} rlexp {statistics.median(times['rlexp']):.3f} s | minimal Hydra app "
                f"{statistics.median(times['hydra']):.3f} s | ratio {statistics.median(ratios):.2f}x "
                f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
            )


if __name__ == "__main__":
    main()
