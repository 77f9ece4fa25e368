"""One encoder per modality kind, each mapping a :class:`ModalityBatch` to (B, out_dim)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from fuselab.data.specs import ModalityBatch, ModalitySpec
from fuselab.errors import ConfigError
from fuselab.models.items import MemoryItems

RNNFactory = Callable[..., nn.Module]  # partial(RecurrentEncoder, cell=..., ...)(input_dim=...)


class StepFeatures(nn.Module):
    """What one time step of a temporal modality looks like before recurrence:
    the raw features of a ``sequence``, the embedding of a ``tokens`` id, or a ``video`` frame
    encoded by a CNN shared by all frames (only valid frames are encoded; padding stays zero).
    (B, T), (B, T, D) or (B, T, C*H*W) -> (B, T, out_dim)."""

    def __init__(self, spec: ModalitySpec, embed_dim: int, frame_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.modality, self.kind = spec.name, spec.kind
        if spec.kind == "tokens":
            self.embed: nn.Module = nn.Embedding(int(spec.vocab_size), embed_dim)  # type: ignore[arg-type]
            self.out_dim = embed_dim
        elif spec.kind == "sequence":
            self.embed = nn.Identity()
            self.out_dim = int(spec.shape[-1])  # type: ignore[arg-type]
        elif spec.kind == "video":
            if frame_encoder is None:
                raise ValueError(f"video modality {spec.name!r} needs a frame encoder")
            self.embed = frame_encoder
            self.out_dim = int(frame_encoder.out_dim)
            self.frame_shape = tuple(int(d) for d in spec.shape[1:])  # type: ignore[arg-type]
        else:
            raise ValueError(f"modality {spec.name!r} of kind {spec.kind!r} has no time steps")

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if self.kind != "video":
            return self.embed(x)
        # (B, T, C*H*W) frames -> the shared CNN on the valid frames only -> (B, T, out_dim)
        b, t = x.shape[:2]
        valid = (
            torch.ones(b, t, dtype=torch.bool, device=x.device)
            if lengths is None
            else torch.arange(t, device=x.device)[None, :] < lengths.to(x.device)[:, None]
        )
        frames = x[valid].reshape(-1, *self.frame_shape)
        encoded = self.embed(ModalityBatch(frames, None, valid.new_ones(len(frames))))
        out = encoded.new_zeros(b, t, encoded.shape[-1])
        out[valid] = encoded
        return out


class TemporalEncoder(nn.Module):
    """A sequence or tokens modality: step features, then the recurrent encoder.
    ``h0`` (B, hidden) optionally sets the initial state; ``step_bias`` (B, step_dim) is added to
    every step (both used by conditioned fusion)."""

    def __init__(self, spec: ModalitySpec, rnn: RNNFactory, embed_dim: int, steps: nn.Module | None = None) -> None:
        super().__init__()
        self.steps = steps if steps is not None else StepFeatures(spec, embed_dim)
        self.rnn = rnn(input_dim=self.steps.out_dim)
        self.out_dim = self.rnn.out_dim

    def forward(
        self, mb: ModalityBatch, h0: torch.Tensor | None = None, step_bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        steps = self.steps(mb.x, mb.lengths)
        if step_bias is not None:
            steps = steps + step_bias.unsqueeze(1)
        pooled, _, _ = self.rnn(steps, mb.lengths, h0=h0)
        return pooled

    def memory(self, mb: ModalityBatch) -> MemoryItems:
        """pooled (B, out_dim), per-step outputs (B, T, out_dim), valid steps (B, T)."""
        pooled, outputs, mask = self.rnn(self.steps(mb.x, mb.lengths), mb.lengths)
        return MemoryItems(pooled, outputs, mask, ("steps", outputs.shape[1]))

    @property
    def memory_dim(self) -> int:
        return self.out_dim


class ImageEncoder(nn.Module):
    """(B, C, H, W) -> (B, out_dim): conv blocks (conv, optional batch norm, ReLU, 2x2 max pool
    between blocks, and after the last with ``pool_last``), an adaptive average pool to a
    ``grid_pool`` x ``grid_pool`` map, flattened, then (``project``) dropout, a linear layer to
    ``out_dim`` and ReLU. Without ``project`` the flattened map is the encoding
    (out_dim = channels[-1] * grid_pool**2), as in LeNet-style encoders.

    ``norm``: ``none`` (the default: a sample's encoding never depends on the rest of its batch)
    or ``batch`` (BatchNorm2d after each conv, whose bias it replaces)."""

    def __init__(
        self,
        spec: ModalitySpec,
        out_dim: int,
        channels: Sequence[int] = (16, 32),
        dropout: float = 0.0,
        kernel_sizes: int | Sequence[int] = 3,
        norm: str = "none",
        pool_last: bool = False,
        grid_pool: int = 2,
        project: bool = True,
    ):
        super().__init__()
        channels = [int(c) for c in channels]
        kernels = (
            [int(kernel_sizes)] * len(channels) if isinstance(kernel_sizes, int) else [int(k) for k in kernel_sizes]
        )
        if not channels or len(kernels) != len(channels):
            raise ValueError(
                f"image encoder of {spec.name!r}: {len(kernels)} kernel sizes for {len(channels)} conv blocks"
            )
        if norm not in ("none", "batch"):
            raise ValueError(f"image encoder of {spec.name!r}: norm={norm!r} is not one of ['none', 'batch']")
        layers: list[nn.Module] = []
        width = int(spec.shape[0])  # type: ignore[arg-type]
        for i, (c, k) in enumerate(zip(channels, kernels)):
            layers.append(nn.Conv2d(width, c, k, padding=k // 2, bias=norm == "none"))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.ReLU())
            if pool_last or i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            width = c
        self.grid_layers = len(layers)  # net[:grid_layers] gives the spatial grid
        layers += [nn.AdaptiveAvgPool2d(int(grid_pool)), nn.Flatten()]
        flat = width * int(grid_pool) ** 2
        if project:
            layers += [nn.Dropout(dropout), nn.Linear(flat, out_dim), nn.ReLU()]
        else:
            layers.append(nn.Dropout(dropout))
            out_dim = flat
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim
        self.memory_dim = width

    def forward(self, mb: ModalityBatch) -> torch.Tensor:
        return self.net(mb.x)

    def memory(self, mb: ModalityBatch) -> MemoryItems:
        """pooled (B, out_dim), the last conv block's grid (B, h*w, channels) row by row, an
        all-true mask (B, h*w), layout ("grid", h, w)."""
        grid = self.net[: self.grid_layers](mb.x)
        pooled = self.net[self.grid_layers :](grid)
        items = grid.flatten(2).transpose(1, 2)
        mask = torch.ones(items.shape[:2], dtype=torch.bool, device=items.device)
        return MemoryItems(pooled, items, mask, ("grid", grid.shape[2], grid.shape[3]))


class VectorEncoder(nn.Module):
    """(B, D) -> (B, out_dim): a two-layer MLP."""

    def __init__(self, spec: ModalitySpec, out_dim: int, hidden: int = 64, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(int(spec.shape[0]), hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim), nn.ReLU()
        )  # type: ignore[arg-type]
        self.out_dim = out_dim

    def forward(self, mb: ModalityBatch) -> torch.Tensor:
        return self.net(mb.x)

    def memory(self, mb: ModalityBatch) -> MemoryItems:
        """pooled (B, out_dim), the same vector as one memory item (B, 1, out_dim), mask (B, 1)."""
        pooled = self.net(mb.x)
        mask = torch.ones(pooled.shape[0], 1, dtype=torch.bool, device=pooled.device)
        return MemoryItems(pooled, pooled.unsqueeze(1), mask, ("steps", 1))

    @property
    def memory_dim(self) -> int:
        return self.out_dim


# what ``model.encoders.modalities.<name>`` may set, per modality kind
MODALITY_KEYS = {
    "image": (
        "channels",
        "kernel_sizes",
        "norm",
        "pool_last",
        "grid_pool",
        "project",
        "out_dim",
        "dropout",
        "backbone",
        "train_layers",
    ),
    "vector": ("hidden", "out_dim", "dropout"),
    "sequence": ("rnn",),
    "tokens": ("embed_dim", "rnn", "vectors", "freeze_vectors", "pretrained", "pretrained_output", "train_layers"),
    # a video's frames go through an image encoder (these keys), then its own recurrent encoder
    "video": ("channels", "kernel_sizes", "norm", "pool_last", "grid_pool", "project", "out_dim", "dropout", "rnn"),
}


class EncoderFactory:
    """Builds the encoder of a modality from its spec (config: ``model.encoders``).

    The top-level settings serve every modality; ``modalities`` overrides them for one modality
    by name, e.g. ``{audio: {channels: [6, 12, 24], kernel_sizes: [5, 3, 3], norm: batch}}`` or
    ``{text: {embed_dim: 300, rnn: {hidden_size: 128}}}`` (``rnn``: keys of the ``rnn`` group for
    that modality's recurrent encoder). Which keys a kind takes: :data:`MODALITY_KEYS`."""

    def __init__(
        self,
        rnn: RNNFactory,
        embed_dim: int = 32,
        static_dim: int = 64,
        image_channels: Sequence[int] = (16, 32),
        vector_hidden: int = 64,
        dropout: float = 0.0,
        modalities: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.rnn = rnn
        self.embed_dim = int(embed_dim)
        self.static_dim = int(static_dim)
        self.image_channels = [int(c) for c in image_channels]
        self.vector_hidden = int(vector_hidden)
        self.dropout = float(dropout)
        self.modalities = {str(m): dict(o or {}) for m, o in (modalities or {}).items()}

    def check(self, specs: Mapping[str, ModalitySpec]) -> None:
        """Refuse settings for a modality the data does not have, or keys its kind does not take."""
        for name, overrides in self.modalities.items():
            if name not in specs:
                raise ConfigError(
                    f"model.encoders.modalities.{name}: the data has no modality {name!r} (it has {sorted(specs)})"
                )
            allowed = MODALITY_KEYS[specs[name].kind]
            unknown = sorted(set(overrides) - set(allowed))
            if unknown:
                raise ConfigError(
                    f"model.encoders.modalities.{name}: {unknown} do not apply to a {specs[name].kind} modality;"
                    f" it takes {list(allowed)}"
                )

    def _rnn_for(self, spec: ModalitySpec) -> RNNFactory:
        overrides = self.modalities.get(spec.name, {}).get("rnn") or {}
        return partial(self.rnn, **dict(overrides)) if overrides else self.rnn

    def __call__(self, spec: ModalitySpec) -> nn.Module:
        own = self.modalities.get(spec.name, {})
        if own.get("pretrained") and own.get("pretrained_output", "sequence") == "pooled":
            from fuselab.models.pretrained import PooledTextEncoder

            return PooledTextEncoder(self.steps(spec))
        if spec.is_temporal:  # steps: raw features, an embedding, video frames or a pretrained encoder
            return TemporalEncoder(spec, self._rnn_for(spec), 0, steps=self.steps(spec))
        if spec.kind == "image" and own.get("backbone"):
            from fuselab.models.pretrained import ImageBackbone

            return ImageBackbone(spec, str(own["backbone"]), int(own.get("train_layers", 0)))
        if spec.kind == "image":
            return self._image_encoder(spec, own)
        return VectorEncoder(
            spec,
            int(own.get("out_dim", self.static_dim)),
            int(own.get("hidden", self.vector_hidden)),
            float(own.get("dropout", self.dropout)),
        )

    def steps(self, spec: ModalitySpec) -> nn.Module:
        """What one step of a temporal modality is before recurrence: an embedding or raw
        features (:class:`StepFeatures`), or a pretrained transformer's outputs."""
        own = self.modalities.get(spec.name, {})
        if own.get("pretrained"):
            from fuselab.models.pretrained import OUTPUTS, PretrainedSteps

            if spec.kind != "tokens" or own.get("pretrained_output", "sequence") not in OUTPUTS:
                raise ConfigError(
                    f"model.encoders.modalities.{spec.name}: a pretrained encoder reads tokens (a text column with "
                    f"the model's tokenizer) and pretrained_output is one of {list(OUTPUTS)}"
                )
            return PretrainedSteps(spec.name, str(own["pretrained"]), int(own.get("train_layers", 0)))
        if spec.kind == "video":
            frame = ModalitySpec(spec.name, "image", tuple(spec.shape[1:]))
            return StepFeatures(spec, 0, frame_encoder=self._image_encoder(frame, own))
        return StepFeatures(spec, int(own.get("embed_dim", self.embed_dim)))

    def _image_encoder(self, spec: ModalitySpec, own: Mapping[str, Any]) -> ImageEncoder:
        settings = {
            k: v
            for k, v in own.items()
            if k not in ("out_dim", "channels", "dropout", "rnn", "backbone", "train_layers")
        }
        return ImageEncoder(
            spec,
            int(own.get("out_dim", self.static_dim)),
            own.get("channels", self.image_channels),
            float(own.get("dropout", self.dropout)),
            **settings,
        )
