"""Images stored once: the pictures of an image or video column kept apart from the rows.

Rows that show the same picture (the same file, or identical bytes under another name) share one
stored image; a row holds its image's number (an image column) or its frames' numbers (a video
column). Pictures are stored resized, as ``uint8`` (C, H, W), or, when that would be much larger
than the source files, re-encoded as lossless PNG. A batch is made float where it is read (in the
loader's workers when ``data.num_workers>0``): scaled to [0, 1], then ``(x - mean) / std`` per
channel when the column sets them: the same values, bit for bit, as converting at preparation.

A store is two files in the prepared dataset's ``images/`` folder, ``<modality>.bin`` (the
pictures, one after another) and ``<modality>.idx.npy`` (where each one starts), written a
picture at a time: preparation holds at most the first 32 pictures (while ``auto`` chooses the
format) and a key per distinct picture, whatever the dataset's size.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

STORE_DIR = "images"
STORE_FORMATS = ("auto", "uint8", "png")
# auto: PNG when a uint8 picture is over this many times its source file's bytes
PNG_ABOVE = 3.0
DECIDE_AFTER = 32  # auto decides on the first pictures stored


@dataclass(frozen=True)
class StoreInfo:
    """What the marker keeps of a store: its pictures' format, count and (C, H, W), the
    column's mean/std (None: none), and whether rows hold frames (video) or one picture."""

    modality: str
    format: str
    count: int
    shape: tuple[int, int, int]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    frames: bool = False
    source_bytes: int = 0  # the bytes of the distinct source pictures read
    references: int = 0  # the rows (image) or frames (video) that point at a picture

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StoreInfo:
        d = dict(d)
        for k in ("shape", "mean", "std"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)

    def stored_bytes(self, folder: Path) -> int:
        return sum((folder / STORE_DIR / f).stat().st_size for f in files(self.modality))


def files(modality: str) -> tuple[str, str]:
    return f"{modality}.bin", f"{modality}.idx.npy"


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class StoreWriter:
    """Collects the distinct pictures of one column into ``folder/images/`` during preparation.

    ``add(key, picture)`` returns the picture's number: the number of an earlier picture of the
    same key, or a new one (``picture()`` is called only then: a shared file is decoded once)."""

    def __init__(
        self,
        folder: Path,
        modality: str,
        shape: tuple[int, int, int],
        fmt: str = "auto",
        mean: Any = None,
        std: Any = None,
        frames: bool = False,
    ) -> None:
        if fmt not in STORE_FORMATS:
            raise ValueError(f"store format {fmt!r} is not one of {STORE_FORMATS}")
        self.folder = folder / STORE_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self.modality, self.shape, self.requested, self.frames = modality, tuple(int(s) for s in shape), fmt, frames
        self.mean = None if mean is None else tuple(float(v) for v in np.ravel(mean))
        self.std = None if std is None else tuple(float(v) for v in np.ravel(std))
        self.format = fmt if fmt != "auto" else None
        self.numbers: dict[str, int] = {}
        self.pending: list[np.ndarray] = []  # auto: the first pictures, until the format is chosen
        self.offsets = [0]
        self.source_bytes = self.references = 0
        self._out = open(self.folder / files(modality)[0], "wb")  # noqa: SIM115 - closed by finish()

    def add(self, key: str, picture: Callable[[], tuple[np.ndarray, int]]) -> int:
        """The number of the picture named ``key``; ``picture()`` gives (uint8 (C, H, W) array, its
        source's bytes) when it is new."""
        self.references += 1
        number = self.numbers.get(key)
        if number is not None:
            return number
        arr, source = picture()
        if arr.dtype != np.uint8 or tuple(arr.shape) != self.shape:
            raise ValueError(f"a stored picture must be uint8 {self.shape}, got {arr.dtype} {arr.shape}")
        self.source_bytes += int(source or arr.nbytes)
        number = self.numbers[key] = len(self.numbers)
        if self.format is None:
            self.pending.append(arr)
            if len(self.pending) >= DECIDE_AFTER:
                self._decide()
        else:
            self._write(arr)
        return number

    def _decide(self) -> None:
        per_picture = self.source_bytes / max(len(self.numbers), 1)
        self.format = "png" if int(np.prod(self.shape)) > PNG_ABOVE * per_picture else "uint8"
        for arr in self.pending:
            self._write(arr)
        self.pending = []

    def _write(self, arr: np.ndarray) -> None:
        data = encode_png(arr) if self.format == "png" else np.ascontiguousarray(arr).tobytes()
        self._out.write(data)
        self.offsets.append(self.offsets[-1] + len(data))

    def finish(self) -> StoreInfo:
        if self.format is None:
            self._decide()
        self._out.close()
        tmp = self.folder / f".{self.modality}.idx.npy"
        np.save(tmp, np.asarray(self.offsets, dtype=np.int64))
        os.replace(tmp, self.folder / files(self.modality)[1])
        return StoreInfo(
            self.modality,
            str(self.format),
            len(self.numbers),
            self.shape,  # type: ignore[arg-type]
            self.mean,
            self.std,
            self.frames,
            self.source_bytes,
            self.references,
        )


