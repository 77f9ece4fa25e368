"""Evaluation of a checkpoint (``fuselab-eval``): the run's config and data description are read
from the checkpoint (loaded with ``weights_only=True``), the model is rebuilt and tested, with
modalities marked absent (``drop``) and, on request, the robustness protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fuselab.config.targets import check_targets
from fuselab.data.specs import DataDescription
from fuselab.errors import ConfigError
from fuselab.training.plan import EvaluationPlan


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A fuselab checkpoint as plain tensors and primitives; a clear error for anything else."""
    from fuselab.config.checkpoints import read_checkpoint

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"ckpt_path={path} is a directory; pass a file such as {path}/checkpoints/best.ckpt")
    if not path.is_file():
        raise ConfigError(f"ckpt_path={path} does not exist; pass the best.ckpt of a run (see its summary.json)")
    ckpt = read_checkpoint(path, "ckpt_path")
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not hp or "config" not in hp or "state_dict" not in ckpt:
        raise ConfigError(f"ckpt_path={path} is not a fuselab checkpoint (no stored run config)")
    if "data" not in hp:
        raise ConfigError(
            f"ckpt_path={path} was written by fuselab < 0.2 (no stored data description); "
            "evaluate it with that version or train again"
        )
    return ckpt


# the parts of a stored run config that evaluation builds objects from; the rest (trainer,
# callbacks, loggers) comes from the evaluation's own config and is dropped from the stored one
REBUILT = ("data", "model", "fusion", "rnn", "decoder")


