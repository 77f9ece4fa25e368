"""Running a study: every part's data files checked first, then each part's sweep, one after the
other (the same command resumes: finished jobs are skipped)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from fuselab.errors import ConfigError
from fuselab.reports.studies.spec import Part, Study, merge_overrides, scoped_overrides

console = Console()


def sweep_command(study: Study, outputs: Path, extra: Sequence[str] = (), part: Part | None = None) -> list[str]:
    """One part's sweep (the first part when none is named); ``extra`` replaces same-key entries."""
    part = part or study.parts[0]
    overrides = merge_overrides(part.overrides, scoped_overrides(study, extra, part))
    return [
        sys.executable,
        "-m",
        "fuselab.cli.train",
        "-m",
        *overrides,
        f"experiment_name={study.name}",
        f"sweep_name={part.name}",
        f"paths.log_dir={outputs / 'studies'}",
    ]


def select_parts(study: Study, only: Sequence[str] = ()) -> list[Part]:
    parts = study.parts
    unknown = sorted(set(only) - {p.name for p in parts})
    if unknown:
        raise ConfigError(f"study '{study.name}' has no part {unknown}; its parts: {[p.name for p in parts]}")
    return [p for p in parts if not only or p.name in only]


DATA_FILES = ("path", "data_dir")


def _first_choice(override: str) -> str:
    key, _, value = override.partition("=")
    if "," in value and not value.startswith(("[", "{")):
        value = value.split(",")[0]
    return f"{key}={value}"


def preflight(study: Study, parts: Sequence[Part], extra: Sequence[str] = ()) -> list[str]:
    """The data files every part reads, checked before anything runs: each data choice of each
    part is composed (with the extra overrides) and its ``path``/``data_dir`` must be set and exist."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    problems = []
    with initialize_config_module(config_module="fuselab.conf", version_base="1.3"):
        for part in parts:
            overrides = merge_overrides(part.overrides, scoped_overrides(study, extra, part))
            choices = next((o.split("=", 1)[1].split(",") for o in overrides if o.startswith("data=")), [None])
            data_keys = [_first_choice(o) for o in overrides if o.startswith("data.")]
            for choice in choices:
                cfg = compose(config_name="train", overrides=[f"data={choice}"] * bool(choice) + data_keys)
                raw = OmegaConf.to_container(cfg.data, resolve=False)
                for key in DATA_FILES:
                    if key not in raw:
                        continue
                    value = cfg.data[key]
                    where = f"part '{part.name}', data={choice or cfg.data.get('_target_')}"
                    if value in (None, ""):
                        env = re.search(r"oc\.env:(\w+)", str(raw[key]))
                        how = f"export {env.group(1)}=<file>" if env else f"pass {part.name}:data.{key}=<file>"
                        problems.append(f"{where}: data.{key} is not set ({how})")
                    elif not Path(str(value)).expanduser().exists():
                        problems.append(f"{where}: data.{key}={value} does not exist")
    return problems


def run_study(study: Study, outputs: Path, extra: Sequence[str] = (), only: Sequence[str] = ()) -> int:
    """Runs the parts one after the other; a failing part does not stop the others. The data
    every part needs is checked first, so a missing file stops the study before any training."""
    selected = select_parts(study, only)
    commands = [(part, sweep_command(study, outputs, extra, part)) for part in selected]  # errors before any run
    problems = preflight(study, selected, extra)
    if problems:
        need = f" It needs: {study.spec['requires']}." if study.spec.get("requires") else ""
        raise ConfigError(f"study '{study.name}' cannot run yet.{need}\n  " + "\n  ".join(problems))
    codes = {}
    for part, cmd in commands:
        console.print(
            f"[bold]{study.name} / {part.name}[/]: " + escape(" ".join(cmd[1:])), soft_wrap=True, highlight=False
        )
        codes[part.name] = subprocess.call(cmd)
    failed = [name for name, rc in codes.items() if rc != 0]
    if failed:
        console.print(f"[bold red]parts that exited non-zero:[/] {failed} (run the same command again to resume)")
    return next((codes[name] for name in failed), 0)
