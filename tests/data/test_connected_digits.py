"""Audio-visual connected digits built from the shared MNIST and FSDD files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA

from fuselab.data.datasets.connected_digits import ConnectedDigitsDataModule
from fuselab.data.readers.audio_features import log_mel, mel_filterbank, trim_silence
from fuselab.errors import ConfigError

needs_data = pytest.mark.skipif(
    not (SHARED_DATA / "mnist").is_dir() or not (SHARED_DATA / "fsdd").is_dir(),
    reason="needs MNIST and FSDD in ../shared/data (see its README)",
)
SMALL = dict(train_size=60, val_size=20, test_size=20)


def build(tmp_path, name: str, **kwargs):
    dm = ConnectedDigitsDataModule(
        str(SHARED_DATA / "mnist"), str(SHARED_DATA / "fsdd"), cache_dir=str(tmp_path / name), **{**SMALL, **kwargs}
    )
    return dm.build(tmp_path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("needs ../shared/data")
    return build(tmp_path_factory.mktemp("cd"), "a")


@pytest.mark.slow  # trains or builds a dataset for over a second
@needs_data
def test_builder_is_deterministic(built, tmp_path):
    again = build(tmp_path, "b")
    for split in ("train", "test"):
        one, two = built.splits[split].with_format("numpy"), again.splits[split].with_format("numpy")
        assert np.array_equal(one["image"], two["image"])
        assert all(np.array_equal(a, b) for a, b in zip(one["audio"], two["audio"]))
        assert all(np.array_equal(a, b) for a, b in zip(one["label"], two["label"]))


@needs_data
def test_each_modality_hides_a_different_digit(built):
    rows = built.splits["train"].with_format("numpy")
    checked = 0
    for label, image, hid_img, hid_aud in zip(rows["label"], rows["image"], rows["hidden_image"], rows["hidden_audio"]):
        n = len(label)
        if n < 2:
            assert hid_img == hid_aud == -1
            continue
        assert hid_img != hid_aud and 0 <= hid_img < n and 0 <= hid_aud < n
        slots = image[0].reshape(14, 5, 14).transpose(1, 0, 2)
        # the scribbled slot is uniform noise (about half its pixels lit); MNIST digits are mostly black
        assert (slots[hid_img] > 0.1).mean() > 0.6
        assert all((slots[i] > 0.1).mean() < 0.6 for i in range(n) if i != hid_img)
        assert all(slots[i].max() == 0 for i in range(n, 5))  # empty slots stay black
        checked += 1
    assert checked > 20


@needs_data
def test_official_split_keeps_fsdd_takes_apart(tmp_path):
    dm = ConnectedDigitsDataModule(str(SHARED_DATA / "mnist"), str(SHARED_DATA / "fsdd"), cache_dir=str(tmp_path))
    recordings = dm._recordings()
    takes = {s: {int(p.stem.split("_")[2]) for files in by.values() for _, p in files} for s, by in recordings.items()}
    assert takes["test"] == set(range(5)) and takes["val"] == set(range(5, 10)) and min(takes["train"]) == 10
    held = ConnectedDigitsDataModule(
        str(SHARED_DATA / "mnist"), str(SHARED_DATA / "fsdd"), split="speakers", cache_dir=str(tmp_path)
    )._recordings()
    speakers = {s: {spk for files in by.values() for spk, _ in files} for s, by in held.items()}
    assert speakers["test"] == {"theo"} and speakers["val"] == {"lucas"} and not speakers["train"] & {"theo", "lucas"}


def test_missing_sources_are_named():
    with pytest.raises(ConfigError, match="data.mnist_dir"):
        ConnectedDigitsDataModule(None, None)
    with pytest.raises(ConfigError, match="is not a folder"):
        ConnectedDigitsDataModule("/nonexistent/mnist", "/nonexistent/fsdd")


def test_log_mel_against_a_direct_computation():
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(4000).astype(np.float32)
    feats = log_mel(wave, 8000, n_fft=512, hop=256, n_mels=40)
    assert feats.shape == (1 + (4000 - 512) // 256, 40)
    frame = wave[256:768] * np.hanning(512)
    power = np.abs(np.fft.rfft(frame)) ** 2
    assert np.allclose(feats[1], np.log(mel_filterbank(8000, 512, 40) @ power + 1e-6), atol=1e-4)
    # a pure tone lights the band around its frequency
    tone = np.sin(2 * np.pi * 1000 * np.arange(8000) / 8000).astype(np.float32)
    assert abs(int(log_mel(tone, 8000).mean(0).argmax()) - 19) <= 2  # 1 kHz sits near band 19 of 40 up to 4 kHz
    assert mel_filterbank(8000, 512, 40).max() == pytest.approx(1.0, abs=0.05)


def test_trim_silence_keeps_the_loud_part():
    wave = np.concatenate([np.zeros(2048), np.ones(1024), np.zeros(2048)]).astype(np.float32)
    trimmed = trim_silence(wave, frame=256)
    assert len(trimmed) == 1024 and trimmed.min() == 1.0