def stored_config(config: Any, source: str, trusted: Any = None) -> dict[str, Any]:
    """The sections of a checkpoint's stored config that evaluation rebuilds, after checking that
    every ``_target_`` in them names a class of fuselab or a torch optimizer/scheduler (or of a
    package the user names in ``allow_targets``). A checkpoint is someone else's file: building
    from it must never run other code."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source} stores no run config (not a fuselab checkpoint)")
    trusted = [str(t) for t in (trusted or [])]
    kept = {k: v for k, v in config.items() if k in REBUILT or not isinstance(v, (dict, list))}
    kept = moved_targets(kept)
    check_targets(kept, source, trusted)
    return upgrade_stored_config(kept)


# modules that moved since a checkpoint may have been written (fuselab <= 0.2: data/ was flat),
# and where they are now; a stored _target_ inside one is renamed before it is checked
MOVED_MODULES = {
    **{
        f"fuselab.data.{n}": f"fuselab.data.readers.{n}"
        for n in ("audio_features", "frozen_features", "images", "mnist_fsdd", "pretrained_files", "text")
    },
    **{
        f"fuselab.data.{n}": f"fuselab.data.datasets.{n}"
        for n in (
            "affect",
            "avmnist",
            "avmnist_build",
            "captions",
            "connected_digits",
            "hf",
            "mmimdb",
            "moving_digits",
            "synthetic",
            "synthetic_generation",
        )
    },
}


def moved_targets(node: Any) -> Any:
    """``node`` with every ``_target_`` that names a class of a moved module renamed to its
    module's new place (:data:`MOVED_MODULES`); anything else unchanged."""
    if isinstance(node, list):
        return [moved_targets(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: moved_targets(v) for k, v in node.items()}
    target = out.get("_target_")
    if isinstance(target, str):
        module, _, name = target.rpartition(".")
        if module in MOVED_MODULES:
            out["_target_"] = f"{MOVED_MODULES[module]}.{name}"
    return out


# nodes that had no _target_ in the configs of older checkpoints (fuselab <= 0.2), and the one
# they build now: filled in where a stored config enters, so the builders know one form
LEGACY_TARGETS = {
    ("model", "loss"): {"_target_": "fuselab.training.losses.TargetLoss", "_partial_": True},
    ("decoder",): {"_target_": "fuselab.models.decoder.DecoderSettings"},
}


def upgrade_stored_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with each node of :data:`LEGACY_TARGETS` given its ``_target_`` when it lacks one."""
    for path, target in LEGACY_TARGETS.items():
        *parents, last = path
        node: Any = config
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(last), dict) and "_target_" not in node[last]:
            node[last] = {**target, **node[last]}
    return config


def check_weights_fit(task: Any, state_dict: dict[str, Any], path: str | Path) -> None:
    """Refuse a checkpoint whose weights do not fit the model this config builds (names or shapes)."""
    own = task.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        raise ConfigError(
            f"ckpt_path={path} does not fit the model this config builds (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, other shapes {shapes[:3]}); pass a checkpoint of the same fusion, rnn, model and "
            "data settings, or train afresh without ckpt_path"
        )


def write_predictions(batches: list[dict[str, Any]], target: Any, out_dir: Path, fmt: str) -> Path:
    """``predictions.<fmt>`` in ``out_dir``: :func:`predictions_frame` of the test batches."""
    frame = predictions_frame(batches, target)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"predictions.{fmt}"
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def predictions_frame(batches: list[dict[str, Any]], target: Any) -> Any:
    """One row per test sample: ``id`` (its row in the test split), ``target``, ``prediction``
    (and, when the dataset names its classes, ``target_name`` and ``prediction_name``), the
    probabilities (``prob_<class>``; multilabel: per label) and, for late and hybrid fusion,
    each modality's own prediction (``prediction_<modality>``)."""
    import numpy as np
    import pandas as pd
    import torch

    from fuselab.training.metrics import predictions

    if not batches:
        raise ConfigError("the test split gave no batch: nothing to write (check trainer.limit_test_batches)")
    logits = torch.cat([b["logits"] for b in batches])
    truth = torch.cat([b["target"] for b in batches])
    names = list(target.class_names) or [str(i) for i in range(target.num_outputs)]
    frame = pd.DataFrame({"id": np.arange(len(logits))})

    def columns(prefix: str, values: torch.Tensor) -> None:
        v = values.numpy()
        if v.ndim == 1:
            frame[prefix] = v
        else:
            for i, name in enumerate(names[: v.shape[1]]):
                frame[f"{prefix}_{name}"] = v[:, i]

    columns("target", truth)
    columns(
        "prediction", predictions(target, logits) > 0.5 if target.kind == "multilabel" else predictions(target, logits)
    )
    if target.kind == "multiclass":
        if target.class_names:  # the dataset's own names beside the ids
            frame["target_name"] = np.asarray(names, dtype=object)[frame["target"].to_numpy()]
            frame["prediction_name"] = np.asarray(names, dtype=object)[frame["prediction"].to_numpy()]
        columns("prob", torch.softmax(logits, -1))
    elif target.kind == "multilabel":
        columns("prob", torch.sigmoid(logits))
    for m in batches[0]["aux"]:
        aux = predictions(target, torch.cat([b["aux"][m] for b in batches]))
        columns(f"prediction_{m}", aux > 0.5 if target.kind == "multilabel" else aux)
    return frame


def evaluate_checkpoint(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Test (or validate, ``split=val``) the checkpoint ``cfg.ckpt_path``. Returns ``metrics``,
    ``split``, ``dropped`` and, with ``robustness.enabled``, ``robustness``."""
    from fuselab.training.build import build_datamodule, build_fusion_task, describe_data, evaluation_trainer

    split = str(cfg.get("split", "test"))
    if split not in ("test", "val"):
        raise ConfigError(f"split={split} is not one of ['test', 'val']")
    contributions = cfg.get("contributions", False)
    if not isinstance(contributions, bool) or (contributions and split != "test"):
        raise ConfigError(
            f"contributions={contributions!r} with split={split}: contributions=true (a bool) scores the test split"
        )
    rob = cfg.get("robustness") or {}
    if rob.get("enabled"):
        from fuselab.training.robustness import check_settings

        check_settings(rob.get("levels", 11), rob.get("baseline"))
    ckpt = load_checkpoint(cfg.ckpt_path)
    hp = ckpt["hyper_parameters"]
    run_cfg = OmegaConf.create(stored_config(hp["config"], f"ckpt_path={cfg.ckpt_path}", cfg.get("allow_targets")))
    dm = build_datamodule(OmegaConf.merge(run_cfg.data, cfg.get("data") or {}))
    data = describe_data(dm)
    stored = DataDescription.from_dict(hp["data"])
    if data.to_dict() != stored.to_dict():
        raise ConfigError(
            f"the data does not match the checkpoint: it was trained on {stored.to_dict()}, the data gives "
            f"{data.to_dict()}. Drop conflicting data.* overrides."
        )
    task = build_fusion_task(run_cfg, data, config=hp["config"], class_weights=hp.get("class_weights") or None)
    check_weights_fit(task, ckpt["state_dict"], cfg.ckpt_path)
    task.load_state_dict(ckpt["state_dict"])
    drop = [str(m) for m in cfg.get("drop") or []]
    unknown = [m for m in drop if m not in data.modalities]
    if unknown:
        raise ConfigError(f"drop={unknown}: not modalities of this run; it has {list(data.modalities)}")
    if drop and set(drop) >= set(data.modalities):
        raise ConfigError(
            f"drop={drop} drops every modality of this run: the model would see nothing. Keep at least one of "
            f"{list(data.modalities)}"
        )

    save = bool(cfg.get("save_predictions", False))
    fmt = str(cfg.get("predictions_format", "parquet"))
    if save and (split != "test" or (fmt not in ("parquet", "csv") and not data.target.is_generation)):
        raise ConfigError(
            f"save_predictions=true writes the test split's predictions as parquet or csv; "
            f"got split={split}, predictions_format={fmt}"
        )
    trainer = evaluation_trainer(cfg)
    if save and trainer.world_size > 1:
        raise ConfigError("save_predictions=true numbers rows by their place in the test split: run it on one device")
    if contributions:
        from fuselab.training.contributions import check_modalities

        check_modalities([m for m in data.modalities if m not in drop])
        if trainer.world_size > 1:
            raise ConfigError("contributions=true evaluates on one device: pass trainer.devices=1")
    plan = EvaluationPlan(absent=tuple(drop), collected=[] if save else None)
    run = trainer.test if split == "test" else trainer.validate
    with task.evaluating(plan):
        results = run(task, datamodule=dm, verbose=False)
    out: dict[str, Any] = {
        "metrics": {k: float(v) for r in results for k, v in r.items()},
        "split": split,
        "dropped": drop,
        "per_class": task.per_class or None,
    }
    if save and data.target.is_generation:
        from fuselab.training.generation_outputs import save_attention_maps, write_generation_predictions

        out["predictions"] = str(write_generation_predictions(plan.collected or [], out_dir))
        maps = save_attention_maps(plan.collected or [], out_dir, int(cfg.get("attention_maps", 4)))
        out["attention_maps"] = [str(p) for p in maps]
    elif save:
        out["predictions"] = str(write_predictions(plan.collected or [], data.target, out_dir, fmt))
    if rob.get("enabled"):
        from fuselab.training.robustness import run_robustness

        metric = rob.get("metric") or task.monitor[0].replace("val/", "test/")
        report = run_robustness(
            task,
            dm,
            trainer,
            metric,
            levels=int(rob.get("levels", 11)),
            seed=int(rob.get("seed", 0)),
            baseline=rob.get("baseline"),
            out_dir=out_dir,
            absent=tuple(drop),
        )
        keep = ("metric", "relative_robustness", "missing", "effective_robustness")
        out["robustness"] = {k: report[k] for k in keep if k in report}
    if contributions:
        from fuselab.training.contributions import run_contributions, summary_metrics

        shares = run_contributions(task, dm, trainer, out_dir, absent=tuple(drop))
        out["metrics"].update(summary_metrics(shares))
        out["contributions"] = shares
    return out
