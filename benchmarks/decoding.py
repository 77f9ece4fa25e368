"""Decoding speed of a generation model: sequences/s of greedy search and of beam search.

    python benchmarks/decoding.py [--ckpt RUN/checkpoints/best.ckpt] [--beams 1 3 5] [--repeats 5]

Without ``--ckpt`` an untrained model of ``experiment=generation_synthetic`` decodes the
synthetic test split (it rarely ends a sequence early, so every search runs to
``--max-length``: the worst case); with a trained checkpoint the searches stop when every
sequence has ended. Goal: beam 5 costs at most 3x greedy. The test split is decoded in batches
of ``--batch`` as tensors (all samples and beams at once); every setting is timed ``--repeats``
times, interleaved, and the median is reported.
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
    parser.add_argument("--ckpt", default=None)
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--attention", default="additive", help="untrained model: decoder.attention")
    a = parser.parse_args()
    os.environ.setdefault("FUSELAB_CACHE_DIR", tempfile.mkdtemp())
    from conftest import compose_train
    from omegaconf import OmegaConf

    from fuselab.data.collate import move_batch
    from fuselab.training.build import build_datamodule, build_fusion_task, describe_data
    from fuselab.training.evaluate import load_checkpoint

    if a.ckpt:
        ckpt = load_checkpoint(a.ckpt)
        cfg = OmegaConf.create(ckpt["hyper_parameters"]["config"])
    else:
        cfg = compose_train(
            ["experiment=generation_synthetic", f"decoder.attention={a.attention}"], output_dir=Path(tempfile.mkdtemp())
        )
    dm = build_datamodule(OmegaConf.merge(cfg.data, {"eval_batch_size": a.batch}))
    data = describe_data(dm)
    task = build_fusion_task(cfg, data)
    if a.ckpt:
        task.load_state_dict(ckpt["state_dict"])
    device = torch.device(a.device)
    model = task.model.to(device).eval()
    batches = [move_batch(b, device) for b in dm.test_dataloader()]
    n = sum(len(b["target"]) for b in batches)

    def run(beam: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for b in batches:
            model.generate(b["inputs"], beam_size=beam, max_length=a.max_length)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for beam in a.beams:  # warm-up
        run(beam)
    times: dict[int, list[float]] = {beam: [] for beam in a.beams}
    for _ in range(a.repeats):
        for beam in a.beams:
            times[beam].append(run(beam))
    greedy = statistics.median(times[a.beams[0]])
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, device {device}; "
        f"{'trained ' + a.ckpt if a.ckpt else 'untrained model'}, attention {cfg.decoder.attention}; "
        f"{n} test sequences in batches of {a.batch}, "
        f"max length {a.max_length}, {a.repeats} repeats"
    )
    print(f"| search | sequences/s (median) | time / beam {a.beams[0]} | per-repeat range (s) |")
    print("|---|---|---|---|")
    for beam, ts in times.items():
        med = statistics.median(ts)
        name = "greedy" if beam == 1 else f"beam {beam}"
        print(f"| {name} | {n / med:.0f} | {med / greedy:.2f}x | {min(ts):.3f}-{max(ts):.3f} |")


if __name__ == "__main__":
    main()
