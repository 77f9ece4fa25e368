"""``FusionTask``: the one training loop of fuselab, whatever the fusion level or dataset."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torchmetrics import Metric
from torchmetrics.classification import MulticlassConfusionMatrix, MultilabelConfusionMatrix

from fuselab.config.rules import check_setting
from fuselab.data.specs import PAD_ID, DataDescription, ModalityBatch
from fuselab.errors import ConfigError
from fuselab.training.losses import TargetLoss
from fuselab.training.metrics import (
    build_metrics,
    flatten_metrics,
    log_wandb_per_class,
    monitor_for,
    multiclass_counts,
    multilabel_counts,
    per_class_scores,
    predictions,
    save_confusion_matrix,
    save_label_confusions,
)
from fuselab.training.plan import NO_PLAN, EvaluationPlan

STAGES = ("train", "val", "test")
# generation: test samples shown in wandb
SAMPLE_ROWS = 20


def log_sample_table(loggers: Sequence[Any], rows: list[list[str]]) -> None:
    """The first test hypotheses beside their references, as a table for each wandb logger."""
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.log_table(key="test/samples", columns=["references", "hypothesis"], data=rows)


class NonFiniteLossError(FloatingPointError, ConfigError):
    """Training produced a NaN or infinite loss (the user's to fix: learning rate, clipping, data)."""


class EpochMeans:
    """Batch-size-weighted means of scalars over an epoch, accumulated as detached tensors.

    ``LightningModule.log`` costs about 0.5 ms a call on CPU (it moves its bookkeeping to the
    value's device every time), several times a plain step's optimizer update; fuselab logs
    epoch values once, at the epoch's end, and the step loss only on the steps the loggers write.
    """

    def __init__(self) -> None:
        self.sums: dict[str, tuple[torch.Tensor, int]] = {}

    def add(self, name: str, value: torch.Tensor, n: int) -> None:
        weighted = value.detach().float() * n
        if name in self.sums:
            total, count = self.sums[name]
            self.sums[name] = (total + weighted, count + n)
        else:
            self.sums[name] = (weighted, n)

    def pop(self, stage: str) -> dict[str, torch.Tensor]:
        """The means of the names under ``stage/``, forgotten afterwards."""
        means = {}
        for name in [k for k in self.sums if k.startswith(f"{stage}/")]:
            total, count = self.sums.pop(name)
            means[name] = total / count
        return means


class FusionTask(pl.LightningModule):
    """Wraps a fusion model with its loss, metrics (logged as ``train/``, ``val/``, ``test/``),
    optimizer and scheduler. ``data`` is the datamodule's description (modalities, target).

    ``optimizer`` and ``scheduler`` are factories (Hydra ``_partial_`` configs): ``optimizer(params)``
    and ``scheduler(optimizer)``. ``modality_dropout`` drops each modality of a training sample
    with that probability (keeping at least one). ``loss`` is the built ``model.loss`` node (a
    :class:`TargetLoss` for the data's target when None); its ``total`` adds the per-modality
    losses of models that return ``aux_logits`` (late, hybrid). ``config`` (plain dict) and the data's
    description are stored in the checkpoint so a run can be rebuilt from it alone.
    """

    def __init__(
        self,
        model: nn.Module,
        data: DataDescription,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss: nn.Module | None = None,
        modality_dropout: float = 0.0,
        metrics: Sequence[str] | None = None,
        monitor: str | None = None,
        scheduled_sampling: float = 0.0,
        search: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_setting("model.modality_dropout", modality_dropout)
        check_setting("decoder.scheduled_sampling", scheduled_sampling)
        self.loss = loss if loss is not None else TargetLoss(data.target)
        weight = getattr(self.loss, "weight", None)
        # the resolved class weights travel with the checkpoint (fuselab-eval rebuilds the loss from them)
        class_weights = [] if weight is None else [float(w) for w in weight.tolist()]
        self.save_hyperparameters({"data": data.to_dict(), "config": config or {}, "class_weights": class_weights})
        self.model = model
        self.target_spec = data.target
        self.metric_names = list(metrics or [])
        self.monitor = monitor_for(data.target, monitor, self.metric_names)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.modality_dropout = modality_dropout
        # generation: scheduled sampling in training, the search of test decoding (validation is greedy)
        self.scheduled_sampling = float(scheduled_sampling)
        self.search = {"beam_size": 1, "max_length": 30, "length_penalty": 0.0, **(search or {})}
        # what an evaluation does to the inputs and outputs: see evaluating()
        self.plan: EvaluationPlan = NO_PLAN
        self._batch_idx = -1
        self._train_outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._means = EpochMeans()
        # ModuleDict keys may not shadow nn.Module attributes ("train"), hence the suffix.
        self.metrics = nn.ModuleDict(
            {f"{s}_metrics": build_metrics(data.target, self.metric_names).clone(prefix=f"{s}/") for s in STAGES}
        )
        n = data.target.num_outputs
        self.confusion: Metric | None = None
        if data.target.kind == "multiclass":
            self.confusion = MulticlassConfusionMatrix(num_classes=n)
        elif data.target.kind == "multilabel":
            self.confusion = MultilabelConfusionMatrix(num_labels=n)
        # generation: the first test hypotheses with their references (a wandb table)
        self.samples: list[list[str]] = []
        # the test split's precision, recall, F1 and support per class (set at the end of a test)
        self.per_class: dict[str, dict[str, float]] = {}
        self._rng_at_next_batch: torch.Tensor | None = None  # a mid-epoch resumption's RNG

    def forward(self, inputs: dict[str, ModalityBatch]) -> dict[str, Any]:
        return self.model(inputs)

    @contextlib.contextmanager
    def evaluating(self, plan: EvaluationPlan) -> Iterator[EvaluationPlan]:
        """Evaluate under ``plan`` (absent modalities, a perturbation, collected outputs) for the
        trainer calls inside the block; the task's own plan (none) is back afterwards."""
        previous, self.plan = self.plan, plan
        try:
            yield plan
        finally:
            self.plan = previous

    # ---- training-time corruption -------------------------------------------------------
    def drop_modalities(self, inputs: dict[str, ModalityBatch]) -> dict[str, ModalityBatch]:
        """Marks each modality of each sample absent with probability ``modality_dropout``."""
        names = list(inputs)
        present = torch.stack([inputs[m].present for m in names], 1)
        keep = torch.rand(present.shape, device=present.device) >= self.modality_dropout
        dropped = present & keep
        # A sample that lost every modality keeps one it had, chosen at random.
        empty = ~dropped.any(1) & present.any(1)
        if empty.any():
            scores = torch.rand(present.shape, device=present.device).masked_fill(~present, -1.0)
            rescue = torch.zeros_like(present).scatter_(1, scores.argmax(1, keepdim=True), True)
            dropped = torch.where(empty.unsqueeze(1), rescue, dropped)
        return {m: inputs[m]._replace(present=dropped[:, i]) for i, m in enumerate(names)}

    # ---- steps ---------------------------------------------------------------------------
    def _inputs(self, inputs: dict[str, ModalityBatch], stage: str) -> dict[str, ModalityBatch]:
        """The inputs as this stage sees them: modality dropout (train), a perturbation (test),
        modalities marked absent (evaluation)."""
        if stage == "train" and self.modality_dropout > 0:
            inputs = self.drop_modalities(inputs)
        if stage == "test" and self.plan.perturbation is not None:
            inputs = self.plan.perturbation(inputs)
        if stage != "train" and self.plan.absent:
            inputs = {
                m: mb._replace(present=torch.zeros_like(mb.present)) if m in self.plan.absent else mb
                for m, mb in inputs.items()
            }
        return inputs

    def _check_finite(self, loss: torch.Tensor, stage: str) -> None:
        if stage == "train" and not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the training loss is {loss.item()} at epoch {self.current_epoch}, step {self.global_step}, "
                f"batch {self._batch_idx}. {self._kept_checkpoint()}Lower model.optimizer.lr, keep "
                "trainer.gradient_clip_val set, or check the data for NaN/inf."
            )

    def _log_loss(self, out: dict[str, Any], loss: torch.Tensor, stage: str, bs: int) -> None:
        for m, w in (out.get("weights") or {}).items():
            # which modality the model relies on (attention, gated, weighted): epoch means
            self._means.add(f"{stage}/fusion_weight/{m}", w.float().mean(), bs)
        self._means.add(f"{stage}/loss", loss, bs)
        if stage == "train" and self._loggers_write_this_step():
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True, batch_size=bs)

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        inputs, target = self._inputs(batch["inputs"], stage), batch["target"]
        if self.target_spec.is_generation:
            return self._generation_step(batch, inputs, stage)
        out = self(inputs)
        logits = out["logits"]
        loss, aux = self.loss.total(logits, out.get("aux_logits"), target)
        self._check_finite(loss, stage)
        bs = len(target)
        if aux is not None:
            self._means.add(f"{stage}/aux_loss", aux, bs)
        self._log_loss(out, loss, stage, bs)
        metrics = self.metrics[f"{stage}_metrics"]
        target_m = target.squeeze(-1) if self.target_spec.kind == "regression" and target.ndim > 1 else target
        preds = predictions(self.target_spec, logits.detach().float())
        if stage == "train":
            # one metric update per epoch instead of per step: metric updates were most of
            # fuselab's per-step overhead over a plain loop (benchmarks/overhead.py)
            self._train_outputs.append((preds, target_m.detach()))
        else:
            metrics.update(preds, target_m)
        if stage == "test" and self.plan.collected is not None:
            aux = {m: a.detach().float().cpu() for m, a in (out.get("aux_logits") or {}).items()}
            self.plan.collected.append({"logits": logits.detach().float().cpu(), "target": target_m.cpu(), "aux": aux})
        if stage == "test" and self.confusion is not None:
            self.confusion.update(preds, target_m.long() if self.target_spec.kind == "multilabel" else target_m)
        return loss

    def _generation_step(self, batch: dict[str, Any], inputs: dict[str, ModalityBatch], stage: str) -> torch.Tensor:
        """Teacher-forced token loss; at validation and test also decodes (greedy at
        validation, ``search`` at test) and scores the text against the references."""
        target = batch["target"]
        sampling = self.scheduled_sampling if stage == "train" else 0.0
        out = self.model(inputs, target=target, sampling=sampling)
        loss = self.loss(out["logits"], target)
        self._check_finite(loss, stage)
        self._log_loss(out, loss, stage, len(target))
        if stage == "train":
            return loss
        search = self.search if stage == "test" else {**self.search, "beam_size": 1}
        decoded, memory = self.model.generate(inputs, **search)
        spec = self.target_spec
        hypotheses = [spec.detokenize(row) for row in decoded.tokens.tolist()]
        references = batch.get("references") or [[spec.detokenize(row)] for row in target.tolist()]
        self.metrics[f"{stage}_metrics"].update(hypotheses, references)
        if stage == "test" and len(self.samples) < SAMPLE_ROWS:
            self.samples += [[" | ".join(r), h] for h, r in zip(hypotheses, references)][
                : SAMPLE_ROWS - len(self.samples)
            ]
        collected = self.plan.collected
        if stage == "test" and collected is not None:
            collected.append(
                {
                    "hypotheses": hypotheses,
                    "references": references,
                    "scores": decoded.scores.cpu(),
                    "lengths": (decoded.tokens != PAD_ID).sum(1).cpu(),
                    "attention": None if decoded.attention is None else decoded.attention.cpu(),
                    "memory": (memory.segments, memory.layouts, memory.mask.cpu()),
                    "tokens": decoded.tokens.cpu(),
                    # the first batch's inputs, for attention pictures
                    "inputs": {m: mb.x[:8].float().cpu() for m, mb in inputs.items()} if not collected else {},
                }
            )
        return loss

    def _kept_checkpoint(self) -> str:
        """What a failed run leaves to resume from: only a checkpoint that exists is named."""
        ckpt = getattr(self.trainer, "checkpoint_callback", None)
        last = getattr(ckpt, "last_model_path", "") or getattr(ckpt, "best_model_path", "")
        if last and Path(last).is_file():
            return f"The last good checkpoint is kept: {last}. "
        return "No checkpoint was written before it (the first epoch had not ended). "

    def _loggers_write_this_step(self) -> bool:
        """True on the training steps whose logged values reach the loggers (every
        ``trainer.log_every_n_steps``-th optimizer step, as Lightning counts them)."""
        n = self.trainer.log_every_n_steps
        return n > 0 and (self.global_step + 1) % n == 0

    def _log_epoch_metrics(self, stage: str) -> None:
        means = self._means.pop(stage)
        if means:
            loss = means.pop(f"{stage}/loss", None)
            if loss is not None:  # "train/loss_epoch" beside the step values of "train/loss_step"
                name = "train/loss_epoch" if stage == "train" else f"{stage}/loss"
                self.log(name, loss, prog_bar=True, sync_dist=stage != "train")
            if means:
                self.log_dict(means, sync_dist=stage != "train")
        # computed here rather than logged as objects: some metrics (affect) return several values
        metrics = self.metrics[f"{stage}_metrics"]
        if stage == "train" and self._train_outputs:
            metrics.update(
                torch.cat([p for p, _ in self._train_outputs]), torch.cat([t for _, t in self._train_outputs])
            )
            self._train_outputs.clear()
        updated = (
            metrics.update_count
            if self.target_spec.is_generation
            else any(m.update_count for m in metrics.values(copy_state=False))
        )
        if not updated:
            return  # e.g. validation skipped this epoch
        values = {k: v.float() for k, v in flatten_metrics(metrics.compute()).items()}
        metrics.reset()
        self.log_dict(values, prog_bar=stage != "train", sync_dist=False)

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        self._batch_idx = batch_idx
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")
        if self.samples:
            log_sample_table(self.loggers, self.samples)
            self.samples = []
        if self.confusion is None:
            return
        counts = self.confusion.compute().cpu()  # every rank takes part in the sync
        target = self.target_spec
        names = list(target.class_names) or [str(i) for i in range(target.num_outputs)]
        if target.kind == "multiclass":
            self.per_class = per_class_scores(multiclass_counts(counts), names)
        else:
            self.per_class = per_class_scores(multilabel_counts(counts), names)
        if self.trainer.is_global_zero:
            out = Path(self.trainer.default_root_dir)
            log_wandb_per_class(self.loggers, self.per_class)
            if target.kind == "multiclass":
                save_confusion_matrix(self.confusion, target, out, self.loggers)
            else:
                save_label_confusions(self.confusion, target, out)
        self.confusion.reset()

    # ---- exact resumption: the RNG (dropout, modality dropout) continues where it stopped ----
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        loop = self.trainer.fit_loop.epoch_loop if self._trainer is not None else None
        done = loop.batch_progress.current.completed if loop is not None else 0
        mid_epoch = 0 < done < self.trainer.num_training_batches if loop is not None else False
        checkpoint["fuselab_rng"] = {"torch": torch.get_rng_state(), "mid_epoch": bool(mid_epoch)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("fuselab_rng")
        if state is None:
            return
        if state.get("mid_epoch"):
            # saved between two batches (SIGTERM): set at the next batch, after the loader's
            # iterator (which draws a seed) was made, as in the run that was never stopped
            self._rng_at_next_batch = state["torch"]
        else:  # an epoch's end: the next epoch's iterator draws from it, in both runs alike
            torch.set_rng_state(state["torch"])

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._rng_at_next_batch is not None:
            torch.set_rng_state(self._rng_at_next_batch)
            self._rng_at_next_batch = None

    def train(self, mode: bool = True) -> FusionTask:
        """Lightning's train/eval switch; batch norms of frozen parts (``model.freeze``) stay in
        eval mode, so their running statistics stay as loaded."""
        super().train(mode)
        if mode:
            from fuselab.training.transfer import frozen_norms

            for norm in frozen_norms(self.model):
                norm.eval()
        return self

    # ---- optimisation --------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        # torch checks the optimizer's and scheduler's settings in their constructors: what they
        # refuse here comes from model.optimizer.* / model.scheduler.*, a user's setting
        try:
            optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"model.optimizer: {exc}") from exc
        if self.scheduler_factory is None:
            return optimizer
        monitor, mode = self.monitor
        kwargs = {"mode": mode} if getattr(self.scheduler_factory, "func", None) is ReduceLROnPlateau else {}
        try:
            scheduler = self.scheduler_factory(optimizer=optimizer, **kwargs)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"model.scheduler: {exc}") from exc
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": monitor}}
