"""mode=discover: test-time SDPO beside best-of-k and multi-turn retry, on one checkpoint (rlexp/discover.py)."""

from __future__ import annotations

import torch

from rlexp import models
from rlexp.config import algo_from, structured
from rlexp.discover import discover
from rlexp.modes.base import Run
from rlexp.schema import DiscoverConfig


def main(run: Run) -> None:
    cfg = run.cfg
    model, tokenizer = models.load(run.model_cfg, cfg.checkpoint)
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    split = cfg.discover.split or (list(cfg.eval.splits) or run.env.eval_splits())[0]
    report = discover(model.to(device), tokenizer, run.env, algo_from(cfg.algo), structured(DiscoverConfig, cfg.discover),
                      run.run_dir, cfg.seed, split, cfg.precision, run.model_cfg)  # fmt: skip
    run.summary["discovery"] = report["discovery"]
