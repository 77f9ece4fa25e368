"""Frozen pretrained encoders applied once, at preparation: a column's images or texts become the
features of a pretrained model, cached with the dataset, so a sweep over recurrent encoders and
fusions reads features instead of running the frozen model every epoch.

``data.columns.<m>.encode_with``:

- text columns: ``{pretrained: minilm | <folder>, output: sequence | pooled}`` (the column is
  tokenized with that model's tokenizer): per-token outputs (a ``sequence`` modality) or their
  masked mean (a ``vector``);
- image columns: ``{backbone: <folder> | efficientnet_lite0, output: pooled | grid}``: the
  pooled output (a ``vector``) or the spatial grid's items, row by row (a ``sequence``).
"""

from __future__ import annotations

import logging
from typing import Any

import datasets
import numpy as np
import torch

from fuselab.data.specs import ModalitySpec
from fuselab.data.stores import ImageStore
from fuselab.errors import ConfigError

log = logging.getLogger(__name__)

OUTPUTS = {"text": ("sequence", "pooled"), "image": ("pooled", "grid")}
BATCH = 32


def check(m: str, kind: str, setting: Any) -> dict[str, Any]:
    """The ``encode_with`` setting of column ``m``, checked."""
    setting = dict(setting or {})
    key = "pretrained" if kind == "text" else "backbone"
    if kind not in OUTPUTS or not setting.get(key):
        raise ConfigError(
            f"data.columns.{m}.encode_with: text columns take {{pretrained: <folder or minilm>, output: ...}}, "
            f"image columns {{backbone: <folder>, output: ...}}; got {setting} on a {kind} column"
        )
    output = setting.get("output", OUTPUTS[kind][0])
    if output not in OUTPUTS[kind]:
        raise ConfigError(f"data.columns.{m}.encode_with.output={output!r} is not one of {list(OUTPUTS[kind])}")
    return {key: str(setting[key]), "output": output}


def encoder_for(m: str, kind: str, setting: dict[str, Any], spec: ModalitySpec) -> torch.nn.Module:
    """The frozen model (eval mode) that encodes column ``m``."""
    from fuselab.data.readers.pretrained_files import check_channels, load_transformer, load_vision

    try:
        if kind == "text":
            return load_transformer(setting["pretrained"]).eval()
        model = load_vision(setting["backbone"]).eval()
        check_channels(model, setting["backbone"], m, int(spec.shape[0]))
    except ConfigError as exc:  # name the setting to change
        raise ConfigError(f"data.columns.{m}.encode_with: {exc}") from exc
    return model


@torch.no_grad()
def _features(encoder: torch.nn.Module, kind: str, output: str, values: list[Any]) -> list[np.ndarray]:
    from fuselab.data.readers.pretrained_files import image_features, text_states

    if kind == "text":
        lengths = torch.tensor([len(v) for v in values])
        x = torch.zeros(len(values), int(lengths.max()), dtype=torch.long)
        for i, v in enumerate(values):
            x[i, : len(v)] = torch.as_tensor(np.asarray(v, dtype=np.int64))
        states = text_states(encoder, x, lengths)
        if output == "sequence":
            return [states[i, : int(n)].numpy() for i, n in enumerate(lengths)]
        mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1).to(states.dtype)
        return list(((states * mask).sum(1) / mask.sum(1)).numpy())
    images = torch.as_tensor(np.stack([np.asarray(v, dtype=np.float32) for v in values]))
    items, pooled, _ = image_features(encoder, images)
    return list(pooled.numpy()) if output == "pooled" else list(items.numpy())


def encode_column(
    splits: dict[str, datasets.Dataset],
    m: str,
    kind: str,
    setting: dict[str, Any],
    spec: ModalitySpec,
    store: ImageStore | None = None,
) -> tuple[dict[str, datasets.Dataset], ModalitySpec]:
    """Replace column ``m`` of every split by the frozen encoder's features; returns the splits
    and the new spec (``sequence`` or ``vector``). When the column's pictures are kept in
    ``store``, each distinct picture is encoded once (into a memory-mapped file beside the store)
    and its rows take their picture's features."""
    encoder = encoder_for(m, kind, setting, spec)
    output = setting["output"]
    if store is not None:
        table = _encode_store(encoder, output, store)

        def values_features(cells: list[Any]) -> list[np.ndarray]:
            return list(np.asarray(table[np.asarray(cells, dtype=np.int64)]))

        probe = table[0]
    else:

        def values_features(cells: list[Any]) -> list[np.ndarray]:
            return _features(encoder, kind, output, cells)

        probe = values_features([splits["train"][0][m]])[0]
    as_sequence = probe.ndim == 2
    new_spec = (
        ModalitySpec(m, "sequence", (None, int(probe.shape[-1])))
        if as_sequence
        else ModalitySpec(m, "vector", (int(probe.shape[-1]),))
    )
    feature = (
        datasets.Array2D(shape=(None, int(probe.shape[-1])), dtype="float32")
        if as_sequence
        else datasets.Sequence(datasets.Value("float32"), length=int(probe.shape[-1]))
    )
    out = {}
    for split, ds in splits.items():
        features = ds.features.copy()
        features[m] = feature

        def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            return {**batch, m: values_features(batch[m])}

        out[split] = ds.map(encode, batched=True, batch_size=BATCH, features=features, desc=f"fuselab: {m} features")
    log.info("data.columns.%s: %s features of the frozen encoder cached (%s)", m, output, new_spec.shape)
    return out, new_spec


def _encode_store(encoder: torch.nn.Module, output: str, store: ImageStore) -> np.ndarray:
    """The features of every stored picture, in store order, in a memory-mapped .npy file."""
    count = store.info.count
    first = _features(encoder, "image", output, list(store.floats(np.arange(min(1, count)))))[0]
    path = store.prepared / f"{store.info.modality}.features.npy"
    table = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, *first.shape))
    for lo in range(0, count, BATCH):
        numbers = np.arange(lo, min(lo + BATCH, count))
        table[lo : lo + len(numbers)] = np.stack(_features(encoder, "image", output, list(store.floats(numbers))))
    table.flush()
    log.info("%s: %d distinct pictures encoded once for their rows", store.info.modality, count)
    return table
