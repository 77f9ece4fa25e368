"""Write a folder of raw files, as a researcher would bring them, from the shared MNIST and FSDD
files: for each sample a PNG of a handwritten digit, a WAV of someone saying the same digit,
and a sentence about it; ``train``/``validation``/``test`` parquet files list them (paths
relative to the folder) with the label. Then::

    fuselab-train experiment=raw_files data.source=<folder>

trains on them end to end: fuselab resizes the images, computes log-mel frames of the
recordings and fits a word tokenizer on the training sentences, once, at preparation.

Each modality is made incomplete on purpose, so that fusion has something to do: the image is
noisy and a random third of it is blanked out, the recording has white noise at 0-10 dB SNR,
and the sentence only says whether the digit is odd or even and small (0-4) or large (5-9).

    python experiments/raw_files/make_folder.py --mnist ../shared/data/mnist --fsdd ../shared/data/fsdd \
        --out data/raw_digits

Splits: MNIST train images for train and validation, MNIST test images for test; FSDD
recordings 0-4 of each speaker and digit for test, 5-9 for validation, 10-49 for train. The
folder must be new or empty; FSDD is CC BY-SA 4.0 (keep its attribution with the folder).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fuselab.data.datasets.avmnist_build import find_mnist, fsdd_recordings, read_wav

PARITY = ("even", "odd")
SIZE = ("small", "large")
TEMPLATES = (
    "an {p} digit, a {s} one",
    "the number is {p} and {s}",
    "this {s} digit is {p}",
    "someone wrote a {s}, {p} number",
)


def sentence(digit: int, rng: np.random.Generator) -> str:
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    return template.format(p=PARITY[digit % 2], s=SIZE[int(digit >= 5)])


def degrade_image(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = img.astype(np.float32) + rng.normal(0, 60, img.shape)
    side = int(rng.integers(3))  # blank the top, middle or bottom third
    out[side * 9 : side * 9 + 10] = 0
    return np.clip(out, 0, 255).astype(np.uint8)


def main() -> None:
    import datasets
    import soundfile as sf
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", required=True)
    parser.add_argument("--fsdd", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--n-val", type=int, default=500)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out).expanduser()
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"--out {out} exists and is not empty; nothing is overwritten: choose a new folder")
    rng = np.random.default_rng(args.seed)
    (train_x, train_y), (test_x, test_y) = find_mnist(Path(args.mnist), "train"), find_mnist(Path(args.mnist), "test")
    takes = fsdd_recordings(Path(args.fsdd))  # {"train": takes 5-49, "test": takes 0-4}
    pools = {
        "train": {d: [p for p in f if int(p.stem.split("_")[2]) >= 10] for d, f in takes["train"].items()},
        "validation": {d: [p for p in f if int(p.stem.split("_")[2]) < 10] for d, f in takes["train"].items()},
        "test": takes["test"],
    }
    order = rng.permutation(len(train_x))
    images = {
        "train": (train_x[order[: args.n_train]], train_y[order[: args.n_train]]),
        "validation": (
            train_x[order[args.n_train : args.n_train + args.n_val]],
            train_y[order[args.n_train : args.n_train + args.n_val]],
        ),
        "test": (test_x[: args.n_test], test_y[: args.n_test]),
    }
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "audio").mkdir()
    for split, (xs, ys) in images.items():
        rows: dict[str, list] = {"photo": [], "speech": [], "caption": [], "label": []}
        for i, (img, y) in enumerate(zip(xs, ys)):
            digit = int(y)
            photo = f"images/{split}_{i:05d}.png"
            Image.fromarray(degrade_image(img, rng)).save(out / photo)
            recording = pools[split][digit][int(rng.integers(len(pools[split][digit])))]
            wave = read_wav(recording)
            snr = rng.uniform(0, 10)
            noise = rng.standard_normal(len(wave)).astype(np.float32)
            noise *= np.sqrt(np.mean(wave**2) / 10 ** (snr / 10) / max(np.mean(noise**2), 1e-12))
            speech = f"audio/{split}_{i:05d}.wav"
            sf.write(out / speech, np.clip(wave + noise, -1, 1), 8000)
            rows["photo"].append(photo)
            rows["speech"].append(speech)
            rows["caption"].append(sentence(digit, rng))
            rows["label"].append(digit)
        datasets.Dataset.from_dict(rows).to_parquet(str(out / f"{split}.parquet"))
        print(f"{split}: {len(ys)} samples")
    print(f"train with:  fuselab-train experiment=raw_files data.source={out}")


if __name__ == "__main__":
    main()
