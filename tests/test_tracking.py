"""What a run leaves for reading and comparing it: the W&B offline run (per-step completion tables, the summary, the
flattened config, job type and group, read from its .wandb file), completions.jsonl and its cap, and the progress
bar."""

import io
import json
import struct
from pathlib import Path

from rlexp.checkpoints import kept_metrics
from rlexp.progress import RunProgress
from rlexp.tracking import Tracker, flat_config, read_completions

# the evaluations of tests/conftest.py's demo_pipeline, at their run steps: SFT takes steps 1-2, GRPO 3-4
EVALUATIONS = [("init", 0), ("sft", 2), ("grpo", 4)]


def wandb_records(run_dir: Path) -> list:
    """The records of the offline run's .wandb file, parsed with wandb's own protobuf classes. The file is a LevelDB
    log (32 KiB blocks of records with a 7-byte header: CRC, length, type full/first/middle/last) after W&B's 7-byte
    header; wandb 0.31 writes it from its Go core and has no Python reader of its own any more."""
    from wandb.proto import wandb_internal_pb2

    path = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))[0]  # the run's own (running it again adds one)
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pos, part = [], 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's trailer
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        part += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # full, last
            record = wandb_internal_pb2.Record()
            record.ParseFromString(part)
            records.append(record)
            part = b""
    return records


def key(item) -> str:
    return "/".join(item.nested_key) or item.key


def test_the_wandb_run_keeps_a_table_per_step_and_the_final_metrics_of_every_stage(demo_pipeline):
    run_dir, _ = demo_pipeline
    records = wandb_records(run_dir)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.job_type, run.run_group) == ("sft-grpo", "demo"), "job type: the pipeline; group: the experiment"
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["prepare.sft.max_steps"] == 2 and config["algo.max_steps"] == 2 and config["logger.completions_rows"] == 6
    tables = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            step = next(json.loads(i.value_json) for i in r.history.item if key(i) == "_step")
            for item in r.history.item:
                if key(item).endswith("/_type") and json.loads(item.value_json) == "table-file":
                    tables[key(item).rsplit("/", 1)[0]] = step
    # SFT took steps 1 and 2, GRPO 3 and 4: one table under a key of its own at each GRPO step, and one per
    # evaluation and split
    assert tables == {
        "completions/grpo/step_000003": 3, "completions/grpo/step_000004": 4,
        **{f"samples/{stage}/{split}": step for stage, step in EVALUATIONS for split in ("id", "ood")},
    }  # fmt: skip
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update({key(item): json.loads(item.value_json) for item in r.summary.update})
    results = json.loads((run_dir / "summary.json").read_text())["results"]
    assert list(results) == ["init", "sft", "grpo"]
    for stage, splits in results.items():
        for split, metrics in splits.items():
            assert summary[f"eval/{stage}/{split}/success"] == metrics["success"]
            assert summary[f"eval/{stage}/{split}/pass@2"] == metrics["pass@2"]
    assert summary["eval/final/ood/mean_reward"] == results["grpo"]["ood"]["mean_reward"]


def test_completions_jsonl_holds_the_rows_of_the_wandb_tables(demo_pipeline):
    run_dir, _ = demo_pipeline
    rows = read_completions(run_dir)
    rollouts = [r for r in rows if r["kind"] == "rollout"]
    assert [(r["stage"], r["step"], r["split"]) for r in rollouts] == [("grpo", 3, "train")] * 6 + [("grpo", 4, "train")] * 6
    samples = [(r["stage"], r["step"], r["split"]) for r in rows if r["kind"] == "eval"]
    assert samples == [(stage, step, split) for stage, step in EVALUATIONS for split in ("id", "ood") for _ in range(6)]
    for r in rows:
        assert {"prompt", "completion", "reward", "success", "feedback", "category"} <= set(r)
        assert r["prompt"].startswith("Cards:") and r["success"] == (r["reward"] == 1.0)  # the demo's binary reward
    # W&B's table of step 4 holds the same rows
    (table,) = run_dir.glob("wandb/offline-run-*/files/media/table/completions/grpo/step_000004_*.table.json")
    table = json.loads(table.read_text())
    assert [dict(zip(table["columns"], row)) for row in table["data"]] == rollouts[6:]


