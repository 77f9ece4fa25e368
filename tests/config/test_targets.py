"""The allowlist a stored config (a checkpoint's) is checked against before anything is built."""

from __future__ import annotations

import pytest

from fuselab.config.targets import check_targets, resolve_allowed
from fuselab.errors import ConfigError


@pytest.mark.parametrize(
    "target",
    [
        "fuselab.models.fusion.EarlyFusion",  # re-exported by its package
        "fuselab.models.recurrent.RecurrentEncoder",
        "fuselab.data.datasets.synthetic.SyntheticDataModule",
        "torch.optim.Adam",
        "torch.optim.lr_scheduler.CosineAnnealingLR",
        "torch.optim.lr_scheduler.ReduceLROnPlateau",
    ],
)
def test_fuselab_classes_and_torch_optimizers_are_allowed(target: str):
    assert isinstance(resolve_allowed(target), type)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("os.system", "outside fuselab and torch.optim"),
        ("subprocess.Popen", "outside fuselab and torch.optim"),
        ("builtins.exec", "outside fuselab and torch.optim"),
        ("torch.load", "outside fuselab and torch.optim"),
        ("fuselabx.thing.Cls", "outside fuselab and torch.optim"),
        # an allowed module's attribute that leads out of the allowed packages
        ("fuselab.data.datasets.hf.np.load", "reaches into numpy"),
        ("fuselab.data.datasets.hf.datasets.load_dataset", "reaches into datasets"),
        ("fuselab.config.targets.importlib.import_module", "reaches into importlib"),
        # a class another package defines, imported into a fuselab module
        ("fuselab.data.files.Path", "pathlib"),
        # torch.optim's own helpers that are not optimizers or schedulers
        ("torch.optim.lr_scheduler.warnings.warn", "reaches into warnings"),
        # functions and methods of fuselab are not classes
        ("fuselab.config.targets.check_targets", "is not a class"),
        ("fuselab.models.recurrent.RecurrentEncoder.forward", "is not a class"),
        ("fuselab.models.recurrent.RecurrentEncoder.__init__", "is not a class"),
        ("fuselab.no_such_module.Cls", "no_such_module does not exist"),
        ("fuselab.models.recurrent.NoSuchClass", "does not exist"),
        ("not a name", "is not a dotted class name"),
        (["os.system"], "is not a dotted class name"),
    ],
)
def test_anything_else_is_refused(target, reason: str):
    with pytest.raises(ConfigError, match=reason):
        resolve_allowed(target)


def test_the_walk_names_the_key_and_goes_into_lists():
    config = {
        "model": {"encoders": {"_target_": "fuselab.models.encoders.EncoderFactory"}},
        "data": {"columns": [{"x": 1}, {"reader": {"_target_": "shutil.rmtree", "_args_": ["/"]}}]},
    }
    with pytest.raises(ConfigError, match=r"ckpt_path=x: its stored config sets data.columns\[1\].reader._target_"):
        check_targets(config, "ckpt_path=x")


def test_interpolations_are_refused():
    with pytest.raises(ConfigError, match=r"interpolation at data.cache_dir"):
        check_targets({"data": {"cache_dir": "${oc.env:HOME}"}}, "ckpt_path=x")


def test_trusted_packages_are_the_users_choice():
    with pytest.raises(ConfigError):
        resolve_allowed("json.JSONDecoder")
    assert resolve_allowed("json.JSONDecoder", trusted=["json"]).__name__ == "JSONDecoder"


def test_a_stored_target_of_a_moved_data_module_is_renamed_before_it_is_checked():
    from fuselab.training.evaluate import stored_config

    old = {
        "data": {"_target_": "fuselab.data.hf.HFDataModule", "columns": {"t": {"kind": "text"}}},
        "model": {"optimizer": {"_target_": "torch.optim.Adam", "lr": 0.1}},
    }
    kept = stored_config(old, "ckpt_path=x.ckpt")
    assert kept["data"]["_target_"] == "fuselab.data.datasets.hf.HFDataModule"
    assert kept["model"]["optimizer"]["_target_"] == "torch.optim.Adam"
    assert old["data"]["_target_"] == "fuselab.data.hf.HFDataModule"  # the caller's dict is not changed
