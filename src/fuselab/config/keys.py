"""An override of a setting that does not exist (``rnn.hiden_size=3``), refused before Hydra
starts, with the setting it most likely meant. Hydra's own answer is several lines ending in
the advice to append the key with ``+``, which turns the typo into a new key that fails later.

The command line's group choices are composed (a sweep's first option of each) and every dotted
``key=value`` without ``+``/``~`` is looked up in the result. Anything this cannot compose is
left to Hydra, which reports it its own way."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

from fuselab.errors import ConfigError


def _first(value: str) -> str:
    """A sweep's first option (``late,early`` -> ``late``); a single value as it is."""
    if value.startswith(("[", "{", "'", '"')) or "(" in value:
        return value
    return value.split(",")[0]


def check_override_keys(args: Sequence[str], config_name: str) -> None:
    """Raise :class:`ConfigError` for the first dotted override whose key the composed config
    does not have."""
    dotted, choices = [], []
    for arg in args:
        key, eq, value = arg.partition("=")
        bare = key.lstrip("+~")
        if not eq or arg.startswith("-") or bare.startswith("hydra"):
            continue  # flags (-m, --multirun), Hydra's own settings
        if "." in bare:
            if not arg.startswith(("+", "~")):
                dotted.append(bare)
        elif not arg.startswith("~"):
            choices.append(f"{key}={_first(value)}")
    if not dotted:
        return
    cfg = _compose(config_name, choices)
    if cfg is None:
        return
    for key in dotted:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
        if not isinstance(node, DictConfig) or leaf in node:
            continue  # a list index, a value node or a key that exists: Hydra takes it
        known = sorted(str(k) for k in node.keys() if not str(k).startswith("_"))
        close = difflib.get_close_matches(leaf, known, n=1)
        guess = f"; did you mean {parent}.{close[0]}?" if close else "."
        raise ConfigError(
            f"{key}: {parent or 'the config'} has no setting {leaf!r}{guess} Its settings: {known[:20]}. "
            f"(A key that is new on purpose takes a leading +: +{key}=...)"
        )


def _compose(config_name: str, overrides: list[str]) -> DictConfig | None:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return None  # inside a Hydra app (tests, a sweep job): composing here would clash
    try:
        with initialize_config_module(config_module="fuselab.conf", version_base="1.3"):
            return compose(config_name=config_name, overrides=overrides)
    except Exception:  # noqa: BLE001 - whatever Hydra cannot compose, Hydra reports itself
        return None
