"""``fuselab-train``: fit a fusion model, test its best checkpoint, write ``summary.json``.

    fuselab-train fusion=late rnn=lstm data.modalities=[signal,image] seed=3
    fuselab-train -m fusion=early,feature,late rnn=rnn,lstm,gru
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only

from fuselab import __version__
from fuselab.builders import (
    build_callbacks,
    build_datamodule,
    build_loggers,
    build_task,
    build_trainer,
    checkpoint_callback,
)
from fuselab.cli import hydra_context, report_metrics, run_guarded
from fuselab.config import to_plain, validate_train_config
from fuselab.errors import ConfigError
from fuselab.summary import RunSummary

log = logging.getLogger("fuselab.train")


def _writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to the output directory {out_dir} ({exc}); set paths.log_dir=<dir>") from exc


def _metrics(results: list[dict[str, float]]) -> dict[str, float]:
    merged: dict[str, float] = {}
    for r in results:
        merged.update({k: float(v) for k, v in r.items()})
    return merged


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one job from a composed config; returns its summary (also written to summary.json)."""
    validate_train_config(cfg)
    out_dir = Path(cfg.paths.output_dir)
    _writable(out_dir)
    ctx = hydra_context()
    summary = RunSummary(out_dir, fuselab_version=__version__, **ctx)
    is_zero = rank_zero_only.rank == 0
    if is_zero:
        summary.write()
    try:
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
        dm = build_datamodule(cfg.data)
        config = to_plain(cfg)
        task = build_task(cfg, dm, config=config)
        loggers = build_loggers(cfg, ctx["choices"], list(dm.modalities), group=ctx["group"])
        callbacks = build_callbacks(cfg, dm.task, with_logger=bool(loggers))
        trainer = build_trainer(cfg, callbacks, loggers)

        if cfg.get("fit", True):
            trainer.fit(task, datamodule=dm, ckpt_path=cfg.get("ckpt_path"))
        # Read the checkpoint paths now: validate/test below restore the callback's state
        # from the best checkpoint, which predates the last one.
        ckpt = checkpoint_callback(trainer)
        best = (ckpt.best_model_path or None) if ckpt else None
        last = (ckpt.last_model_path or None) if ckpt else None
        monitor = ckpt.monitor if ckpt else None
        if not cfg.get("fit", True):
            best = cfg.get("ckpt_path")
        metrics: dict[str, float] = {}
        metrics.update(_metrics(trainer.validate(task, datamodule=dm, ckpt_path=best, verbose=False)))
        if cfg.get("test", True):
            metrics.update(_metrics(trainer.test(task, datamodule=dm, ckpt_path=best, verbose=False)))
        summary.update(
            metrics=metrics,
            epochs=trainer.current_epoch,
            best_checkpoint=best,
            last_checkpoint=last,
            monitor=monitor,
            modalities=list(dm.modalities),
            num_parameters=sum(p.numel() for p in task.parameters()),
        )
        for lg in loggers:
            if hasattr(lg, "experiment") and type(lg).__name__ == "WandbLogger":
                lg.experiment.summary.update({f"final/{k}": v for k, v in metrics.items()})
    except BaseException as exc:
        if is_zero:
            summary.failed(exc)
        raise
    if is_zero:
        summary.completed()
    return summary.data


@hydra.main(version_base="1.3", config_path="pkg://fuselab.conf", config_name="train")
def _hydra_entry(cfg: DictConfig) -> float | None:
    result = run_guarded(train, cfg)
    if result is None:
        return None
    if rank_zero_only.rank == 0:
        report_metrics(result)
    monitor = result.get("monitor")
    return result.get("metrics", {}).get(monitor) if monitor else None


def main() -> None:
    _hydra_entry()


if __name__ == "__main__":
    sys.exit(main())
