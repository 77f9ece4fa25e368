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

# The suite on TEST_WORKERS processes (pytest-xdist; 0: one process), a file per worker at a time
# (the SLURM tests share one cluster), one torch thread each so the workers do not fight for cores.
TEST_WORKERS ?= 2
PYTEST := OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: lint
	$(PYTEST) $(ARGS)

test-fast: lint
	$(PYTEST) -m "not slow" $(ARGS)

clean-venv:
	rm -rf $(VENV)