def to_float(pictures: np.ndarray, mean: Any = None, std: Any = None) -> np.ndarray:
    """uint8 (..., C, H, W) -> float32 in [0, 1], then ``(x - mean) / std`` per channel when
    either is given (the other defaults to 0 or 1): the one conversion of every stored picture."""
    x = np.asarray(pictures).astype(np.float32) / 255.0
    if mean is not None or std is not None:
        c = x.shape[-3]
        m = np.asarray(mean if mean is not None else [0.0] * c, dtype=np.float32).reshape(-1, 1, 1)
        s = np.asarray(std if std is not None else [1.0] * c, dtype=np.float32).reshape(-1, 1, 1)
        x = (x - m) / s
    return np.ascontiguousarray(x, dtype=np.float32)


def encode_png(arr: np.ndarray) -> bytes:
    from PIL import Image

    img = Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_png(data: bytes, channels: int) -> np.ndarray:
    from PIL import Image

    arr = np.asarray(Image.open(io.BytesIO(data)))
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


class ImageStore:
    """The reading side: pictures by number, as float32 batches. Opened lazily in each process
    (a loader worker memory-maps the files itself; nothing large is pickled)."""

    def __init__(self, prepared: Path, info: StoreInfo) -> None:
        self.prepared, self.info = prepared, info
        self._data: np.ndarray | None = None
        self._offsets: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_data": None, "_offsets": None}

    def _open(self) -> None:
        if self._data is None:
            binary, index = files(self.info.modality)
            folder = self.prepared / STORE_DIR
            self._offsets = np.load(folder / index, allow_pickle=False)
            size = int(self._offsets[-1])
            self._data = np.memmap(folder / binary, dtype=np.uint8, mode="r", shape=(size,)) if size else np.zeros(0)

    def raw(self, numbers: np.ndarray) -> np.ndarray:
        """(N, C, H, W) uint8 pictures."""
        self._open()
        numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
        if self.info.format == "uint8":
            pictures = self._data.reshape(-1, *self.info.shape)  # type: ignore[union-attr]
            return np.asarray(pictures[numbers])
        out = np.empty((len(numbers), *self.info.shape), dtype=np.uint8)
        for i, n in enumerate(numbers):
            lo, hi = int(self._offsets[n]), int(self._offsets[n + 1])  # type: ignore[index]
            out[i] = decode_png(self._data[lo:hi].tobytes(), self.info.shape[0])  # type: ignore[index]
        return out

    def floats(self, numbers: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32: scaled to [0, 1], then normalised by the column's mean/std."""
        return to_float(self.raw(numbers), self.info.mean, self.info.std)

    def column(self, values: Any) -> Any:
        """A gathered column made pictures: an image column's numbers (N,) -> (N, C, H, W); a
        video column's per-row frame numbers -> a list of (T, C*H*W) clips."""
        if not self.info.frames:
            return self.floats(np.asarray(values))
        clips = [np.asarray(v, dtype=np.int64).reshape(-1) for v in values]
        if not clips:
            return []
        frames = self.floats(np.concatenate(clips)).reshape(-1, int(np.prod(self.info.shape)))
        return np.split(frames, np.cumsum([len(c) for c in clips])[:-1])


def open_stores(prepared: Path, marker: dict[str, Any], modalities: Any) -> dict[str, ImageStore]:
    """The stores of the prepared dataset at ``prepared`` for ``modalities`` (those it has)."""
    stored = marker.get("stores") or {}
    return {m: ImageStore(prepared, StoreInfo.from_dict(stored[m])) for m in modalities if m in stored}
