# make test   set up .venv if needed, then run the test suite (offline)
# make demo   set up .venv if needed, then SFT -> GRPO -> ID/OOD eval on the tiny model (CPU, ~5 min)
PYTHON ?= python3
# a user with GPUs installs their own torch into .venv first; then this is skipped
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-rlexp

.PHONY: setup test demo clean

setup: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(BIN)/python -m pytest -ra

demo: $(STAMP)
	HF_HUB_OFFLINE=1 WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/python -m rlexp experiment=demo

clean:
	rm -rf $(VENV) runs .pytest_cache
