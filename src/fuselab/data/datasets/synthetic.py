"""The embedded synthetic benchmark: paired samples with a known answer to "which fusion works".

Three modalities, one of each encoder kind:
  ``signal``: float sequence (T, signal_dim); ``tokens``: token sequence (T,); ``image``: (1, S, S).

Each modality can carry a latent class ``c`` in [0, num_classes): a sequence carries it as
``events`` occurrences of event type ``c`` (a fixed ±1 pattern in ``signal``, token id ``c + 1``
in ``tokens``) at random steps among background noise, plus ``distractors`` events of random
types; the image carries it as prototype ``c`` plus Gaussian noise. ``interaction`` decides how
the label ``y`` relates to the latents:

  unique     only ``informative`` carries ``y``; the others carry independent latents
  redundant  every modality carries ``y``
  synergy    ``signal`` carries ``a``, ``tokens`` carries ``b``, ``y = (a + b) mod num_classes``;
             each alone is independent of ``y`` and no sum of per-modality scores decides it
  temporal   ``signal`` holds a random number (K-1 to 2K-1) of events of random types, then one
             of type ``y`` at its final step: ``y`` is the type of the LAST event. No step can
             tell that its event is the last one, so only the order decides; mean pooling over
             RNN outputs has to single out one step of T (it learns that, by telescoping, but
             worse and slower than last pooling the longer the sequences: see the README).

With ``regression=true`` the target is ``y`` as a float (a regression with the same known answers).

Everything is drawn from ``numpy.random.default_rng(seed)``: the same settings give the same data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from fuselab.data.datamodule import PairedDataModule, PreparedData
from fuselab.data.specs import ModalitySpec, TargetSpec
from fuselab.errors import ConfigError

INTERACTIONS = ("unique", "redundant", "synergy", "temporal")
_SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
MODALITIES = ("signal", "tokens", "image")
SIZE_EXAMPLES = {
    "train_size": 4000,
    "val_size": 1000,
    "test_size": 1000,
    "signal_dim": 8,
    "image_size": 16,
    "events": 3,
}


class SyntheticDataModule(PairedDataModule):
    name = "synthetic"

    def __init__(
        self,
        interaction: str = "synergy",
        informative: str = "signal",
        num_classes: int = 4,
        train_size: int = 4000,
        val_size: int = 1000,
        test_size: int = 1000,
        seq_len: Sequence[int] = (16, 32),
        token_len: Sequence[int] = (8, 24),
        aligned: bool = True,
        signal_dim: int = 8,
        vocab_size: int = 32,
        image_size: int = 16,
        events: int = 3,
        distractors: int = 1,
        noise: float = 0.5,
        token_noise: float = 0.1,
        seed: int = 0,
        regression: bool = False,
        **loader_kwargs: Any,
    ) -> None:
        if interaction not in INTERACTIONS:
            raise ConfigError(f"data.interaction={interaction!r} is not one of {list(INTERACTIONS)}")
        if informative not in MODALITIES:
            raise ConfigError(f"data.informative={informative!r} is not one of {list(MODALITIES)}")
        sizes = {
            "train_size": train_size,
            "val_size": val_size,
            "test_size": test_size,
            "signal_dim": signal_dim,
            "image_size": image_size,
            "events": events,
        }
        for key, value in sizes.items():
            if int(value) < 1:
                raise ConfigError(f"data.{key}={value} must be >= 1, e.g. data.{key}={SIZE_EXAMPLES[key]}")
        if distractors < 0 or noise < 0 or not 0 <= token_noise <= 1:
            raise ConfigError(
                f"data.distractors={distractors} and data.noise={noise} must be >= 0 and "
                f"data.token_noise={token_noise} in [0, 1]"
            )
        if num_classes < 2:
            raise ConfigError(f"data.num_classes must be >= 2, got {num_classes}")
        if vocab_size < num_classes + 2:
            raise ConfigError(f"data.vocab_size must be >= num_classes + 2 = {num_classes + 2}, got {vocab_size}")
        lo, hi = (int(v) for v in seq_len)
        need = max(events + distractors, 2 * num_classes if interaction == "temporal" else 0)
        if not 1 <= lo <= hi or lo < need:
            raise ConfigError(f"data.seq_len={list(seq_len)} must be [min, max] with min >= {need} (the events)")
        tlo, thi = (int(v) for v in token_len)
        if not aligned and (not 1 <= tlo <= thi or tlo < events + distractors):
            raise ConfigError(f"data.token_len={list(token_len)} must be [min, max] with min >= {events + distractors}")
        self.params = dict(
            interaction=interaction,
            informative=informative,
            num_classes=int(num_classes),
            train_size=int(train_size),
            val_size=int(val_size),
            test_size=int(test_size),
            seq_len=[lo, hi],
            token_len=[tlo, thi],
            aligned=bool(aligned),
            signal_dim=int(signal_dim),
            vocab_size=int(vocab_size),
            image_size=int(image_size),
            events=int(events),
            distractors=int(distractors),
            noise=float(noise),
            token_noise=float(token_noise),
            seed=int(seed),
            regression=bool(regression),
        )
        super().__init__(**loader_kwargs)

    def modality_names(self) -> list[str]:
        return list(MODALITIES)

    def fingerprint(self) -> dict[str, Any]:
        # the generator's own source is part of the key: changing it never reuses a stale cache
        return {"generator": _SOURCE_HASH, **self.params}

    def build(self, scratch: Path) -> PreparedData:
        p = self.params
        rng = np.random.default_rng(p["seed"])
        protos = _prototypes(rng, p)
        features = datasets.Features(
            {
                "signal": datasets.Array2D(shape=(None, p["signal_dim"]), dtype="float32"),
                "tokens": datasets.List(datasets.Value("int32")),
                "image": datasets.Array3D(shape=(1, p["image_size"], p["image_size"]), dtype="float32"),
                "label": datasets.Value("float32")
                if p["regression"]
                else datasets.ClassLabel(names=[str(i) for i in range(p["num_classes"])]),
            }
        )
        out = {}
        for split in ("train", "val", "test"):
            columns = generate(rng, p[f"{split}_size"], p, protos)
            out[split] = datasets.Dataset.from_dict(columns, features=features)
        k = p["num_classes"]
        specs = {
            "signal": ModalitySpec("signal", "sequence", (None, p["signal_dim"])),
            "tokens": ModalitySpec("tokens", "tokens", (None,), vocab_size=p["vocab_size"]),
            "image": ModalitySpec("image", "image", (1, p["image_size"], p["image_size"])),
        }
        target = (
            TargetSpec("regression", 1)
            if p["regression"]
            else TargetSpec("multiclass", k, tuple(str(i) for i in range(k)))
        )
        return PreparedData(datasets.DatasetDict(out), specs, target, aligned=p["aligned"])


def _prototypes(rng: np.random.Generator, p: dict[str, Any]) -> dict[str, np.ndarray]:
    k, s = p["num_classes"], p["image_size"]
    signal = rng.choice([-1.0, 1.0], size=(k, p["signal_dim"])).astype(np.float32)
    # Smooth random images (a few low-frequency cosines), unit variance, one per class.
    yy, xx = np.meshgrid(np.linspace(0, np.pi, s), np.linspace(0, np.pi, s), indexing="ij")
    images = np.zeros((k, 1, s, s), dtype=np.float32)
    for c in range(k):
        for _ in range(3):
            fy, fx = rng.integers(1, 4, size=2)
            images[c, 0] += rng.normal() * np.cos(fy * yy + rng.uniform(0, np.pi)) * np.cos(fx * xx)
        images[c] = (images[c] - images[c].mean()) / (images[c].std() + 1e-6)
    return {"signal": signal, "image": images}


def _latents(rng: np.random.Generator, n: int, p: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The label and the latent class each modality carries."""
    k = p["num_classes"]
    inter = p["interaction"]
    own = {m: rng.integers(0, k, size=n) for m in MODALITIES}  # independent by default
    if inter == "synergy":
        y = (own["signal"] + own["tokens"]) % k
    elif inter == "redundant":
        y = own["signal"].copy()
        own = {m: y for m in MODALITIES}
    elif inter == "unique":
        y = own[p["informative"]].copy()
    else:  # temporal: the label is the last event of signal
        y = own["signal"].copy()
    return y, own


