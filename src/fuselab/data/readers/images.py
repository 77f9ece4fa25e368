"""Images from files (or decoded PIL images, or ``datasets`` Image cells), resized and
normalised at preparation time: (C, H, W) float32."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from fuselab.errors import ConfigError

IMAGE_SETTINGS = ("size", "channels", "mean", "std")


def _open(value: Any, base: Path) -> tuple[Any, str]:
    """A PIL image and a name for messages, from a path (relative to ``base``), an undecoded
    ``{"path", "bytes"}`` cell or a PIL image."""
    from PIL import Image, UnidentifiedImageError

    if hasattr(value, "convert"):
        return value, "an image"
    name = "image bytes"
    try:
        if isinstance(value, dict) and value.get("bytes"):
            name = value.get("path") or name
            img = Image.open(io.BytesIO(value["bytes"]))
        elif isinstance(value, (str, Path)) or (isinstance(value, dict) and value.get("path")):
            path = Path(value["path"] if isinstance(value, dict) else value).expanduser()
            path = path if path.is_absolute() else base / path
            name = str(path)
            img = Image.open(path)
        else:
            raise ConfigError(f"an image cell must be a file path, image bytes or an image, got {type(value).__name__}")
        img.load()
        return img, name
    except FileNotFoundError as exc:
        raise ConfigError(f"the image {name} does not exist") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ConfigError(f"the image {name} cannot be read (corrupt or not an image): {exc}") from exc


def image_shape(settings: dict[str, Any]) -> tuple[int, int, int] | None:
    """(C, H, W) when ``size`` fixes it (an int for a square, or [H, W]), else None."""
    size = settings.get("size")
    if size is None:
        return None
    h, w = (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))
    return (int(settings.get("channels", 3)), h, w)


def image_of(value: Any, base: Path, settings: dict[str, Any]) -> np.ndarray:
    """(C, H, W) float32: ``channels`` 1 (grey) or 3 (RGB), resized to ``size`` (bilinear),
    scaled to [0, 1], then ``(x - mean) / std`` per channel when given."""
    from PIL import Image

    channels = int(settings.get("channels", 3))
    if channels not in (1, 3):
        raise ConfigError(f"image channels={channels} is not 1 (grey) or 3 (RGB)")
    img, name = _open(value, base)
    try:
        img = img.convert("L" if channels == 1 else "RGB")
        shape = image_shape(settings)
        if shape is not None:
            img = img.resize((shape[2], shape[1]), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.float32) / 255.0
    except OSError as exc:
        raise ConfigError(f"the image {name} cannot be decoded: {exc}") from exc
    arr = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    if settings.get("mean") is not None or settings.get("std") is not None:
        mean = np.asarray(settings.get("mean", [0.0] * channels), dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(settings.get("std", [1.0] * channels), dtype=np.float32).reshape(-1, 1, 1)
        if mean.shape[0] != channels or std.shape[0] != channels or (std <= 0).any():
            raise ConfigError(
                f"image mean/std need {channels} values (std > 0), got {settings.get('mean')}, {settings.get('std')}"
            )
        arr = (arr - mean) / std
    return np.ascontiguousarray(arr, dtype=np.float32)


FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def video_of(value: Any, base: Path, settings: dict[str, Any]) -> np.ndarray:
    """A clip as (T, C*H*W) float32 frames (each as :func:`image_of` makes it): from a folder of
    frame images (in name order), a ``.npy`` file, or an array (T, H, W) or (T, C, H, W) with
    values in [0, 255] (uint8) or [0, 1]. A clip without frames is refused."""
    if isinstance(value, (str, Path)):
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base / path
        if path.is_dir():
            frames = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
            if not frames:
                raise ConfigError(f"the video folder {path} holds no frame images ({', '.join(FRAME_SUFFIXES)})")
            return np.stack([image_of(f, base, settings).reshape(-1) for f in frames])
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
    frames = []
    for frame in arr:
        grey = frame if frame.ndim == 2 else (frame[0] if frame.shape[0] == 1 else frame.transpose(1, 2, 0))
        img = Image.fromarray(np.clip(np.asarray(grey, dtype=np.float32) * (255.0 / scale), 0, 255).astype(np.uint8))
        frames.append(image_of(img, base, settings).reshape(-1))
    return np.stack(frames)
