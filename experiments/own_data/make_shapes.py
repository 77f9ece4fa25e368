"""Write a small dataset laid out the ordinary way, to try `data=hf` on: a parquet per split with
an image path, a question string and a string answer, over a folder of PNG files that several
rows share (five questions per picture).

    python experiments/own_data/make_shapes.py --out data/shapes

300 pictures of a red, green or blue square or circle (64 x 64) and 1,500 rows: "what colour
is the shape" (answer: the colour) or "what shape is it" (answer: the shape), 1,200 train, 150
validation, 150 test. Neither modality alone answers: the question says what is asked, the
picture what the answer is.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root: Path = args.out
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} is not empty; give a new folder")
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    rows = []
    for i in range(300):
        colour, shape = rng.choice(list(COLOURS)), rng.choice(["square", "circle"])
        img = Image.new("RGB", (64, 64), "white")
        left, top = rng.randint(2, 20), rng.randint(2, 20)
        box = [left, top, left + rng.randint(24, 40), top + rng.randint(24, 40)]
        draw = ImageDraw.Draw(img)
        (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=COLOURS[colour])
        img.save(root / "images" / f"{i}.png")
        for _ in range(5):
            asks_colour = rng.random() < 0.5
            question = "what colour is the shape" if asks_colour else "what shape is it"
            rows.append((f"images/{i}.png", question, colour if asks_colour else shape))
    rng.shuffle(rows)
    table = pd.DataFrame(rows, columns=["image", "question", "answer"])
    table[:1200].to_parquet(root / "train.parquet")
    table[1200:1350].to_parquet(root / "validation.parquet")
    table[1350:].to_parquet(root / "test.parquet")
    print(f"wrote {len(table)} rows over 300 pictures to {root}")


if __name__ == "__main__":
    main()
