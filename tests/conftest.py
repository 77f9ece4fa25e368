"""Shared fixtures: offline environment, a per-session dataset cache, config composition."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")

from hydra import compose, initialize_config_module  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# A small synthetic set that trains in seconds.
SMALL_DATA = ["data.train_size=256", "data.val_size=64", "data.test_size=64", "data.batch_size=32"]
FAST = ["debug=fast"]


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuselab-cache")
    os.environ["FUSELAB_CACHE_DIR"] = str(path)
    return path


def compose_train(overrides: list[str], output_dir: Path | None = None, config_name: str = "train") -> DictConfig:
    with initialize_config_module(config_module="fuselab.conf", version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    return cfg


@pytest.fixture
def compose_cfg(tmp_path: Path):
    def _compose(*overrides: str, config_name: str = "train") -> DictConfig:
        return compose_train(list(overrides), output_dir=tmp_path / "run", config_name=config_name)

    return _compose


def run_cli(args: list[str], cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a fuselab command in a fresh interpreter (as a user would), capturing its output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "FUSELAB_OUTPUTS": str(cwd / "outputs"), **(env or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )
