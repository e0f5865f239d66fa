# make test   set up .venv if needed, then run the test suite (offline)
# make test-fast  the same, unit tests only (in-process, no CLI runs): the inner loop
# make lint   ruff: the format and the lint rules of pyproject.toml (make test runs it first)
# make demo   set up .venv if needed, then SFT -> GRPO -> ID/OOD eval on the tiny model (CPU, ~5 min)
# make bench  set up .venv if needed, then the benchmarks in scripts/ (ratios against a baseline run beside them)
PYTHON ?= python3
# a user with GPUs installs their own torch into .venv first; then this is skipped
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-rlexp

.PHONY: setup sandbox-tools lint test test-fast demo bench clean

setup: $(STAMP) sandbox-tools

# bubblewrap gives the code sandbox its file-system isolation; optional, so a failure here only prints a note
sandbox-tools:
	@command -v bwrap >/dev/null || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  (apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1)) || true
	@command -v bwrap >/dev/null || echo "note: bubblewrap is not installed; the code sandbox runs without file-system isolation (see README)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[test]"
	touch $(STAMP)

lint: setup
	$(BIN)/ruff format --check rlexp scripts tests
	$(BIN)/ruff check rlexp scripts tests

test: setup lint
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(BIN)/python -m pytest -ra -n 2 --dist loadgroup

test-fast: setup
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(BIN)/python -m pytest -ra -m unit

demo: setup
	HF_HUB_OFFLINE=1 WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/python -m rlexp experiment=demo

bench: setup
	for script in scripts/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
