"""fuselab's own Lightning callbacks."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from fuselab.training.summary import has_converged

log = logging.getLogger(__name__)


class StepCounter(Callback):
    """Counts the training batches this process ran, so a run that was asked to train and ran
    none is never reported as completed."""

    def __init__(self) -> None:
        self.steps = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        self.steps += 1


class ValidationHistory(Callback):
    """The monitored validation metric after every epoch, and whether the run converged: stopped by
    early stopping, or (when it ran to its epoch cap) with its best value at least ``patience``
    validations before the end. Without early stopping ``patience`` is 1: a best value in the final
    validation means the run was still improving. A run that had not converged has a number its
    budget decided, not the method."""

    def __init__(self, monitor: str, mode: str) -> None:
        self.monitor, self.mode = monitor, mode
        self.epochs: list[int] = []
        self.values: list[float] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after the epoch's metrics are logged (on_validation_epoch_end still sees the last epoch's)
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return  # the sanity check and the final validate/test of the best checkpoint are no epochs
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None:
            self.epochs.append(int(trainer.current_epoch))
            self.values.append(float(value))

    # kept in checkpoints: a resumed run's history starts at its first epoch, not at the resumption
    def state_dict(self) -> dict[str, Any]:
        return {"epochs": list(self.epochs), "values": list(self.values)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epochs, self.values = list(state_dict["epochs"]), list(state_dict["values"])

    def report(self, stopped_early: bool, patience: int | None = None) -> dict[str, object]:
        if not self.values:
            return {}
        pick = max if self.mode == "max" else min
        best = self.values.index(pick(self.values))
        return {
            "history": {"epoch": self.epochs, self.monitor: self.values},
            "best_epoch": self.epochs[best],
            "stopped_early": stopped_early,
            "patience": patience,
            "converged": has_converged(len(self.values) - 1 - best, stopped_early, patience),
        }


class RankReport(Callback):
    """Each rank logs the overrides and config hash it trains with (one log file per rank), so
    a DDP job whose ranks disagree is visible in its logs."""

    def __init__(self, overrides: list[str], chash: str) -> None:
        self.overrides, self.chash = overrides, chash

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            log.info(
                "rank %d of %d trains overrides=%s config_hash=%s",
                trainer.global_rank,
                trainer.world_size,
                json.dumps(self.overrides),
                self.chash,
            )


class SaveOnSignal(Callback):
    """SIGTERM (what a cluster's preemption, ``docker stop``, Kubernetes or SLURM's ``--signal``
    sends before a kill) makes Lightning stop training after the current batch. This callback then
    saves where the run is, mid-epoch included, as ``checkpoints/last.ckpt`` (model, optimizer,
    scheduler, loops, the training loader's position, the RNG), the file ``resume=auto``
    continues from; ``saved`` names it."""

    def __init__(self, dirpath: Path) -> None:
        self.dirpath = Path(dirpath)
        self.saved: Path | None = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != "fit" or trainer.sanity_checking:
            return
        path = self.dirpath / "last.ckpt"
        if path.is_symlink():  # ModelCheckpoint(save_last="link"): replace the link, not its target
            path.unlink()
        trainer.save_checkpoint(path, weights_only=False)
        self.saved = path
        log.warning(
            "SIGTERM: stopped at epoch %d after batch %d (step %d); saved %s",
            trainer.current_epoch,
            trainer.fit_loop.epoch_loop.batch_progress.current.completed,
            trainer.global_step,
            path,
        )


class WarningSignal(Callback):
    """SLURM's warning before the time limit, handled as SIGTERM is: the current batch finishes,
    :class:`SaveOnSignal` saves ``last.ckpt``, the summary says ``interrupted``; then
    :meth:`requeue` puts the job back in the queue, where it continues from that checkpoint (a
    requeued job resumes by itself, :mod:`fuselab.runs.resume`).

    submitit asks for USR2 ``signal_delay_s`` before the limit (``hydra.launcher.signal_delay_s``);
    ``sbatch --signal=USR1@<s>`` sends USR1. Both are taken while training runs inside a SLURM job;
    submitit's own handler for USR2 (which would requeue at once, mid-batch, saving nothing) is
    called only after the checkpoint is written, so submitit requeues the job its own way."""

    SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after Lightning's own handlers (registered when fit starts), before the first batch
        if not os.environ.get("SLURM_JOB_ID") or threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        log.warning("%s: SLURM's time limit is near; stopping after this batch", signal.Signals(signum).name)
        on_term = signal.getsignal(signal.SIGTERM)  # Lightning's: stop at the next batch boundary
        if callable(on_term):
            on_term(signal.SIGTERM, frame)

    @property
    def name(self) -> str | None:
        return signal.Signals(self.received).name if self.received else None

    def requeue(self, job: str) -> None:
        """Back in the queue (rank 0, once the checkpoint and summary are written): through
        submitit's handler when submitit sent the signal, else ``scontrol requeue <job>``."""
        if self.received is None:
            return
        previous: Callable[..., Any] | Any = self._previous.get(self.received)
        if type(getattr(previous, "__self__", None)).__module__.startswith("submitit"):
            try:
                previous(self.received, None)  # checkpoints submitit's submission, requeues, exits
            except Exception as exc:  # noqa: BLE001 - submitit refused (e.g. max_num_timeout reached)
                log.error("submitit did not requeue the job: %s", exc)
            return
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            log.warning("requeued SLURM job %s: it continues from the saved checkpoint", job)
        else:
            log.error("scontrol requeue %s failed: %s", job, (done.stderr or done.stdout).strip())


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, and a resumed run keeps the best of the run it continues.

    ``resume=auto`` continues in a new run directory. Lightning then forgets the best score (its
    checkpoints lie in another folder), so the first validation after the resumption becomes
    "best" even when it is worse, and the final test may use another model than an
    uninterrupted run would. Here the continued run's checkpoints are copied into the new folder
    and the state points to the copies: the best score carries on, the new directory holds its
    own best.ckpt, and nothing in the interrupted run's folder is replaced or removed."""

    # the folder that holds the resumed checkpoint's files now, when it is not the one they were
    # written to (a sweep job's earlier attempt, moved to attempts/<n>/ before a requeued job starts)
    resumed_from: Path | None = None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        found = self.resumed_from or (Path(old) if old else None)
        if old and self.dirpath and (Path(old) != Path(self.dirpath) or found != Path(old)):
            state_dict = self._moved(state_dict, Path(old), Path(self.dirpath), found)  # type: ignore[arg-type]
        super().load_state_dict(state_dict)

    @staticmethod
    def _moved(state: dict[str, Any], old: Path, new: Path, found: Path) -> dict[str, Any]:
        """``state`` with its files (written in ``old``, now in ``found``) copied into ``new``."""

        def copy(path: str) -> str:
            if not path or Path(path).parent != old or not (found / Path(path).name).is_file():
                return path
            target = new / Path(path).name
            if not target.exists():
                new.mkdir(parents=True, exist_ok=True)
                shutil.copy2(found / Path(path).name, target)
            return str(target)

        moved = {**state, "dirpath": str(new)}
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            moved[key] = copy(state.get(key) or "")
        moved["best_k_models"] = {copy(k): v for k, v in (state.get("best_k_models") or {}).items()}
        return moved