def tracker(tmp_path, **logger) -> Tracker:
    config = {"run_dir": str(tmp_path), "logger": {"name": "none", "log_completions_steps": 1, "completions_rows": 4,
              "completions_max_mb": 1.0, **logger}}  # fmt: skip
    return Tracker(config, is_main=True)


def test_completions_jsonl_stops_growing_at_its_cap_and_says_so_once(tmp_path, capsys):
    row = {"prompt": "p", "completion": "x" * 1000, "reward": 0.0}
    t = tracker(tmp_path, completions_max_mb=0.01)  # 10485 bytes: 9 rows of about 1100 bytes
    for step in range(1, 4):
        t.log_table(f"completions/grpo/step_{step}", [row] * 4, "grpo", "rollout", "train", step)
    rows = read_completions(tmp_path)
    assert [r["step"] for r in rows] == [1] * 4 + [2] * 4 + [3] * 1, "rows up to the cap, none after it"
    assert (tmp_path / "completions.jsonl").stat().st_size <= 0.01 * 2**20
    said = capsys.readouterr().out.splitlines()
    assert said == ["[rlexp] completions.jsonl is full (logger.completions_max_mb=0.01): no more rows are written to it; "
                    "W&B, with logger=wandb, still gets every table"]  # fmt: skip


def test_a_table_has_at_most_completions_rows_per_split(tmp_path):
    results = {"id": {"success": 0.5}, "ood": {"success": 0.0}}
    samples = {"id": [{"prompt": str(i)} for i in range(10)], "ood": [{"prompt": "q"}]}
    tracker(tmp_path).log_evaluation(results, samples, "sft", "generalpoints")
    assert [(r["split"], r["prompt"]) for r in read_completions(tmp_path)] == [("id", "0"), ("id", "1"), ("id", "2"),
                                                                               ("id", "3"), ("ood", "q")]  # fmt: skip


def test_a_resumption_keeps_the_rows_before_its_checkpoint():
    rows = [{"stage": "sft", "step": 1, "kind": "rollout"}, {"stage": "sft", "step": 1, "kind": "eval"},
            {"stage": "grpo", "step": 2, "kind": "rollout"}, {"stage": "grpo", "step": 3, "kind": "rollout"},
            {"stage": "grpo", "step": 3, "kind": "eval"}]  # fmt: skip
    progress = {"trained": {"sft": 1}, "results": {"sft": {}}}
    kept = kept_metrics(rows, progress, "grpo", 2, lambda row: row["kind"] == "eval")
    assert kept == rows[:3]


def test_the_config_is_flattened_so_each_override_is_a_column():
    config = {"seed": 0, "algo": {"name": "grpo", "trl": {}, "k": [1, 4]}, "prepare": {"sft": {"max_steps": 2}}}
    assert flat_config(config) == {"seed": 0, "algo.name": "grpo", "algo.trl": {}, "algo.k": [1, 4], "prepare.sft.max_steps": 2}


def test_the_progress_bar_counts_every_stage_and_estimates_the_time_left(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("rlexp.progress.time.time", lambda: now[0])
    out = io.StringIO()
    bar = RunProgress([("sft", 10), ("grpo", 5)], trained={}, evaluations=3, file=out)
    assert (bar.bar.total, bar.bar.n) == (15, 0) and bar.time_left() == "time left: after the first step"
    with bar.evaluation("init"):
        now[0] += 30.0
    bar.stage_begins("sft", 10, 0)
    now[0] += 2.0
    bar.step_ends(1)  # 2 s a step: 14 steps and 2 evaluations of 30 s left
    assert bar.time_left() == "~88 s left"
    assert "run: stage 1/2 sft" in out.getvalue()
    # a resumption: sft done in 8 steps, grpo from its step 2 of 5
    bar = RunProgress([("sft", 10), ("grpo", 5)], trained={"sft": 8}, evaluations=1, file=io.StringIO())
    bar.stage_begins("grpo", 5, 2)
    assert (bar.bar.total, bar.bar.n) == (13, 10)
    now[0] += 3.0
    bar.step_ends(3)
    assert bar.time_left() == "~6 s left + 1 evaluation(s)", "no evaluation measured yet"
