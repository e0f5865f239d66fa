"""`python -m rlexp.report <run or sweep dir> [more dirs]`: what a sweep found, as a researcher reads it.

    python -m rlexp.report runs/multirun/2025-11-26/10-00-00
    python -m rlexp.report runs/multirun/2025-11-26/10-00-00 runs/multirun/2025-11-27/09-00-00 --out results

A multirun ends by writing it into its sweep directory (`WriteReport`, a Hydra callback in conf/hydra/default.yaml);
several directories (sweeps or runs) combine into one report, written into the first unless `--out` says where.

An arm is what a run's overrides set differently from the other runs', less the seed. For each arm and each eval
split of each run's final stage: success, pass@k and mean reward as the mean, the standard deviation and a 95%
bootstrap interval of the mean over seeds; the differences between arms paired by seed (arm B minus arm A for each
seed both ran), with their mean and its bootstrap interval; figures of the training curves per arm with a band over
seeds, success per split (ID vs OOD) and pass@k against k. It is `report.md` with its PNGs beside it, and
`report.html`, one file with the tables and the figures inside. Only runs whose summary says "done" count in the
numbers; the report lists the other cells of the sweep (not started, running, failed, interrupted, no summary).

Bootstrap: the percentile interval of the mean, from RESAMPLES resamples of the seeds' values with replacement, drawn
by numpy's default_rng(BOOTSTRAP_SEED) afresh for each interval, so that each number can be recomputed alone.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import html
import json
import os
import re
import statistics
import sys
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import yaml
from hydra.errors import HydraException
from hydra.experimental.callback import Callback

from rlexp.console import error, say
from rlexp.errors import ConfigError

# resamples behind each bootstrap interval
RESAMPLES = 10_000
# the seed of the generator that draws them, started afresh for each interval
BOOTSTRAP_SEED = 0
# the intervals' coverage
CONFIDENCE = 0.95
# a directory holding any of these is a run (a sweep's job, or a run of its own)
RUN_FILES = ("summary.json", "config.yaml", ".hydra/overrides.yaml")


@dataclass
class Cell:
    """One run the report covers: a job of a sweep, or a run directory given as such."""

    name: str  # the job's number, or its path when several directories combine
    path: Path
    overrides: list[str]
    seed: int | None
    # done, failed, interrupted (summary.json's status), running, no summary (stopped before writing one),
    # not started (a job of the sweep without a directory yet)
    state: str
    summary: dict | None = None

    def final(self) -> tuple[str, dict] | None:
        """The final stage's name and its results per split, for a run that is done."""
        results = (self.summary or {}).get("results") or {}
        if self.state != "done" or not results:
            return None
        stage = list(results)[-1]
        return stage, results[stage]


# -- finding the runs -------------------------------------------------------------------------------------------------


def is_run(path: Path) -> bool:
    return any((path / name).exists() for name in RUN_FILES)


def is_running(path: Path) -> bool:
    """Whether a process holds the run directory's lock (rlexp/checkpoints.py's RunDirLock)."""
    try:
        with open(path / ".lock") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except FileNotFoundError:
        return False
    except BlockingIOError:
        return True
    return False


def read_cell(path: Path, name: str) -> Cell:
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = (yaml.safe_load(overrides_file.read_text()) or []) if overrides_file.exists() else []
    try:
        summary = json.loads((path / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):  # none yet (or written by an older rlexp, not whole)
        summary = None
    if is_running(path):
        state = "running"
    elif summary is None:
        state = "no summary"
    else:
        state = summary["status"]
    seed = summary["seed"] if summary else None
    if seed is None and (path / "config.yaml").exists():
        seed = yaml.safe_load((path / "config.yaml").read_text()).get("seed")
    return Cell(name, path, overrides, seed, state, summary)


def expected_jobs(sweep_dir: Path) -> dict[str, list[str]]:
    """The sweep's jobs by directory name, with their overrides, from the multirun.yaml Hydra writes as a sweep
    starts; empty where that cannot be known (no such file, job directories not named by number, a glob)."""
    from rlexp.config import sweep_jobs

    try:
        hydra_cfg = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())["hydra"]
        if hydra_cfg["sweep"]["subdir"] != "${hydra.job.num}":
            return {}
        return {str(num): job for num, job in enumerate(sweep_jobs(hydra_cfg["overrides"]["task"]))}
    except (OSError, KeyError, TypeError, yaml.YAMLError, HydraException):  # report on the directories there are
        return {}


