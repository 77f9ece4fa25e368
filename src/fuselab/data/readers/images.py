"""Pictures from files (or bytes, decoded PIL images, ``datasets`` Image cells) and clips of
them: each read into a ``uint8`` (C, H, W) picture (grey or RGB, resized to ``size``) under a key
that identical pictures share, so :mod:`fuselab.data.stores` keeps each once; :func:`to_float`
makes pictures the float32 the model reads ([0, 1], then ``(x - mean) / std`` per channel)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fuselab.data import stores
from fuselab.data.stores import STORE_FORMATS, digest
from fuselab.errors import ConfigError

IMAGE_SETTINGS = ("size", "channels", "mean", "std", "crop", "store")
CROPS = ("none", "center")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# a picture not decoded yet: its key, and how to make it (uint8 (C, H, W), its source's bytes)
Pending = tuple[str, Callable[[], tuple[np.ndarray, int]]]


def image_shape(settings: dict[str, Any]) -> tuple[int, int, int] | None:
    """(C, H, W) when ``size`` fixes it (an int for a square, or [H, W]), else None."""
    size = settings.get("size")
    if size is None:
        return None
    h, w = (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))
    return (int(settings.get("channels", 3)), h, w)


def check_settings(name: str, settings: dict[str, Any]) -> None:
    """Channels, mean/std and store of column ``name``, checked before anything is read."""
    channels = int(settings.get("channels", 3))
    if channels not in (1, 3):
        raise ConfigError(f"data.columns.{name}: channels={channels} is not 1 (grey) or 3 (RGB)")
    for key in ("mean", "std"):
        values = settings.get(key)
        if values is not None and (len(np.ravel(values)) != channels or (key == "std" and min(np.ravel(values)) <= 0)):
            raise ConfigError(
                f"data.columns.{name}: image mean/std need {channels} values (std > 0), got {key}={values}"
            )
    if settings.get("crop", "none") not in CROPS:
        raise ConfigError(f"data.columns.{name}: crop={settings.get('crop')!r} is not one of {list(CROPS)}")
    if settings.get("store", "auto") not in STORE_FORMATS:
        raise ConfigError(f"data.columns.{name}: store={settings.get('store')!r} is not one of {list(STORE_FORMATS)}")


def _bytes_of(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"the image {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"the image {path} is a folder, not an image file") from exc


def _resolve(value: Any, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _decode(data: bytes, name: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise ConfigError(f"the image {name} cannot be read (corrupt or not an image): {exc}") from exc
    return img


def picture(img: Any, settings: dict[str, Any], name: str = "an image") -> np.ndarray:
    """A PIL image as uint8 (C, H, W): grey or RGB (``channels``), resized to ``size`` (bilinear);
    with ``crop: center``, first cut to the size's aspect ratio around the centre (as ImageNet
    models are evaluated) instead of squeezed."""
    from PIL import Image

    channels = int(settings.get("channels", 3))
    try:
        img = img.convert("L" if channels == 1 else "RGB")
        shape = image_shape(settings)
        if shape is not None and settings.get("crop") == "center":
            w, h = img.size
            keep_w, keep_h = min(w, round(h * shape[2] / shape[1])), min(h, round(w * shape[1] / shape[2]))
            left, top = (w - keep_w) // 2, (h - keep_h) // 2
            img = img.crop((left, top, left + keep_w, top + keep_h))
        if shape is not None and img.size != (shape[2], shape[1]):
            img = img.resize((shape[2], shape[1]), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    except OSError as exc:
        raise ConfigError(f"the image {name} cannot be decoded: {exc}") from exc
    return np.ascontiguousarray(arr[None] if channels == 1 else arr.transpose(2, 0, 1))


class PictureReader:
    """Reads image cells as :data:`Pending` pictures. A file named twice is read once (its key
    remembered by path); files or cells of identical bytes share a key."""

    def __init__(self, base: Path, settings: dict[str, Any]) -> None:
        self.base, self.settings = base, settings
        self.keys: dict[str, str] = {}  # a path read before -> its key

    def pending(self, value: Any) -> Pending:
        if hasattr(value, "convert"):  # a decoded image
            raw = value.tobytes()
            key = digest(f"{value.mode}{value.size}".encode() + raw)
            return key, lambda: (picture(value, self.settings), 0)
        if isinstance(value, dict) and value.get("bytes"):
            data = bytes(value["bytes"])
            name = value.get("path") or "image bytes"
            return digest(data), lambda: (picture(_decode(data, name), self.settings, name), len(data))
        if isinstance(value, (str, Path)) or (isinstance(value, dict) and value.get("path")):
            path = _resolve(value["path"] if isinstance(value, dict) else value, self.base)
            key = self.keys.get(str(path))
            data = None
            if key is None:
                data = _bytes_of(path)
                key = self.keys[str(path)] = digest(data)

            def make() -> tuple[np.ndarray, int]:
                raw = data if data is not None else _bytes_of(path)
                return picture(_decode(raw, str(path)), self.settings, str(path)), len(raw)

            return key, make
        raise ConfigError(f"an image cell must be a file path, image bytes or an image, got {type(value).__name__}")

    def clip(self, value: Any) -> list[Pending]:
        """A clip's frames: a folder of frame images (in name order), a ``.npy`` file, or an array
        (T, H, W) or (T, C, H, W) with values in [0, 255] (uint8) or [0, 1]. A clip without
        frames is refused."""
        if isinstance(value, (str, Path)):
            path = _resolve(value, self.base)
            if path.is_dir():
                frames = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
                if not frames:
                    raise ConfigError(f"the video folder {path} holds no frame images ({', '.join(FRAME_SUFFIXES)})")
                return [self.pending(f) for f in frames]
            if path.suffix == ".npy" and path.is_file():
                try:
                    value = np.load(path, allow_pickle=False)
                except (OSError, ValueError) as exc:
                    raise ConfigError(f"the video {path} cannot be read as a .npy array: {exc}") from exc
            else:
                raise ConfigError(f"the video {path} is neither a folder of frames nor a .npy file")
        arr = np.asarray(value)
        if arr.ndim not in (3, 4) or len(arr) == 0:
            raise ConfigError(f"a video needs frames (T, H, W) or (T, C, H, W) with T >= 1, got shape {arr.shape}")
        from PIL import Image

        scale = 1.0 if arr.dtype.kind == "f" and float(np.nanmax(arr)) <= 1.0 else 255.0
        out = []
        for frame in arr:
            grey = frame if frame.ndim == 2 else (frame[0] if frame.shape[0] == 1 else frame.transpose(1, 2, 0))
            pixels = np.clip(np.asarray(grey, dtype=np.float32) * (255.0 / scale), 0, 255).astype(np.uint8)
            out.append(self.pending(Image.fromarray(pixels)))
        return out


def to_float(pictures: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """uint8 (..., C, H, W) -> float32 with the column's ``mean``/``std`` (:func:`fuselab.data.stores.to_float`)."""
    return stores.to_float(pictures, settings.get("mean"), settings.get("std"))


def image_of(value: Any, base: Path, settings: dict[str, Any]) -> np.ndarray:
    """One image cell as (C, H, W) float32 (see :func:`to_float`)."""
    check_settings("image", settings)
    _, make = PictureReader(base, settings).pending(value)
    return to_float(make()[0], settings)


def video_of(value: Any, base: Path, settings: dict[str, Any]) -> np.ndarray:
    """One clip as (T, C*H*W) float32 frames (each as :func:`image_of` makes it)."""
    check_settings("video", settings)
    frames = [make()[0] for _, make in PictureReader(base, settings).clip(value)]
    return np.stack([to_float(f, settings).reshape(-1) for f in frames])
