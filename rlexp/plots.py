"""The learning-curve PNG of a run: training reward (or loss) per step, and eval success per stage."""

from __future__ import annotations

from pathlib import Path

from rlexp.tracking import read_metrics


def plot_learning_curve(run_dir: str | Path, out: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    fig, (train_ax, eval_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for stage in dict.fromkeys(r["stage"] for r in rows):
        for key in ("reward", "loss"):
            points = [(r["step"], r[key]) for r in rows if r["stage"] == stage and key in r]
            if points:
                steps, values = zip(*points)
                train_ax.plot(steps, values, label=f"{stage} {key}")
                break
    train_ax.set(xlabel="step (all stages)", title="training")
    train_ax.legend(fontsize=8)
    evals = [r for r in rows if any(k.endswith("/success") and k.startswith("eval/") for k in r)]
    splits = sorted({k.split("/")[2] for r in evals for k in r if k.startswith("eval/") and k.endswith("/success")})
    for split in splits:
        points = [(r["stage"], r[k]) for r in evals for k in r if k.startswith("eval/") and k.endswith(f"/{split}/success")]
        if points:
            eval_ax.plot([s for s, _ in points], [v for _, v in points], marker="o", label=split)
    eval_ax.set(xlabel="after stage", ylabel="success", title="evaluation", ylim=(0, 1))
    eval_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
