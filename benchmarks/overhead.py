"""fuselab's training throughput against a plain PyTorch loop that trains the same model on the
same batches, in one process (goal: at least 0.97 of the plain loop).

    python benchmarks/overhead.py [--fusion feature] [--rnn gru] [--batches 63] [--epochs 4] [--repeats 5]
    python benchmarks/overhead.py --experiment generation_synthetic    # an encoder-decoder

Both sides: the model built by fuselab from the synthetic benchmark's specs, AdamW, gradient
clipping at 1.0, pre-collated batches in memory (so the loader is not measured). fuselab's side
is FusionTask in a Lightning Trainer with validation, checkpoints, loggers and progress bar off;
its loss and metric bookkeeping (epoch means, the step loss on logging steps, metric updates once
per epoch) included. A third side, "bare Lightning", trains the same model in a LightningModule
whose training_step is only the loss: the floor that Lightning's loop itself sets.

Steady-state throughput: each side runs ``--epochs`` passes per repeat, every epoch is timed, the
first epoch of each run is dropped (warm-up), and the median epoch time over all repeats gives
samples/s. Repeats are interleaved, so a noisy machine's drifts hit every side alike; the spread
is the range of the per-repeat ratios. The fixed cost of starting ``Trainer.fit`` is reported
apart.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fusion", default="feature")
    parser.add_argument("--rnn", default="gru")
    parser.add_argument("--batches", type=int, default=63)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4, help="passes over the batches per repeat (first dropped)")
    parser.add_argument("--experiment", default=None, help="an experiment preset, e.g. generation_synthetic")
    a = parser.parse_args()
    os.environ.setdefault("FUSELAB_CACHE_DIR", tempfile.mkdtemp())
    import pytorch_lightning as pl
    from conftest import compose_train
    from hydra.utils import instantiate

    from fuselab.data.collate import move_batch
    from fuselab.training.build import build_datamodule, build_fusion_task, describe_data

    preset = [f"experiment={a.experiment}"] if a.experiment else []
    cfg = compose_train(
        [*preset, f"fusion={a.fusion}", f"rnn={a.rnn}", "data.train_size=4000"], output_dir=Path(tempfile.mkdtemp())
    )
    dm = build_datamodule(cfg.data)
    data = describe_data(dm)
    batches = [b for _, b in zip(range(a.batches), dm.train_dataloader())]
    per_epoch = sum(len(b["target"]) for b in batches)
    generation = data.target.is_generation

    def plain_loss(model: torch.nn.Module, b: dict) -> torch.Tensor:
        """The loss written by hand: class cross-entropy, or (generation) teacher-forced token
        cross-entropy with padding ignored."""
        if not generation:
            return torch.nn.functional.cross_entropy(model(b["inputs"])["logits"], b["target"])
        logits = model(b["inputs"], target=b["target"])["logits"]
        gold = b["target"][:, 1:]
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), gold.reshape(-1), ignore_index=0)

    def plain() -> list[float]:
        torch.manual_seed(0)
        model = build_fusion_task(cfg, data).model
        opt = instantiate(cfg.model.optimizer)(params=model.parameters())
        model.train()
        times = []
        for _ in range(a.epochs):
            t0 = time.perf_counter()
            for b in batches:
                opt.zero_grad(set_to_none=True)
                loss = plain_loss(model, b)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
            times.append(time.perf_counter() - t0)
        return times

    class EpochTimer(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.first_epoch_at = 0.0

        def on_train_epoch_start(self, trainer, module) -> None:
            self.t0 = time.perf_counter()
            if not self.times:
                self.first_epoch_at = self.t0

        def on_train_epoch_end(self, trainer, module) -> None:
            self.times.append(time.perf_counter() - self.t0)

    class InMemory(pl.LightningDataModule):
        """The pre-collated batches, moved to the device as fuselab's datamodules move them."""

        def train_dataloader(self):
            return torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=lambda b: b)

        def transfer_batch_to_device(self, batch, device, dataloader_idx):
            return move_batch(batch, device)

    class Bare(pl.LightningModule):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def training_step(self, batch, batch_idx):
            return plain_loss(self.model, batch)

        def configure_optimizers(self):
            return instantiate(cfg.model.optimizer)(params=self.parameters())

    def lightning(bare: bool) -> tuple[list[float], float]:
        torch.manual_seed(0)
        task = build_fusion_task(cfg, data)
        task.scheduler_factory = None  # the plain loop has no schedule either
        timer = EpochTimer()
        trainer = pl.Trainer(
            max_epochs=a.epochs,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            gradient_clip_val=1.0,
            callbacks=[timer],
        )
        t_call = time.perf_counter()
        trainer.fit(Bare(task.model) if bare else task, datamodule=InMemory())
        return timer.times, timer.first_epoch_at - t_call

    plain(), lightning(False), lightning(True)  # warm-up (allocator, oneDNN kernels)
    sides: dict[str, list[float]] = {"plain": [], "fuselab": [], "bare": []}
    per_repeat, startup = [], []
    for _ in range(a.repeats):
        p = plain()[1:]
        f, first = lightning(False)
        b, _ = lightning(True)
        sides["plain"] += p
        sides["fuselab"] += f[1:]
        sides["bare"] += b[1:]
        per_repeat.append(
            (statistics.median(p) / statistics.median(f[1:]), statistics.median(p) / statistics.median(b[1:]))
        )
        startup.append(first)
    rate = {k: per_epoch / statistics.median(v) for k, v in sides.items()}
    fw_ratios = sorted(r[0] for r in per_repeat)
    bare_ratios = sorted(r[1] for r in per_repeat)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {a.experiment or ''} fusion={a.fusion} rnn={a.rnn}, "
        f"{len(batches)} batches of "
        f"{cfg.data.batch_size}, {a.repeats} repeats x {a.epochs - 1} timed epochs"
    )
    print("| side | samples/s (median epoch) | ratio to plain | per-repeat ratios |")
    print("|---|---|---|---|")
    print(f"| plain PyTorch loop | {rate['plain']:.0f} | 1 | |")
    print(
        f"| fuselab (FusionTask) | {rate['fuselab']:.0f} | **{rate['fuselab'] / rate['plain']:.3f}** | "
        f"{fw_ratios[0]:.3f}-{fw_ratios[-1]:.3f} (median {statistics.median(fw_ratios):.3f}) |"
    )
    print(
        f"| bare Lightning module | {rate['bare']:.0f} | {rate['bare'] / rate['plain']:.3f} | "
        f"{bare_ratios[0]:.3f}-{bare_ratios[-1]:.3f} (median {statistics.median(bare_ratios):.3f}) |"
    )
    print(f"fixed cost of Trainer.fit before the first epoch (fuselab): median {statistics.median(startup):.3f} s")


if __name__ == "__main__":
    main()
