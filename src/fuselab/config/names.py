"""Names that become folders (experiment, sweep, study, part) stay one folder inside their output
directory: a name with a path separator, ``..`` or a leading ``~`` is refused, naming the setting."""

from __future__ import annotations

from collections.abc import Sequence

from fuselab.errors import ConfigError

# settings whose value is a folder name under paths.log_dir
PATH_NAMES = ("experiment_name", "sweep_name")


def check_name(value: object, setting: str) -> str:
    """``value`` as a single folder name; :class:`ConfigError` naming ``setting`` otherwise."""
    name = str(value)
    bad = (
        not name
        or name in (".", "..")
        or any(c in name for c in ("/", "\\", "\0"))
        or name.startswith("~")
        or name != name.strip()
    )
    if bad:
        raise ConfigError(
            f"{setting}={name!r} is not a folder name: it must stay inside the output directory "
            f"(no '/', '\\', '..', leading '~' or surrounding spaces), e.g. {setting}=my_ablation"
        )
    return name


def check_override_names(overrides: Sequence[str]) -> None:
    """The command line's ``experiment_name=``/``sweep_name=`` values (each choice of a sweep),
    checked before Hydra creates a directory from them."""
    for override in overrides:
        key, sep, value = override.lstrip("+~").partition("=")
        unset = value.lower() in ("null", "none") or (value == "" and key == "sweep_name")  # sweep_name: optional
        if not sep or key not in PATH_NAMES or unset:
            continue
        for choice in value.split(",") if not value.startswith(("[", "{")) else [value]:
            check_name(choice, key)
