"""``fuselab-eval ckpt_path=PATH``: re-evaluate a checkpoint; reproduces the run's test metrics.

The run's config and specs are read from the checkpoint (loaded with ``weights_only=True``), so
nothing but the checkpoint is needed. ``data.*`` overrides apply on top of the stored data
config; ``drop=[image]`` evaluates with modalities marked absent.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from fuselab import __version__
from fuselab.cli import hydra_context, report_metrics, run_guarded
from fuselab.config import check_precision
from fuselab.errors import ConfigError
from fuselab.summary import RunSummary

log = logging.getLogger("fuselab.eval")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A fuselab checkpoint as plain tensors and primitives; a clear error for anything else."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"ckpt_path={path} does not exist; pass the best.ckpt of a run (see its summary.json)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise ConfigError(f"ckpt_path={path} is not a readable checkpoint (truncated or corrupt?): {exc}") from exc
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not hp or "config" not in hp or "state_dict" not in ckpt:
        raise ConfigError(f"ckpt_path={path} is not a fuselab checkpoint (no stored run config)")
    return ckpt


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    from hydra.utils import instantiate

    from fuselab.builders import build_datamodule, build_task

    check_precision(cfg)
    ckpt = load_checkpoint(cfg.ckpt_path)
    hp = ckpt["hyper_parameters"]
    run_cfg = OmegaConf.create(hp["config"])
    out_dir = Path(cfg.paths.output_dir)
    summary = RunSummary(out_dir, fuselab_version=__version__, ckpt_path=str(cfg.ckpt_path), **hydra_context())

    dm = build_datamodule(OmegaConf.merge(run_cfg.data, cfg.get("data") or {}))
    stored = hp.get("modalities", {})
    if {m: s.to_dict() for m, s in dm.modalities.items()} != stored:
        raise ConfigError(
            f"the data does not match the checkpoint: it was trained on {stored}, the data gives "
            f"{ {m: s.to_dict() for m, s in dm.modalities.items()} }. Drop conflicting data.* overrides."
        )
    task = build_task(run_cfg, dm, config=hp["config"])
    missing, unexpected = task.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path}: weights do not fit the model its config builds "
            f"(missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}); was it written by another version?"
        )
    drop = [str(m) for m in cfg.get("drop") or []]
    unknown = [m for m in drop if m not in dm.modalities]
    if unknown:
        raise ConfigError(f"drop={unknown}: not modalities of this run; it has {list(dm.modalities)}")
    task.absent = tuple(drop)

    trainer = instantiate(cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False)
    split = str(cfg.get("split", "test"))
    if split not in ("test", "val"):
        raise ConfigError(f"split={split} is not one of ['test', 'val']")
    run = trainer.test if split == "test" else trainer.validate
    results = run(task, datamodule=dm, verbose=False)
    metrics = {k: float(v) for r in results for k, v in r.items()}
    rob = cfg.get("robustness") or {}
    if rob.get("enabled"):
        from fuselab.metrics import monitor_for
        from fuselab.robustness import run_robustness

        metric = rob.get("metric") or monitor_for(dm.task)[0].replace("val/", "test/")
        report = run_robustness(task, dm, trainer, metric, levels=int(rob.get("levels", 11)),
                                seed=int(rob.get("seed", 0)), baseline=rob.get("baseline"), out_dir=out_dir)  # fmt: skip
        summary.update(robustness={k: report[k] for k in ("metric", "relative_robustness", "missing")}
                       | ({"effective_robustness": report["effective_robustness"]} if "effective_robustness" in report else {}))  # fmt: skip
    summary.completed(metrics=metrics, split=split, dropped=drop, monitor=None)
    return summary.data


@hydra.main(version_base="1.3", config_path="pkg://fuselab.conf", config_name="eval")
def _hydra_entry(cfg: DictConfig) -> None:
    result = run_guarded(evaluate, cfg)
    if result is not None:
        report_metrics(result)


def main() -> None:
    _hydra_entry()


if __name__ == "__main__":
    sys.exit(main())
