"""A setting that does not exist is refused before Hydra starts, naming the one it most likely meant."""

from __future__ import annotations

import pytest

from fuselab.config.keys import check_override_keys
from fuselab.errors import ConfigError


@pytest.mark.parametrize(
    "args,message",
    [
        (["rnn.hiden_size=3"], r"rnn.hiden_size: rnn has no setting 'hiden_size'; did you mean rnn.hidden_size\?"),
        (["data=hf", "data.sourc=x"], r"data.sourc: data has no setting 'sourc'; did you mean data.source\?"),
        (["-m", "fusion=early,late", "model.optimizer.lrr=0.1"], r"did you mean model.optimizer.lr\?"),
        (["fusion=late", "fusion.zzz=1"], r"fusion.zzz: fusion has no setting 'zzz'\. Its settings: \['combine'\]"),
    ],
)
def test_a_mistyped_setting_is_refused_with_the_setting_it_meant(args, message):
    with pytest.raises(ConfigError, match=message):
        check_override_keys(args, "train")


def test_settings_that_exist_new_keys_sweeps_and_hydras_own_are_left_alone():
    check_override_keys(["rnn.hidden_size=3", "-m", "rnn.hidden_size=8,16", "fusion=early,late"], "train")
    check_override_keys(["+rnn.extra=1", "~logger", "hydra.job.chdir=true", "hydra/launcher=joblib"], "train")
    check_override_keys(["experiment=raw_files", "data.source=x", "data.columns.photo.size=32"], "train")
    check_override_keys(["ckpt_path=x.ckpt", "trainer.devices=1"], "eval")
