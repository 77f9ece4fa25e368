"""DDP inside a multirun replaces a Lightning internal: fail loudly if a release removes it, and
refuse ``strategy=ddp`` with the way out rather than re-launching the whole sweep."""

from __future__ import annotations

import pytest
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers import subprocess_script

from fuselab.runs import distributed
from fuselab.runs.distributed import JobDDPStrategy, check_internals, resolve_strategy


def test_the_lightning_internals_the_job_launcher_replaces_still_exist():
    assert hasattr(subprocess_script, "_hydra_subprocess_cmd"), "update fuselab/runs/distributed.py"
    assert hasattr(subprocess_script._SubprocessScriptLauncher, "_call_children_scripts")
    assert hasattr(DDPStrategy, "_configure_launcher")
    check_internals()


def test_ddp_becomes_the_job_strategy_and_others_pass_through():
    assert isinstance(resolve_strategy("ddp"), JobDDPStrategy)
    assert resolve_strategy("ddp_spawn") == "ddp_spawn" and resolve_strategy("auto") == "auto"


def test_a_lightning_without_them_is_refused_with_the_way_out(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delattr(distributed.subprocess_script, "_hydra_subprocess_cmd")
    with pytest.raises(RuntimeError, match="no longer has .*_hydra_subprocess_cmd.*ddp_spawn"):
        resolve_strategy("ddp")


def test_the_job_command_reruns_only_this_job(monkeypatch: pytest.MonkeyPatch):
    class FakeHydra:
        class overrides:  # noqa: N801 - mimics HydraConfig's node names
            task = ["fusion=late", "seed=3"]

        class runtime:  # noqa: N801
            output_dir = "/out/multiruns/s/0-abc"
            cwd = "/work"

    import hydra.core.hydra_config as hc

    monkeypatch.setattr(hc.HydraConfig, "get", staticmethod(lambda: FakeHydra))
    command, cwd = distributed.job_command(1)
    assert command[1:5] == ["-m", "fuselab.cli.train", "fusion=late", "seed=3"]
    assert 'hydra.run.dir="/out/multiruns/s/0-abc"' in command and "-m" not in command[3:] and cwd == "/work"