def _job_order(name: str) -> tuple:
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def find_cells(dirs: list[str | Path]) -> list[Cell]:
    """The runs in `dirs` (each a run directory or a sweep directory of numbered jobs), and a sweep's jobs that have
    no directory yet; ConfigError where a directory is missing or holds no run."""
    paths = [Path(d) for d in dirs]
    for path in paths:
        if not path.is_dir():
            raise ConfigError(f"no such directory: {path}")
    base = Path(os.path.commonpath([p.resolve() for p in paths])) if len(paths) > 1 else None
    cells, seen = [], set()
    for path in paths:
        if is_run(path):
            found, expected = {path.name: path}, {}
        else:
            found = {d.name: d for d in path.iterdir() if d.is_dir() and is_run(d)}
            expected = expected_jobs(path)
        if not found:
            raise ConfigError(f"{path} holds no run (no directory with {', '.join(RUN_FILES)}): give a run or sweep directory")
        for job in sorted(set(found) | set(expected), key=_job_order):
            where = found.get(job, path / job)
            if where.resolve() in seen:
                continue
            seen.add(where.resolve())
            name = str(where.resolve().relative_to(base)) if base is not None else job
            if job in found:
                cells.append(read_cell(where, name))
            else:
                seed = next((int(o[5:]) for o in expected[job] if re.fullmatch(r"seed=-?\d+", o)), None)
                cells.append(Cell(name, where, expected[job], seed, "not started"))
    return cells


def arms(cells: list[Cell]) -> dict[str, list[Cell]]:
    """The cells grouped by the overrides that differ across them, less `seed=`; the arms in the order of their
    first cell."""
    shared = set.intersection(*(set(c.overrides) for c in cells)) if cells else set()
    grouped: dict[str, list[Cell]] = {}
    for cell in cells:
        arm = " ".join(o for o in cell.overrides if o not in shared and not o.startswith("seed=")) or "all runs"
        grouped.setdefault(arm, []).append(cell)
    return grouped


# -- statistics -------------------------------------------------------------------------------------------------------


def bootstrap_interval(values: list[float]) -> tuple[float, float] | None:
    """The percentile bootstrap interval of the mean of `values` (see the module's docstring); None for fewer than
    two values."""
    if len(values) < 2:
        return None
    data = np.asarray(values, dtype=float)
    draws = np.random.default_rng(BOOTSTRAP_SEED).integers(0, len(data), size=(RESAMPLES, len(data)))
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(data[draws].mean(axis=1), [tail, 100 - tail])
    return float(low), float(high)


def spread(values: list[float], signed: bool = False, std: bool = True, interval: bool = True) -> str:
    """`mean ± standard deviation [bootstrap interval]` (each part as asked), or the value alone for one; "–" for
    none."""
    if not values:
        return "–"

    def number(x: float) -> str:
        return ("{:+.3f}" if signed else "{:.3f}").format(round(x, 3) + 0.0)  # + 0.0: no "-0.000" from rounding

    text = number(statistics.fmean(values))
    if len(values) > 1 and std:
        text += f" ± {statistics.stdev(values):.3f}"
    if len(values) > 1 and interval:
        low, high = bootstrap_interval(values)
        text += f" [{number(low)}, {number(high)}]"
    return text


def metric_names(results: list[dict]) -> list[str]:
    """The metrics the report gives, in its order, of results per split: success, first-try success (episodes),
    pass@k by k, mean reward."""
    keys = dict.fromkeys(key for per_split in results for metrics in per_split.values() for key in metrics)
    passes = sorted((k for k in keys if k.startswith("pass@")), key=lambda k: int(k[5:]))
    return [k for k in ("success", "first_try_success") if k in keys] + passes + [k for k in ("mean_reward",) if k in keys]


def per_seed(cells: list[Cell], split: str, metric: str) -> dict[int | None, list[float]]:
    """A metric of the final stage of the arm's done runs, by seed."""
    values: dict[int | None, list[float]] = {}
    for cell in cells:
        final = cell.final()
        if final and metric in final[1].get(split, {}):
            values.setdefault(cell.seed, []).append(final[1][split][metric])
    return values


def paired_differences(a: list[Cell], b: list[Cell], split: str, metric: str) -> tuple[list[int], list[float]]:
    """The seeds both arms ran to the end, and B minus A for each (a seed run more than once counts as its mean)."""
    values_a, values_b = per_seed(a, split, metric), per_seed(b, split, metric)
    seeds = sorted(s for s in set(values_a) & set(values_b) if s is not None)
    return seeds, [statistics.fmean(values_b[s]) - statistics.fmean(values_a[s]) for s in seeds]


def _flat(values: dict) -> list[float]:
    return [v for seed_values in values.values() for v in seed_values]


def _names(items) -> str:
    return ", ".join(str(i) for i in items)


def _label(metric: str) -> str:
    return {"mean_reward": "mean reward", "first_try_success": "first-try success"}.get(metric, metric)


# -- the report -------------------------------------------------------------------------------------------------------


