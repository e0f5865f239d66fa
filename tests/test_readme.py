"""The README's own environment example works as printed."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT, THREADS

README = (ROOT / "README.md").read_text()


def block(first_line: str, language: str) -> str:
    """The README's fenced `language` block whose first line is `first_line`."""
    for body in re.findall(rf"```{language}\n(.*?)```", README, flags=re.S):
        if body.splitlines()[0] == first_line:
            return body
    raise AssertionError(f"README has no {language} block opening with {first_line!r}")


def test_the_example_yaml_names_its_schema_and_opens_with_a_command():
    text = block("# conf/env/reverse.yaml", "yaml")
    assert text.splitlines()[1].startswith("# python -m rlexp") and "env=reverse" in text.splitlines()[1]
    assert yaml.safe_load(text) == {"defaults": ["/schema/env/reverse@_here_", "_self_"], "name": "reverse"}


def test_the_example_environment_trains_and_evaluates(tmp_path):
    """In a subprocess (the example registers a name): the Env contract, then SFT for 2 steps and an
    evaluation through the worker, as `python -m rlexp algo=sft env=reverse` would run them."""
    module = tmp_path / "reverse.py"
    module.write_text(block("# rlexp/envs/reverse.py", "python"))
    check = f"""
import importlib.util, json, sys, torch
torch.set_num_threads({THREADS})
spec = importlib.util.spec_from_file_location("reverse", {str(module)!r})
spec.loader.exec_module(importlib.util.module_from_spec(spec))
import rlexp.envs
env = rlexp.envs.make("reverse", length=4, eval_size=4)
row = env.dataset("test")[0]
assert env.score(row["word"][::-1], row).success and env.score("", row).reward == 0.0
assert env.score("x" * 10**6, row).feedback
assert env.demonstrations("train")[0]["messages"][1]["content"] == env.dataset("train")[0]["word"][::-1]
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict
from rlexp.__main__ import CONF_DIR
from rlexp.config import register_schemas
from rlexp.worker import run
register_schemas()
with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
    cfg = compose(config_name="config", overrides=["algo=sft", "algo.max_steps=2", "logger=none", "model.hidden_size=32",
        "model.num_layers=2", "model.num_heads=2", "model.intermediate_size=64", "eval.num_prompts=4", "eval.num_samples=2",
        "eval.k=[1,2]", "eval.max_new_tokens=8", "precision=fp32"])
with open_dict(cfg):
    cfg.env = {{"name": "reverse", "length": 4, "eval_size": 4}}
    cfg.run_dir = {str(tmp_path / "run")!r}
summary = run(cfg)
print(json.dumps(summary["results"]["sft"]["test"]))
"""
    (tmp_path / "run").mkdir()
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["n_prompts"] == 4 and results["n_samples"] == 2 and 0 <= results["pass@1"] <= results["pass@2"] <= 1
