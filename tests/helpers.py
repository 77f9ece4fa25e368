"""Random batches and models built the way fuselab builds them, for model tests; an offline
wandb run read back with wandb's own tool."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from conftest import compose_train

from fuselab.data.collate import PaddedCollate, present_column
from fuselab.data.specs import DataDescription, ModalitySpec, TargetSpec
from fuselab.models.build import build_model

SPECS = {
    "signal": ModalitySpec("signal", "sequence", (None, 8)),
    "tokens": ModalitySpec("tokens", "tokens", (None,), vocab_size=32),
    "image": ModalitySpec("image", "image", (1, 16, 16)),
    "vec": ModalitySpec("vec", "vector", (5,)),
}
TASK = TargetSpec("multiclass", 4)


def random_batch(
    specs: dict[str, ModalitySpec],
    lengths: list[int],
    seed: int = 0,
    aligned: bool = True,
    absent: dict[str, list[int]] | None = None,
) -> dict:
    rng = np.random.default_rng(seed)
    n = len(lengths)
    columns: dict = {"label": rng.integers(0, TASK.num_outputs, size=n)}
    for name, spec in specs.items():
        if spec.kind == "sequence":
            columns[name] = [
                rng.normal(size=(t if aligned else t + 1 + i, spec.shape[1])) for i, t in enumerate(lengths)
            ]
        elif spec.kind == "tokens":
            columns[name] = [rng.integers(0, spec.vocab_size, size=t) for t in lengths]
        else:
            columns[name] = rng.normal(size=(n, *spec.shape))
        if absent and name in absent:
            columns[present_column(name)] = [i not in absent[name] for i in range(n)]
    return PaddedCollate(specs, TASK)(columns)


def make_model(fusion_overrides: list[str], specs: dict[str, ModalitySpec], aligned: bool = True, cell: str = "gru"):
    cfg = compose_train([*fusion_overrides, f"rnn={cell}"])
    torch.manual_seed(0)
    return build_model(cfg, DataDescription(specs, TASK, aligned))


def wandb_records(run_dir: Path) -> tuple[dict, list[dict]]:
    """(the run's state as `wandb leet inspect --summary --json` prints it, every record)."""
    leet = [str(Path(sys.executable).parent / "wandb"), "leet", "inspect"]
    offline = next((run_dir / "wandb").glob("offline-run-*"))
    state = subprocess.run([*leet, "--summary", "--json", str(offline)], capture_output=True, text=True, check=True)
    records = subprocess.run([*leet, "--json", str(offline)], capture_output=True, text=True, check=True)
    return json.loads(state.stdout), [json.loads(line) for line in records.stdout.splitlines() if line.strip()]