def build(dirs: list[str | Path], cells: list[Cell], out_dir: Path) -> tuple[list[tuple], str]:
    """The report on `cells` (found in `dirs`) as blocks (heading, paragraph, table, figure), drawing its figures
    into `out_dir`, and the short table a sweep prints."""
    grouped = arms(cells)
    finals = [c.final() for c in cells if c.final()]
    splits = list(dict.fromkeys(split for _, results in finals for split in results))
    metrics = metric_names([results for _, results in finals])
    done = sum(1 for c in cells if c.final())
    blocks: list[tuple] = [
        ("h1", "Report"),
        ("p", f"Runs in {_names(f'`{d}`' for d in dirs)}: {len(cells)} runs in {len(grouped)} arms, {done} done. An arm is what its runs' overrides set "
              "differently from the other runs', less the seed; its numbers are of each done run's final stage."),
    ]  # fmt: skip
    sizes = {
        split: _names(sorted({f"{r[split]['n_prompts']} prompts × {r[split]['n_samples']} samples"
                              for _, r in finals if split in r and "n_prompts" in r[split]}))
        for split in splits
    }  # fmt: skip
    if any(sizes.values()):
        blocks.append(("p", "Evaluated on " + "; ".join(f"`{s}`: {n}" for s, n in sizes.items() if n) + " per run."))
    not_done = [c for c in cells if not c.final()]
    if not_done:
        blocks.append(("h2", "Cells not done"))
        blocks.append(("p", "They are left out of the numbers; running ones are in the training curves up to their last step."))
        arm_of = {id(c): arm for arm, members in grouped.items() for c in members}
        rows = [[f"`{c.name}`", arm_of[id(c)], str(c.seed), c.state] for c in not_done]
        blocks.append(("table", ["job", "arm", "seed", "state"], rows))
    if not finals:
        blocks.append(("p", "No run is done yet: no numbers."))
        return blocks + figures(grouped, splits, metrics, out_dir), ""
    interval = f"{CONFIDENCE:.0%} bootstrap interval of the mean ({RESAMPLES:,} resamples of the seeds, numpy default_rng({BOOTSTRAP_SEED}))"
    blocks.append(("h2", "Final results per arm"))
    blocks.append(("p", f"Each cell: mean ± standard deviation over seeds [{interval}]; one seed: its value alone."))
    for split in splits:
        blocks.append(("h3", f"Split `{split}`"))
        rows = []
        for arm, members in grouped.items():
            finished = [c for c in members if c.final() and split in c.final()[1]]
            if finished:
                stages = _names(dict.fromkeys(c.final()[0] for c in finished))
                cells_ = [spread(_flat(per_seed(members, split, m))) for m in metrics]
                rows.append([arm, stages, _names(sorted(c.seed for c in finished if c.seed is not None)),
                             _names(f"`{c.name}`" for c in finished), *cells_])  # fmt: skip
        blocks.append(("table", ["arm", "final stage", "seeds", "jobs", *map(_label, metrics)], rows))
    if len(grouped) > 1:
        blocks.append(("h2", "Differences between arms, paired by seed"))
        blocks.append(("p", f"B − A for each seed both arms ran to the end: the mean of the differences [{interval} "
                            "of the differences]; pairs: how many seeds, and which."))  # fmt: skip
        rows = []
        for (name_a, a), (name_b, b) in combinations(grouped.items(), 2):
            for metric in metrics:
                seeds, _ = paired_differences(a, b, splits[0], metric)
                diffs = [spread(paired_differences(a, b, split, metric)[1], signed=True, std=False) for split in splits]
                pairs = f"{len(seeds)} (seeds {_names(seeds)})" if seeds else "0"
                first = metric == metrics[0]  # the pair is named once, over its metrics' rows
                rows.append([f"{name_b} − {name_a}" if first else "", _label(metric), pairs, *diffs])
        blocks.append(("table", ["B − A", "metric", "pairs", *splits], rows))
    blocks += figures(grouped, splits, metrics, out_dir)
    return blocks, short_table(grouped, splits)


