"""One table comparing the arms of a sweep, printed and written to `<sweep dir>/comparison.md` when it ends.

    python -m rlexp -m experiment=sft_then_grpo,iwsft_then_grpo env=synlogic seed=0,1,2

An arm is what a job's overrides set differently from the others, less the seed; its row names the
arm's job directories and gives, for each eval split, the final stage's success and pass@k as the
mean over seeds, with the standard deviation when there are several.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback

from rlexp.console import say


def arms(sweep_dir: Path) -> dict[str, list[dict]]:
    """Final-stage results of each finished job (with its directory's name under "job"), grouped by
    the overrides that vary across jobs, less `seed=`."""
    jobs = []
    for summary_file in sorted(sweep_dir.glob("*/summary.json")):
        summary = json.loads(summary_file.read_text())
        if summary.get("status") != "done" or not summary.get("results"):
            continue
        overrides_file = summary_file.parent / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.exists() else []
        final = {**list(summary["results"].values())[-1], "job": summary_file.parent.name}
        jobs.append((overrides, final, summary["algo"]))
    shared = set.intersection(*(set(o) for o, _, _ in jobs)) if jobs else set()
    grouped: dict[str, list[dict]] = {}
    for overrides, final, algo in jobs:
        arm = " ".join(o for o in overrides if o not in shared and not o.startswith("seed=")) or algo
        grouped.setdefault(arm, []).append(final)
    return grouped


def _cell(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}"


def comparison_table(grouped: dict[str, list[dict]]) -> str:
    """A markdown table: one row per arm, success and pass@k per split of the final stage."""
    if not grouped:
        return ""
    first = next(iter(grouped.values()))[0]
    columns = [
        (split, metric)
        for split, metrics in first.items()
        if split != "job"
        for metric in ["success"] + sorted(k for k in metrics if k.startswith("pass@"))
    ]
    head = ["arm", "seeds", "jobs"] + [f"{split} {metric}" for split, metric in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm, runs in grouped.items():
        cells = [_cell([r[s][m] for r in runs if s in r and m in r[s]]) for s, m in columns]
        jobs = ", ".join(sorted((r["job"] for r in runs), key=lambda name: (len(name), name)))
        lines.append("| " + " | ".join([arm, str(len(runs)), jobs, *cells]) + " |")
    return "\n".join(lines)


class CompareArms(Callback):
    """Hydra calls this once, after the last job of a multirun."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        table = comparison_table(arms(sweep_dir))
        if table:
            (sweep_dir / "comparison.md").write_text(table + "\n")
            say(f"\n{table}\n(written to {sweep_dir / 'comparison.md'}; jobs are its numbered directories)")
        say(f"[rlexp] sweep directory: {sweep_dir}")
