"""A study's ``study.yaml``: its parts (sweeps) and their overrides.

A study is a folder ``experiments/NAME/`` with a README (question, protocol, sources) and
``study.yaml``::

    name, question, metric (e.g. test/acc), axes (the settings a cell is grouped by)
    sweep: [override, ...]            # the fuselab-train -m arguments (shared by every part)
    parts:                            # optional: several sweeps, each a cartesian product
      aligned:                        # a list of overrides (block style: flow lists split on commas)
        - data=mosi,mosei
        - fusion=early,late
      unaligned: {sweep: ["data=mosi_unaligned", "fusion=late"], metric: test/acc2}
    requires: text                    # data a user must provide (null: runs anywhere)
    reproduce_tolerance: 0.02         # how far a re-run's group means may move from results.json
    reference:
      source: citation of the numbers
      cells:
        - where: {fusion: early, data.interaction: synergy}   # any setting, or part: NAME
          metric: test/acc            # default: the study's metric
          value: 0.732 / tolerance: 0.02    # a published number: agree when |measured - value| <= tolerance
          min: 0.65 / max: 0.40             # or a known answer: agree when inside the bounds
          above: [{data.modalities: "[audio]"}]  # or beat (below: stay under) other groups of the study, by margin
          citation: ..., checked: true|false  (false: not verified against the paper itself)

A part's override replaces a shared one with the same key. Without ``parts`` the study is one
sweep named ``runs``. Measured cells are mean ± std (ddof=1) over the runs that match ``where``
(seeds, and any axis not named).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fuselab.config.names import check_name
from fuselab.errors import ConfigError

PART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass
class Part:
    name: str
    overrides: list[str]
    metric: str


@dataclass
class Study:
    root: Path
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def metric(self) -> str:
        return str(self.spec.get("metric", "test/acc"))

    @property
    def parts(self) -> list[Part]:
        shared = list(self.spec.get("sweep") or [])
        declared = self.spec.get("parts")
        if not declared:
            return [Part("runs", shared, self.metric)]
        out = []
        for name, body in declared.items():
            if isinstance(body, dict):
                own, metric = (
                    list(body.get("sweep") or []),
                    str(body.get("metric", self.metric)),
                )
            else:
                own, metric = list(body or []), self.metric
            out.append(Part(str(name), merge_overrides(shared, own), metric))
        return out

    def runs_root(self, outputs: Path) -> Path:
        return outputs / "studies" / self.name / "multiruns"

    def part_dir(self, outputs: Path, part: Part) -> Path:
        return self.runs_root(outputs) / part.name


def load_study(name: str, experiments: Path) -> Study:
    check_name(name, "study")
    folder = experiments / name
    path = folder / "study.yaml"
    if not path.is_file():
        known = sorted(p.parent.name for p in experiments.glob("*/study.yaml"))
        raise ConfigError(f"no study '{name}' in {experiments} (it has: {known})")
    spec = yaml.safe_load(path.read_text())
    for key in ("name", "metric"):
        if key not in spec:
            raise ConfigError(f"{path} has no '{key}'")
    try:
        check_name(spec["name"], "name")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if "sweep" not in spec and not spec.get("parts"):
        raise ConfigError(f"{path} has neither 'sweep' nor 'parts'")
    parts = spec.get("parts") or {}
    if not isinstance(parts, dict):
        raise ConfigError(
            f"{path}: 'parts' must map a name to a list of overrides, e.g. parts: {{aligned: [data=mosi]}}"
        )
    for part in parts:
        if not PART_NAME.match(str(part)) or part == "attempts":
            raise ConfigError(f"{path}: part name {part!r} must be letters, digits, '_' or '-' (it names a folder)")
    study = Study(folder, spec)
    for part in study.parts:
        bad = [o for o in part.overrides if not isinstance(o, str) or ("=" not in o and not o.startswith("~"))]
        if bad:
            raise ConfigError(
                f"{path}: part '{part.name}' has entries that are not overrides: {bad}. A YAML flow "
                "list ([a=1,2, b=3]) splits at every comma: write one override per line instead"
            )
    return study


def expected_jobs(overrides: Sequence[str]) -> int | None:
    """How many jobs a sweep of ``overrides`` launches (the product of its swept choices), or None
    when Hydra cannot tell without running it (e.g. a sweeper's search space)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # noqa: BLE001 - an override Hydra cannot parse fails at run time, not here
        return None
    total, last = 1, {}
    for o in parsed:
        if o.is_sweep_override():
            try:
                last[o.key_or_group] = len(list(o.sweep_string_iterator()))
            except Exception:  # noqa: BLE001 - interval sweeps have no count
                return None
        else:
            last.pop(o.key_or_group, None)
    for n in last.values():
        total *= n
    return total


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(base: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``base`` then ``extra``, where an entry of ``extra`` replaces base's entry for the same key."""
    replaced = {_key(o) for o in extra}
    return [o for o in base if _key(o) not in replaced] + list(extra)


def scoped_overrides(study: Study, extra: Sequence[str], part: Part) -> list[str]:
    """The extra overrides that apply to ``part``: plain ones apply to every part, ``PART:key=value``
    only to that part (e.g. ``mmimdb:data.split_ends=[40,50,60]``)."""
    names = {p.name for p in study.parts}
    out = []
    for o in extra:
        scope, sep, rest = o.partition(":")
        if sep and "=" not in scope and scope in names:
            if scope == part.name:
                out.append(rest)
        elif sep and "=" not in scope and not scope.startswith(("+", "~")) and "." not in scope:
            raise ConfigError(
                f"override {o!r} names part {scope!r}, but study '{study.name}' has parts {sorted(names)}"
            )
        else:
            out.append(o)
    return out
