"""The figures: each run's `learning_curve.png`, and those of the report on a sweep (rlexp/report.py).

One quantity per axis, every axis labelled with what it shows and its unit. Training curves are smoothed by a
centred moving average over a window of about a tenth of the curve's points (2 * (points // 20) + 1 of them, fewer
near the ends, where the window shrinks to stay centred: no lag, unlike an exponential average), drawn over the raw
values, which are faint. Error bars and bands are one
standard error: over a run's evaluation prompts (summary's `success_se`) or over seeds, as each caption says.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from matplotlib.ticker import MaxNLocator

from rlexp.tracking import read_metrics

STEP_LABEL = "step (counted across the run's stages)"
SUCCESS_LABEL = "success (share of samples solved)"
PASS_LABEL = "pass@k (share of prompts solved within k samples)"
# each stage's training quantity on its own axis: GRPO-like stages log a reward, SFT-like stages a loss only
TRAINING_LABELS = {"reward": "reward (mean per completion)", "loss": "training loss (per token)"}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def smooth(values: list[float]) -> list[float]:
    """The centred moving average described in the module's docstring."""
    half = len(values) // 20
    smoothed = []
    for i in range(len(values)):
        reach = min(half, i, len(values) - 1 - i)
        smoothed.append(statistics.fmean(values[i - reach : i + reach + 1]))
    return smoothed


def stage_curves(rows: list[dict]) -> dict[str, tuple[str, list[int], list[float]]]:
    """Per training stage of a run's metrics: its quantity (reward where the stage logs one, else loss) and that
    quantity per step."""
    curves = {}
    for stage in dict.fromkeys(r["stage"] for r in rows):
        for quantity in TRAINING_LABELS:
            points = [(r["step"], r[quantity]) for r in rows if r["stage"] == stage and quantity in r]
            if points:
                curves[stage] = (quantity, [s for s, _ in points], [v for _, v in points])
                break
    return curves


def _eval_points(rows: list[dict]) -> dict[str, list[tuple[int, str, float, float]]]:
    """Per eval split: (step, stage, success, its standard error) of each evaluation, from keys
    eval/<env>/<split>/success (a group's eval/<env>/<split>/<group>/success is left out)."""
    points: dict[str, list] = {}
    for r in rows:
        for key, value in r.items():
            parts = key.split("/")
            if len(parts) == 4 and parts[0] == "eval" and parts[3] == "success":
                points.setdefault(parts[2], []).append((r["step"], r["stage"], value, r.get(f"{key}_se", 0.0)))
    return points


def _draw_curve(ax, steps, values, label, color=None, linestyle="-", band=None) -> None:
    """The smoothed curve over its faint raw values; `band`, (low, high) per step, shaded around it."""
    marker = "o" if len(steps) < 10 else None  # a curve of a few points shows its points
    line = ax.plot(steps, smooth(values), label=label, color=color, linestyle=linestyle, marker=marker, ms=4)[0]
    ax.plot(steps, values, color=line.get_color(), alpha=0.25, linewidth=0.8)
    if band is not None:
        ax.fill_between(steps, band[0], band[1], color=line.get_color(), alpha=0.15, linewidth=0)