def _event_types(rng: np.random.Generator, c: int, p: dict[str, Any], temporal: bool) -> np.ndarray:
    k = p["num_classes"]
    if temporal:
        # a random number of events of random types, then the label's event: at no step can an
        # RNN tell that the event it sees is the last one, so only the final state knows
        before = rng.integers(0, k, size=int(rng.integers(k - 1, 2 * k)))
        return np.append(before, c)
    types = np.concatenate([np.full(p["events"], c), rng.integers(0, k, size=p["distractors"])])
    return rng.permutation(types)


def generate(rng: np.random.Generator, n: int, p: dict[str, Any], protos: dict[str, np.ndarray]) -> dict[str, Any]:
    y, own = _latents(rng, n, p)
    temporal = p["interaction"] == "temporal"
    k, noise = p["num_classes"], p["noise"]
    signals, tokens = [], []
    lengths = rng.integers(p["seq_len"][0], p["seq_len"][1] + 1, size=n)
    for i in range(n):
        t = int(lengths[i])
        types = _event_types(rng, int(own["signal"][i]), p, temporal)
        if temporal:
            # The decisive event is the final step: an RNN knows the label only there, so mean
            # pooling over its outputs must single out one step of T.
            last = t - 1
            steps = np.append(np.sort(rng.choice(last, size=len(types) - 1, replace=False)), last)
        else:
            steps = np.sort(rng.choice(t, size=len(types), replace=False))
        x = (noise * rng.standard_normal((t, p["signal_dim"]))).astype(np.float32)
        x[steps] += protos["signal"][types]
        signals.append(x)

        tt = t if p["aligned"] else int(rng.integers(p["token_len"][0], p["token_len"][1] + 1))
        types = _event_types(rng, int(own["tokens"][i]), p, temporal=False)
        steps = np.sort(rng.choice(tt, size=len(types), replace=False))
        seq = rng.integers(k + 1, p["vocab_size"], size=tt)
        corrupt = rng.random(len(types)) < p["token_noise"]
        seq[steps] = np.where(corrupt, rng.integers(k + 1, p["vocab_size"], size=len(types)), types + 1)
        tokens.append(seq.astype(np.int32))
    images = protos["image"][own["image"]] + noise * rng.standard_normal((n, *protos["image"].shape[1:]))
    label = y.astype(np.float32) if p["regression"] else y.astype(np.int64)
    return {"signal": signals, "tokens": tokens, "image": images.astype(np.float32), "label": label}