def figures(grouped: dict[str, list[Cell]], splits: list[str], metrics: list[str], out_dir: Path) -> list[tuple]:
    # here, not at the top: rlexp.tracking loads transformers, which a sweep's callback need not load to start
    from rlexp import plots
    from rlexp.tracking import read_metrics

    blocks: list[tuple] = [("h2", "Figures")]
    runs = {
        arm: [read_metrics(c.path) for c in members if (c.path / "metrics.jsonl").exists()] for arm, members in grouped.items()
    }
    if plots.plot_arm_curves({arm: r for arm, r in runs.items() if r}, out_dir / "curves.png"):
        blocks.append(("figure", "curves.png", "Training curves per arm: each stage's training reward (GRPO-like stages) or loss "
                       "(SFT-like stages) against the step; the mean over the arm's runs, smoothed by a centred moving average "
                       "over about a tenth of the points, the raw mean faint, the band ± one standard error over runs."))  # fmt: skip
    success, passes = {}, {}
    for arm, members in grouped.items():
        for split in splits:
            values = _flat(per_seed(members, split, "success"))
            if values:
                one_run = next(c.final()[1][split] for c in members if c.final() and split in c.final()[1])
                success.setdefault(arm, {})[split] = (values, one_run.get("success_se", 0.0))
            for metric in (m for m in metrics if m.startswith("pass@")):
                values = _flat(per_seed(members, split, metric))
                if values:
                    passes.setdefault(arm, {}).setdefault(split, {})[int(metric[5:])] = values
    if success:
        plots.plot_splits(success, out_dir / "splits.png")
        blocks.append(("figure", "splits.png", "Final success per split, a bar per arm: the mean over seeds, each seed a "
                       "dot; error bars: one standard error over seeds (an arm of one seed: over that run's prompts)."))  # fmt: skip
    if passes:
        plots.plot_pass_at_k(passes, out_dir / "pass_at_k.png")
        blocks.append(("figure", "pass_at_k.png", "pass@k (unbiased estimate) of the final stage against k, a panel per "
                       "split: the mean over seeds, error bars one standard error over seeds."))  # fmt: skip
    return blocks


def short_table(grouped: dict[str, list[Cell]], splits: list[str]) -> str:
    """What a sweep prints when it ends: success per split as mean ± standard deviation over seeds, per arm."""
    head = ["arm", "runs done", *(f"{split} success" for split in splits)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm, members in grouped.items():
        cells = [spread(_flat(per_seed(members, split, "success")), interval=False) for split in splits]
        lines.append("| " + " | ".join([arm, str(sum(1 for c in members if c.final())), *cells]) + " |")
    return "\n".join(lines)


def markdown(blocks: list[tuple]) -> str:
    out = []
    for kind, *content in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + content[0])
        elif kind == "p":
            out.append(content[0])
        elif kind == "table":
            head, rows = content
            out.append("\n".join("| " + " | ".join(row) + " |" for row in [head, ["---"] * len(head), *rows]))
        elif kind == "figure":
            out.append(f"![{content[0]}]({content[0]})\n\n{content[1]}")
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def to_html(blocks: list[tuple], out_dir: Path) -> str:
    """One self-contained page: the tables as HTML, the figures as base64 data URIs."""
    body = []
    for kind, *content in blocks:
        if kind in ("h1", "h2", "h3", "p"):
            body.append(f"<{kind}>{_inline(content[0])}</{kind}>")
        elif kind == "table":
            head, rows = content
            lines = ["<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in head) + "</tr>"]
            lines += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in rows]
            body.append("<table>\n" + "\n".join(lines) + "\n</table>")
        elif kind == "figure":
            data = base64.b64encode((out_dir / content[0]).read_bytes()).decode()
            body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{content[0]}">'
                        f"<figcaption>{_inline(content[1])}</figcaption></figure>")  # fmt: skip
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
             "th,td{border:1px solid #bbb;padding:3px 8px;text-align:left}img{max-width:100%}figcaption{color:#444}")  # fmt: skip
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>rlexp report</title><style>{style}</style>'
            "</head><body>\n" + "\n".join(body) + "\n</body></html>\n")  # fmt: skip


def write_report(dirs: list[str | Path], out_dir: str | Path | None = None) -> tuple[Path, str]:
    """Write report.md, its figures and report.html into `out_dir` (the first of `dirs` by default); return the
    path of report.md and the short table."""
    cells = find_cells(dirs)
    out_dir = Path(out_dir if out_dir is not None else dirs[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks, table = build(dirs, cells, out_dir)
    (out_dir / "report.md").write_text(markdown(blocks))
    (out_dir / "report.html").write_text(to_html(blocks, out_dir))
    return out_dir / "report.md", table


class WriteReport(Callback):
    """Hydra calls this once, after the last job of a multirun: the report on the sweep, in its directory."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            path, table = write_report([sweep_dir])
        except ConfigError as exc:  # no job wrote a directory
            say(f"[rlexp] no report: {exc}")
        else:
            if table:
                say(f"\n{table}")
            say(f"[rlexp] report: {path} (report.html beside it; jobs are the sweep's numbered directories)")
        say(f"[rlexp] sweep directory: {sweep_dir}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rlexp.report", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="run or sweep directories; several combine into one report")
    parser.add_argument("--out", help="where to write report.md, report.html and the figures (default: the first dir)")
    args = parser.parse_args(argv)
    try:
        path, table = write_report(args.dirs, args.out)
    except ConfigError as exc:
        error(str(exc))
        sys.exit(2)
    if table:
        say(table)
    say(f"[rlexp] report: {path}")


if __name__ == "__main__":
    main()
