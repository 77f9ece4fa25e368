"""The package ships its configs and lists every subpackage."""

from __future__ import annotations

import zipfile
from importlib.resources import files
from pathlib import Path

import pytest
import tomllib
from conftest import REPO, run_cli


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO / "src").parts) for p in (REPO / "src").rglob("__init__.py")} | {
        "fuselab.conf"
    }
    assert found == listed


def test_configs_are_importable_as_package_resources():
    root = files("fuselab.conf")
    assert root.joinpath("train.yaml").is_file()
    assert root.joinpath("data", "synthetic.yaml").is_file()


@pytest.mark.slow
def test_wheel_contains_every_config(tmp_path: Path):
    result = run_cli(
        ["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    wheel = next(tmp_path.glob("fuselab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for yaml in (REPO / "conf").rglob("*.yaml"):
        assert "fuselab/conf/" + yaml.relative_to(REPO / "conf").as_posix() in names


def test_module_entry_point_prints_help(tmp_path: Path):
    result = run_cli(["-m", "fuselab.cli.train", "--help"], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "fusion: conditioned, crossmodal, early, feature, hybrid, late" in result.stdout
