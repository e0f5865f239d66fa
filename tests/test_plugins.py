"""A researcher's own package of an algorithm and an environment (the README's example, built from
its code blocks), run through the real CLI with `plugins=[...]`: nothing in rlexp is edited."""

import json
import re

import pytest
import yaml
from conftest import ROOT, SMALL, run_cli

from rlexp.tracking import read_metrics

README = (ROOT / "README.md").read_text()
FILES = ["myplug/__init__.py", "myplug/reverse.py", "myplug/sft_smoothed.py",
         "myplug/conf/env/reverse.yaml", "myplug/conf/algo/sft_smoothed.yaml"]  # fmt: skip


def readme_block(path: str) -> str:
    """The README's fenced block whose first line is `# <path>`."""
    for body in re.findall(r"```(?:python|yaml)\n(.*?)```", README, flags=re.S):
        if body.splitlines()[0] == f"# {path}":
            return body
    raise AssertionError(f"README has no code block for {path}")


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    for path in FILES:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(readme_block(path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return tmp_path


def test_the_example_yamls_name_their_schema_and_open_with_a_command():
    for path, group, name in [
        ("myplug/conf/env/reverse.yaml", "env", "reverse"),
        ("myplug/conf/algo/sft_smoothed.yaml", "algo", "sft_smoothed"),
    ]:
        lines = readme_block(path).splitlines()
        assert lines[1].startswith("# python -m rlexp plugins=[myplug]") and f"{group}={name}" in lines[1]
        assert yaml.safe_load(readme_block(path)) == {"defaults": [f"/schema/{group}/{name}@_here_", "_self_"], "name": name}


@pytest.mark.parametrize("algo,algo_args", [
    ("sft_smoothed", []),
    ("grpo", ["algo.max_completion_length=8", "algo.num_generations=2"]),
])  # fmt: skip
def test_a_plugin_algorithm_and_environment_train_two_steps(plugin, tmp_path, algo, algo_args):
    run_dir = tmp_path / "run"
    done = run_cli("plugins=[myplug]", f"algo={algo}", "env=reverse", "env.length=4", "env.eval_size=4", *SMALL, *algo_args,
                   "algo.max_steps=2", "algo.per_device_train_batch_size=4", "eval.max_new_tokens=8", "eval.before=false",
                   run_dir=run_dir)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    trained = [r for r in read_metrics(run_dir) if "loss" in r and "train_runtime" not in r]
    assert [(r["stage"], r["step"]) for r in trained] == [(algo, 1), (algo, 2)]
    results = json.loads((run_dir / "summary.json").read_text())["results"][algo]["test"]
    assert results["n_prompts"] == 4 and 0 <= results["pass@1"] <= results["pass@2"] <= 1
    if algo == "sft_smoothed":  # the plugin's own field reached the run, and its schema is checked
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["algo"]["label_smoothing_factor"] == 0.1
        done = run_cli("plugins=[myplug]", "algo=sft_smoothed", "algo.label_smoothing=0.2")
        assert done.returncode == 2 and "did you mean algo.label_smoothing_factor?" in done.stderr


def test_a_plugin_that_does_not_import_is_one_line(plugin):
    done = run_cli("plugins=[nope_not_a_package]")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "rlexp: error: plugins: cannot import 'nope_not_a_package' "
        "(No module named 'nope_not_a_package'); is its package on PYTHONPATH or installed?"
    ]


def test_a_plugin_that_reuses_a_name_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "dupplug").mkdir()
    (tmp_path / "dupplug" / "__init__.py").write_text(
        "from rlexp.algos import register\nfrom rlexp.algos.grpo import GRPO\n\nregister('grpo')(GRPO)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    done = run_cli("plugins=[dupplug]")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith(
        "rlexp: error: plugins: importing 'dupplug' failed: ValueError: algorithm 'grpo' is registered twice"
    )
