"""What a config from someone else may build: fuselab's own classes and torch's optimizers and
learning-rate schedulers, nothing else.

A checkpoint stores the config of its run, and ``fuselab-eval`` rebuilds the data module and the
model from it with Hydra's ``instantiate``, which imports and calls whatever a ``_target_`` names.
Hydra blocks only a few callables, so an edited checkpoint could name any function of the standard
library. :func:`check_targets` walks the whole stored config before anything is built and refuses
it, naming the key, unless every ``_target_`` resolves to an allowed class. Resolving imports only
modules inside the allowed packages; an attribute path that leaves them (``fuselab.data.datasets.hf.os.system``)
is refused, and so is anything that is not a class (a function, a method) and an interpolation
(``${...}``), which a stored, resolved config never holds.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

from fuselab.errors import ConfigError

# packages whose modules may be imported while resolving a stored ``_target_``
OWN = "fuselab"
TORCH_OPTIM = "torch.optim"
DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


def _inside(name: str, packages: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _torch_optim_class(obj: type) -> bool:
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

    return issubclass(obj, (Optimizer, LRScheduler, ReduceLROnPlateau))


def resolve_allowed(target: str, trusted: Sequence[str] = ()) -> type:
    """The class ``target`` names, importing nothing outside fuselab, ``torch.optim`` and the
    ``trusted`` package prefixes; :class:`ConfigError` (the reason, without the key) otherwise."""
    packages = (OWN, TORCH_OPTIM, *trusted)
    if not isinstance(target, str) or not DOTTED.fullmatch(target):
        raise ConfigError(f"{target!r} is not a dotted class name")
    if not _inside(target, packages):
        raise ConfigError(f"{target} is outside fuselab and torch.optim, the only code a stored config may name")
    parts = target.split(".")
    obj: Any = None
    for i in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:i])
        if not _inside(module_name, packages):
            break
        try:
            obj = importlib.import_module(module_name)
        except ImportError:
            continue
        rest = parts[i:]
        break
    if obj is None:
        raise ConfigError(f"{target} names no module of fuselab or torch.optim")
    for attr in rest:
        if isinstance(obj, ModuleType) and not _inside(obj.__name__, packages):
            raise ConfigError(f"{target} reaches into {obj.__name__}, outside fuselab and torch.optim")
        if not isinstance(obj, (ModuleType, type)) or attr.startswith("_"):
            raise ConfigError(f"{target} is not a class of fuselab or torch.optim")
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise ConfigError(f"{target}: {attr} does not exist") from None
    if not inspect.isclass(obj):
        raise ConfigError(f"{target} is not a class (a stored config may name classes only)")
    module = getattr(obj, "__module__", "") or ""
    if _inside(module, (OWN, *trusted)):
        return obj
    if _inside(module, (TORCH_OPTIM,)) and _torch_optim_class(obj):
        return obj
    raise ConfigError(f"{target} is {module}.{obj.__qualname__}, not a class of fuselab or a torch optimizer/scheduler")


def check_targets(config: Any, source: str, trusted: Sequence[str] = ()) -> None:
    """Refuse ``config`` (a plain container, as a checkpoint stores it) unless every ``_target_``
    in it, however deep, names an allowed class and no string holds an interpolation. ``source``
    names where the config came from (``ckpt_path=...``) in the one-line error. Nothing is called
    and only allowed packages are imported."""

    def walk(node: Any, key: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                path = f"{key}.{k}" if key else str(k)
                if k == "_target_":
                    try:
                        resolve_allowed(v, trusted)
                    except ConfigError as exc:
                        raise ConfigError(
                            f"{source}: its stored config sets {path}: {exc}; refusing to build it "
                            "(pass allow_targets=[<package>] only for code you trust)"
                        ) from None
                else:
                    walk(v, path)
        elif isinstance(node, (list, tuple)):
            for i, v in enumerate(node):
                walk(v, f"{key}[{i}]")
        elif isinstance(node, str) and "${" in node:
            raise ConfigError(
                f"{source}: its stored config holds an interpolation at {key} ({node[:60]!r}); a saved run config "
                "is stored resolved, so this file was edited: refusing to build it"
            )

    walk(config, "")