def plot_learning_curve(run_dir: str | Path, out: str | Path) -> None:
    """One run: a panel per training quantity (reward, loss) with a curve per stage, and one of evaluation success
    per split after each stage, with error bars of one standard error over the evaluation's prompts."""
    plt = pyplot()
    rows = read_metrics(run_dir)
    curves = stage_curves(rows)
    quantities = list(dict.fromkeys(q for q, _, _ in curves.values()))
    evals = _eval_points(rows)
    panels = max(1, len(quantities) + bool(evals))
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.2), squeeze=False)
    for ax, quantity in zip(axes[0], quantities):
        for stage, (q, steps, values) in curves.items():
            if q == quantity:
                _draw_curve(ax, steps, values, stage)
        ax.set(xlabel=STEP_LABEL, ylabel=TRAINING_LABELS[quantity], title=f"training {quantity} (smoothed; raw faint)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(title="stage", fontsize=8)
    if evals:
        ax = axes[0][-1]
        # one place per evaluation, in order: a stage of a few steps would sit on top of the one before
        order = list(dict.fromkeys((step, stage) for points in evals.values() for step, stage, _, _ in points))
        for split, points in evals.items():
            places = [order.index((step, stage)) for step, stage, _, _ in points]
            ax.errorbar(places, [p[2] for p in points], yerr=[p[3] for p in points], marker="o", capsize=3, label=split)
        ax.set_xticks(range(len(order)), [f"{stage}\n(step {step})" for step, stage in order], fontsize=8)
        ax.set(xlabel="evaluated after stage", ylabel=SUCCESS_LABEL, ylim=(-0.03, 1.03))
        ax.set_title("evaluation (± standard error over prompts)")
        ax.legend(title="split", fontsize=8)
    fig.suptitle(f"{Path(run_dir).parent.name}/{Path(run_dir).name}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _mean_and_se(values: list[float]) -> tuple[float, float]:
    """The mean, and its standard error over the values (0 for one value)."""
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return statistics.fmean(values), se


def plot_arm_curves(runs: dict[str, list[list[dict]]], out: str | Path) -> bool:
    """Per arm (its runs' metrics records), each stage's training quantity: the mean over the arm's runs at each
    step, smoothed, over the raw mean (faint), in a band of one standard error over the runs (of their smoothed
    curves). A colour per arm, a line style per stage; a panel per quantity. Whether there was anything to draw."""
    plt = pyplot()
    per_quantity: dict[str, list] = {}
    for arm, arm_runs in runs.items():
        curves = [stage_curves(rows) for rows in arm_runs]
        for stage in dict.fromkeys(stage for c in curves for stage in c):
            quantity = next(c[stage][0] for c in curves if stage in c)
            by_step: dict[int, list[tuple[float, float]]] = {}
            for c in curves:
                if stage in c:
                    _, steps, values = c[stage]
                    for step, value, smoothed in zip(steps, values, smooth(values)):
                        by_step.setdefault(step, []).append((value, smoothed))
            steps = sorted(by_step)
            raw = [statistics.fmean(v for v, _ in by_step[s]) for s in steps]
            stats = [_mean_and_se([m for _, m in by_step[s]]) for s in steps]
            band = ([m - se for m, se in stats], [m + se for m, se in stats])
            per_quantity.setdefault(quantity, []).append((arm, stage, steps, raw, band))
    if not per_quantity:
        return False
    colors = {arm: f"C{i % 10}" for i, arm in enumerate(runs)}
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, len(per_quantity), figsize=(6.5 * len(per_quantity), 4.5), squeeze=False)
    for ax, (quantity, lines) in zip(axes[0], per_quantity.items()):
        stages = list(dict.fromkeys(stage for _, stage, _, _, _ in lines))
        for arm, stage, steps, raw, band in lines:
            style = styles[stages.index(stage) % len(styles)]
            _draw_curve(ax, steps, raw, f"{arm} · {stage}", colors[arm], style, band)
        ax.set(xlabel=STEP_LABEL, ylabel=TRAINING_LABELS[quantity], title=f"training {quantity}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(title="arm · stage", fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def plot_splits(success: dict[str, dict[str, tuple[list[float], float]]], out: str | Path) -> None:
    """Final success per eval split (ID, OOD ...), a bar per arm: the mean over its seeds, each seed a dot, the
    error bar one standard error over the seeds (`success`: arm -> split -> (the seeds' values, the standard error
    of a single run, over its prompts, shown for an arm of one seed))."""
    plt = pyplot()
    splits = list(dict.fromkeys(split for per_split in success.values() for split in per_split))
    width = 0.8 / len(success)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 1.6 * len(splits) * max(1, len(success) / 2)), 4.2))
    for i, (arm, per_split) in enumerate(success.items()):
        xs = [splits.index(split) + (i - (len(success) - 1) / 2) * width for split in per_split]
        means = [statistics.fmean(values) for values, _ in per_split.values()]
        errors = [_mean_and_se(values)[1] if len(values) > 1 else one_run for values, one_run in per_split.values()]
        ax.bar(xs, means, width * 0.9, yerr=errors, capsize=4, label=arm, color=f"C{i % 10}", alpha=0.8)
        for x, (values, _) in zip(xs, per_split.values()):  # beside the error bar, whose ends they may be
            ax.plot([x + width * 0.2] * len(values), values, "o", ms=4, mfc="white", mec="black")
    ax.set_xticks(range(len(splits)), splits)
    ax.set(xlabel="evaluation split", ylabel=SUCCESS_LABEL, ylim=(-0.03, 1.05))
    ax.set_title("final stage: success per split (dots: seeds)", fontsize=10)
    ax.legend(title="arm", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_pass_at_k(curves: dict[str, dict[str, dict[int, list[float]]]], out: str | Path) -> None:
    """pass@k against k, a panel per split and a line per arm (`curves`: arm -> split -> k -> the seeds' values):
    the mean over seeds, the error bars one standard error over seeds."""
    plt = pyplot()
    splits = list(dict.fromkeys(split for per_split in curves.values() for split in per_split))
    fig, axes = plt.subplots(1, len(splits), figsize=(4.8 * len(splits), 4.2), squeeze=False, sharey=True)
    for ax, split in zip(axes[0], splits):
        ks = sorted({k for per_split in curves.values() for k in per_split.get(split, {})})
        for i, (arm, per_split) in enumerate(curves.items()):
            points = sorted((k, _mean_and_se(values)) for k, values in per_split.get(split, {}).items())
            dodge = 1 + 0.03 * (i - (len(curves) - 1) / 2)  # arms' equal points side by side, not on top of each other
            if points:
                ax.errorbar([k * dodge for k, _ in points], [m for _, (m, _) in points], yerr=[se for _, (_, se) in points],
                            marker="o", capsize=3, label=arm, color=f"C{i % 10}")  # fmt: skip
        if ks and ks[-1] >= 8:
            ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set(xlabel="k (samples per prompt)", title=split, ylim=(-0.03, 1.05))
        ax.legend(title="arm", fontsize=8)
    axes[0][0].set_ylabel(PASS_LABEL)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
