# Two commands a fresh machine needs: `make train` and `make test`.
# Each creates .venv if missing and installs fuselab into it first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fuselab-installed
# Where torch comes from. Empty: pip's defaults (on the dev machines a local CPU wheel).
# Elsewhere e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu for a CPU-only build.
TORCH_INDEX ?=
ARGS ?=

export WANDB_MODE ?= offline
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: install train test test-fast lint clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "torch>=2.3,<=2.13.0" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e ".[dev,audio,text,pretrained]"
	@touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(BIN)/fuselab-train $(ARGS)

# ruff first: CI runs `make test`, so lint findings fail CI too
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: lint
	$(BIN)/python -m pytest -q $(ARGS)

test-fast: lint
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

clean-venv:
	rm -rf $(VENV)
