"""Every key of a config node with a ``_target_`` is a parameter its class takes.

Hydra calls ``cls(**node)``: a key the class does not take (``+fusion.bogus=1``, a setting of
another fusion level, a misspelt ``rnn.hiden_size``) otherwise fails as a ``TypeError`` traceback
after the data is prepared. :func:`check_node_keys` refuses it before anything is built, naming the
node, the key and the keys the class does take. A class whose ``__init__`` takes ``**kwargs`` is
followed up its bases while they are fuselab's (their ``__init__`` receives what it passes on); a
class that hands ``**kwargs`` to code outside fuselab takes any key, and is not checked.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator

from omegaconf import DictConfig

from fuselab.errors import ConfigError

NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
# the nodes built with Hydra's instantiate, by dotted key (callbacks and loggers: every entry)
NODES = (
    "data",
    "fusion",
    "fusion.operator",
    "rnn",
    "model.encoders",
    "model.head",
    "model.loss",
    "model.optimizer",
    "model.scheduler",
    "trainer",
    "decoder",
)
GROUPS = ("callbacks", "logger")


def accepted_keys(cls: type) -> set[str] | None:
    """The keyword parameters ``cls(...)`` takes, or None when it takes any."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            params = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            return None  # a builtin's signature: not checked
        names |= {p.name for p in params if p.kind in NAMED}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return names
        if not klass.__module__.startswith("fuselab"):
            return None
    return None


def _nodes(cfg: DictConfig) -> Iterator[tuple[str, DictConfig]]:
    for key in NODES:
        node = cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, DictConfig) else None
        if isinstance(node, DictConfig) and "_target_" in node:
            yield key, node
    for group in GROUPS:
        entries = cfg.get(group)
        if isinstance(entries, DictConfig):
            for name, node in entries.items():
                if isinstance(node, DictConfig) and "_target_" in node:
                    yield f"{group}.{name}", node


def check_node_keys(cfg: DictConfig) -> None:
    """Refuse the first key of a built node that its class does not take (see the module doc)."""
    from hydra.utils import get_class

    for where, node in _nodes(cfg):
        try:
            cls = get_class(str(node._target_))
        except Exception:  # noqa: BLE001 - instantiate names a target that does not resolve
            continue
        accepted = accepted_keys(cls)
        if accepted is None:
            continue
        for key in node:
            if str(key).startswith("_") or key in accepted:
                continue
            close = difflib.get_close_matches(str(key), sorted(accepted), n=1)
            hint = f"did you mean {where}.{close[0]}? " if close else ""
            takes = f"it takes {sorted(accepted)}" if len(accepted) <= 16 else f"see {cls.__module__}.{cls.__name__}"
            raise ConfigError(
                f"{where}.{key}: {cls.__name__} ({where}) takes no setting '{key}'; {hint}"
                f"{takes}. Drop the key (or pick the {where.split('.')[0]} that has it)"
            )
