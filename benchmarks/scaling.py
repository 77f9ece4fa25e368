"""How ``data=hf`` scales with the rows of an image + text dataset: preparation time, cache size,
peak resident memory, loader batches/s against training steps/s, at each size.

    python benchmarks/scaling.py [--rows 10000 50000 200000] [--images shared unique] [--batches 100]

Each dataset is generated into a temporary folder (removed afterwards) the ordinary way: a
parquet per split (train 80 %, validation and test 10 % each) with an image path, a question
string and a string answer (10 classes), and a folder of 48 x 48 RGB PNG files. ``shared``: ten
rows per image file (as VQA's questions share their images); ``unique``: a file per row. The
column settings resize to 32 x 32 and normalise with a mean and std.

Two child processes per dataset, each measured on its own (``os.wait4``: the child's peak RSS,
file pages it mapped included; and the peak of its anonymous memory, sampled from /proc):
``prepare`` (a first preparation into an empty cache) and ``train`` (the prepared data
memory-mapped: ``--batches`` batches of 64 from the train loader, then as many training steps of
the default model (feature fusion, GRU) on them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

WORDS = "what which colour shape is the of in picture left right top bottom there how many".split()
ANSWERS = [f"answer_{k}" for k in range(10)]


def columns() -> dict:
    return {
        "image": {"column": "image", "kind": "image", "size": 32, "mean": [0.5] * 3, "std": [0.25] * 3},
        "question": {"column": "question", "kind": "text"},
    }


def generate(root: Path, rows: int, images: str, seed: int = 0) -> None:
    import numpy as np
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(seed)
    files = rows // 10 if images == "shared" else rows
    (root / "img").mkdir(parents=True)
    base = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for i in range(files):  # a smooth picture (an upsampled pattern) with a class-dependent patch
        small = np.roll(base, i % 16, axis=0) // 2 + rng.integers(0, 128, (16, 16, 3), dtype=np.uint8)
        small[i % 10, :, i % 3] = 255
        Image.fromarray(small).resize((48, 48), Image.BILINEAR).save(root / "img" / f"{i}.png")
    image = rng.integers(0, files, rows) if images == "shared" else rng.permutation(rows)
    answer = image % 10
    words = rng.integers(0, len(WORDS), (rows, 6))
    frame = pd.DataFrame(
        {
            "image": [f"img/{i}.png" for i in image],
            "question": [" ".join(WORDS[w] for w in ws) for ws in words],
            "answer": [ANSWERS[a] for a in answer],
        }
    )
    n_train, n_val = int(rows * 0.8), int(rows * 0.1)
    frame[:n_train].to_parquet(root / "train.parquet")
    frame[n_train : n_train + n_val].to_parquet(root / "validation.parquet")
    frame[n_train + n_val :].to_parquet(root / "test.parquet")


def size_of(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class AnonymousPeak:
    """The peak of this process's anonymous resident memory (RssAnon: heap, arrays, tensors),
    sampled every 20 ms. ru_maxrss also counts the pages of memory-mapped files a process has
    read (the prepared Arrow files and picture stores), which the kernel may drop at any time."""

    def __init__(self) -> None:
        import threading

        self.peak_kb = 0
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            time.sleep(0.02)


def child(stage: str, source: Path, cache: Path, batches: int) -> dict:
    os.environ["FUSELAB_CACHE_DIR"] = str(cache)
    watch = AnonymousPeak()
    out = _child(stage, source, cache, batches)
    return {**out, "anon_mib": watch.peak_kb / 1024}


def _child(stage: str, source: Path, cache: Path, batches: int) -> dict:
    from fuselab.data.datasets.hf import HFDataModule

    dm = HFDataModule(str(source), columns=columns(), target_column="answer", cache_dir=str(cache), batch_size=64)
    if stage == "prepare":
        start = time.perf_counter()
        dm.prepare_data()
        return {"prepare_s": time.perf_counter() - start}
    import torch
    from conftest import compose_train

    from fuselab.training.build import build_fusion_task, describe_data

    dm.setup()
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    got = [b for _, b in zip(range(batches), it)]
    load_rate = len(got) / (time.perf_counter() - start)
    cfg = compose_train(["data=hf", f"data.source={source}"], output_dir=Path(tempfile.mkdtemp()))
    task = build_fusion_task(cfg, describe_data(dm))
    opt = torch.optim.AdamW(task.parameters(), lr=1e-3)
    task.train()

    def step(b: dict) -> None:
        opt.zero_grad()
        task.loss(task(b["inputs"])["logits"], b["target"]).backward()
        opt.step()

    step(got[0])
    start = time.perf_counter()
    for b in got:
        step(b)
    return {"loader_batches_s": load_rate, "train_steps_s": len(got) / (time.perf_counter() - start)}


def measured(args: list[str]) -> tuple[dict, float]:
    """(the child's JSON answer, its peak RSS in MiB)."""
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"child {args[:2]} failed ({status})")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--images", nargs="+", default=["shared", "unique"], choices=["shared", "unique"])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--child", nargs=3, metavar=("STAGE", "SOURCE", "CACHE"), help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.child:
        import logging

        logging.disable(logging.WARNING)
        print(json.dumps(child(a.child[0], Path(a.child[1]), Path(a.child[2]), a.batches)))
        return
    print(
        "| rows | images | files | source (MB) | prepare (s) | cache (MB) | cache / source | cache bytes / row "
        "| peak RSS prepare (MiB) | peak RSS train (MiB) | peak anonymous prepare / train (MiB) "
        "| loader (batches/s) | training (steps/s) |"
    )
    print("|" + "---|" * 13)
    for rows in a.rows:
        for images in a.images:
            tmp = Path(tempfile.mkdtemp(prefix="fuselab-scaling-"))
            try:
                source, cache = tmp / "data", tmp / "cache"
                generate(source, rows, images)
                prep, prep_rss = measured(["--child", "prepare", str(source), str(cache)])
                train, train_rss = measured(["--child", "train", str(source), str(cache), "--batches", str(a.batches)])
                src, cached = size_of(source), size_of(cache)
                files = rows // 10 if images == "shared" else rows
                line = (
                    f"| {rows:,} | {images} | {files:,} | {src / 1e6:.1f} | {prep['prepare_s']:.0f} | "
                    f"{cached / 1e6:.1f} | {cached / src:.2f} | {cached / rows:.0f} | {prep_rss:.0f} | "
                    f"{train_rss:.0f} | {prep['anon_mib']:.0f} / {train['anon_mib']:.0f} | "
                    f"{train['loader_batches_s']:.0f} | {train['train_steps_s']:.1f} |"
                )
                print(line, flush=True)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
