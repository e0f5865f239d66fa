"""python -m rlexp.report on a sweep directory written here: 2 arms x 2 seeds done, one cell running and one not
started; its numbers against a hand computation (the real sweep is in test_cli.py)."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlexp.checkpoints import RunDirLock
from rlexp.report import bootstrap_interval, main, write_report

# final success per (algo, seed) and split; pass@1 is success, pass@2 and mean reward follow from it
SUCCESS = {("sft", 0): (0.5, 0.2), ("sft", 1): (0.7, 0.4), ("grpo", 0): (0.6, 0.3), ("grpo", 1): (1.0, 0.3)}


def job(sweep: Path, num: int, algo: str, seed: int, status: str | None = "done", steps: int = 10) -> Path:
    """A job directory as a run leaves it: overrides, config, metrics (SFT's loss or GRPO's reward per step, and
    an evaluation at the end) and, unless `status` is None, a summary."""
    run = sweep / str(num)
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"algo={algo}", f"seed={seed}", "env=x"]))
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "algo": {"name": algo}}))
    quantity = "loss" if algo == "sft" else "reward"
    rows = [{"stage": algo, "step": s, "time": 0.0, quantity: 1.0 + 0.1 * seed - 0.05 * s} for s in range(1, steps + 1)]
    if status is not None:
        results = {}
        for split, success in zip(("id", "ood"), SUCCESS[algo, seed]):
            results[split] = {"success": success, "success_se": 0.1, "mean_reward": 2 * success - 1, "n_prompts": 8,
                              "n_samples": 2, "pass@1": success, "pass@2": min(1.0, success + 0.1)}  # fmt: skip
        rows.append({"stage": algo, "step": steps, "time": 0.0,
                     **{f"eval/x/{split}/{k}": v for split, m in results.items() for k, v in m.items()}})  # fmt: skip
        summary = {"status": status, "seed": seed, "algo": algo, "stages": [algo], "results": {algo: results}}
        (run / "summary.json").write_text(json.dumps(summary))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


@pytest.fixture
def sweep(tmp_path):
    """Jobs 0, 1 (sft, seeds 0, 1) and 3, 4 (grpo, seeds 0, 1) done; job 2 (sft, seed 2) running; job 5 (grpo,
    seed 2) not started, known from multirun.yaml."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    hydra = {
        "sweep": {"dir": str(sweep), "subdir": "${hydra.job.num}"},
        "overrides": {"task": ["algo=sft,grpo", "seed=0,1,2", "env=x"]},
    }
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    for num, (algo, seed) in enumerate(itertools.product(("sft", "grpo"), (0, 1, 2))):
        if seed < 2:
            job(sweep, num, algo, seed)
    running = job(sweep, 2, "sft", 2, status=None, steps=4)
    with RunDirLock(running):
        yield sweep


def test_the_report_gives_mean_sd_interval_and_paired_differences_as_computed_by_hand(sweep):
    path, table = write_report([sweep])
    report = path.read_text()
    # the cells not done, with their arms and seeds
    assert "| `2` | algo=sft | 2 | running |" in report
    assert "| `5` | algo=grpo | 2 | not started |" in report
    # id success: sft 0.5, 0.7 -> mean 0.6, sd sqrt(2 * 0.1^2 / 1) = 0.141; with two seeds the bootstrap's resampled
    # means are a, (a+b)/2 or b with chances 1/4, 1/2, 1/4, so its 2.5% and 97.5% percentiles are the two values
    assert "| algo=sft | sft | 0, 1 | `0`, `1` | 0.600 ± 0.141 [0.500, 0.700] | 0.600 ± 0.141 [0.500, 0.700] |" in report
    # grpo 0.6, 1.0 -> 0.8 ± 0.283; pass@2 0.7, 1.0 -> 0.85 ± 0.212; mean reward 0.2, 1.0 -> 0.6 ± 0.566
    assert ("| algo=grpo | grpo | 0, 1 | `3`, `4` | 0.800 ± 0.283 [0.600, 1.000] | 0.800 ± 0.283 [0.600, 1.000] "
            "| 0.850 ± 0.212 [0.700, 1.000] | 0.600 ± 0.566 [0.200, 1.000] |") in report  # fmt: skip
    # paired by seed, grpo - sft: id success 0.1, 0.3 -> +0.2 [+0.1, +0.3]; ood 0.1, -0.1 -> 0 [-0.1, +0.1]
    assert "| algo=grpo − algo=sft | success | 2 (seeds 0, 1) | +0.200 [+0.100, +0.300] | +0.000 [-0.100, +0.100] |" in report
    # mean reward is 2 success - 1: twice the differences
    assert "|  | mean reward | 2 (seeds 0, 1) | +0.400 [+0.200, +0.600] | +0.000 [-0.200, +0.200] |" in report
    assert table.splitlines()[2] == "| algo=sft | 2 | 0.600 ± 0.141 | 0.300 ± 0.141 |"
    for figure in ("curves.png", "splits.png", "pass_at_k.png"):
        assert (sweep / figure).stat().st_size > 10_000 and f"]({figure})" in report
    page = (sweep / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3 and "<td>0.600 ± 0.141 [0.500, 0.700]</td>" in page


def test_the_bootstrap_interval_is_the_exact_bootstraps_within_its_resampling_noise():
    """All 4^4 resamples of four values are equally likely: their means' percentiles are the exact bootstrap
    interval, which 10,000 seeded draws estimate (the means lie on a grid of 0.05)."""
    values = [0.0, 0.2, 0.6, 1.0]
    exact = np.percentile([np.mean(r) for r in itertools.product(values, repeat=4)], [2.5, 97.5])
    low, high = bootstrap_interval(values)
    assert abs(low - exact[0]) <= 0.05 and abs(high - exact[1]) <= 0.05
    assert bootstrap_interval(values) == (low, high), "seeded: the same interval every time"
    assert bootstrap_interval([0.4]) is None


def test_several_sweeps_combine_and_bad_input_is_one_line(tmp_path, capsys):
    for name, algo in (("a", "sft"), ("b", "grpo")):
        for seed in (0, 1):
            job(tmp_path / name, seed, algo, seed)
    main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "out")])
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| algo=grpo | grpo | 0, 1 | `b/0`, `b/1` | 0.800 ± 0.283 [0.600, 1.000] |" in report
    assert capsys.readouterr().out.splitlines()[-1] == f"[rlexp] report: {tmp_path / 'out' / 'report.md'}"
    for bad, message in ((tmp_path / "nope", "no such directory"), (tmp_path / "out", "holds no run")):
        with pytest.raises(SystemExit) as exit_:
            main([str(bad)])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith("rlexp: error: ") and message in err
