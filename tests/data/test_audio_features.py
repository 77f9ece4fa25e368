"""Audio features (librosa) against direct library calls, resampling, and unreadable files."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from fuselab.data.datasets.avmnist_build import HOP, N_FFT, NpyWriter, spectrogram
from fuselab.data.readers.audio_features import features, load_wav, stft_log_magnitude
from fuselab.errors import ConfigError


def tone(rate: int, seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_log_mel_and_mfcc_equal_direct_librosa_calls():
    wave = tone(16000) + np.random.default_rng(0).normal(0, 0.01, 8000).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=wave, sr=16000, n_fft=400, hop_length=160, n_mels=40, center=False)
    np.testing.assert_allclose(features(wave, 16000, "log_mel"), np.log(mel + 1e-6).T, rtol=1e-5, atol=1e-5)
    mfcc = librosa.feature.mfcc(S=np.log(mel + 1e-6), n_mfcc=13).T
    np.testing.assert_allclose(features(wave, 16000, "mfcc"), mfcc, rtol=1e-4, atol=1e-4)
    assert features(wave, 16000, "mfcc").shape == (1 + (8000 - 400) // 160, 13)


def test_another_sample_rate_is_converted_before_the_features():
    at_8k = features(tone(8000), 8000, "log_mel", sample_rate=16000)
    at_16k = features(tone(16000), 16000, "log_mel", sample_rate=16000)
    assert at_8k.shape == at_16k.shape
    # the 440 Hz tone peaks in the same mel band either way
    assert np.argmax(at_8k.mean(0)) == np.argmax(at_16k.mean(0))
    assert features(tone(8000), 8000, "log_mel", sample_rate=None).shape[0] == 1 + (4000 - 400) // 160


def test_avmnist_spectrogram_is_librosa_stft_resampled_to_112_frames():
    wave = np.random.default_rng(1).normal(size=4000).astype(np.float32)
    direct = np.log1p(np.abs(librosa.stft(wave, n_fft=N_FFT, hop_length=HOP, window="hann", center=False))).T
    np.testing.assert_allclose(stft_log_magnitude(wave, N_FFT, HOP), direct, rtol=1e-6)
    spec = spectrogram(wave)
    assert spec.shape == (112, 112)
    np.testing.assert_allclose(spec[0], direct[0, :112], rtol=1e-6)
    np.testing.assert_allclose(spec[-1], direct[-1, :112], rtol=1e-6)


def test_unreadable_audio_is_named(tmp_path: Path):
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEnot really")
    with pytest.raises(ConfigError, match=r"broken.wav cannot be read as audio"):
        load_wav(tmp_path / "broken.wav")
    sf.write(tmp_path / "stereo.wav", np.stack([tone(8000), tone(8000)], 1), 8000)
    wave, rate = load_wav(tmp_path / "stereo.wav")
    assert wave.ndim == 1 and rate == 8000


def test_npy_writer_writes_a_loadable_array_a_chunk_at_a_time(tmp_path: Path):
    data = np.arange(24, dtype=np.float32).reshape(6, 2, 2)
    w = NpyWriter(tmp_path / "a.npy", (6, 2, 2))
    for i in range(0, 6, 4):
        w.write(data[i : i + 4])
    w.close()
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), data)
    short = NpyWriter(tmp_path / "b.npy", (6, 2, 2))
    short.write(data[:2])
    with pytest.raises(RuntimeError, match="2 rows written, 6 announced"):
        short.close()


# ---- audio columns of data=hf ------------------------------------------------------------------
def write_clips(root: Path, rates: tuple[int, ...] = (8000,), broken: int | None = None) -> Path:
    """train/validation/test parquet files whose 'clip' column holds wav paths relative to root:
    a low or a high tone (the label)."""
    import datasets

    (root / "clips").mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        rows = {"clip": [], "label": []}
        for i in range(12):
            label, rate = i % 2, rates[i % len(rates)]
            path = root / "clips" / f"{split}_{i}.wav"
            if split == "train" and i == broken:
                path.write_bytes(b"not a wav")
            else:
                sf.write(path, tone(rate, 0.3, 300.0 if label else 1200.0), rate)
            rows["clip"].append(f"clips/{path.name}")
            rows["label"].append(label)
        datasets.Dataset.from_dict(rows).to_parquet(str(root / f"{split}.parquet"))
    return root


def audio_module(root: Path, tmp_path: Path, bad_rows: str = "refuse", **settings):
    from fuselab.data.datasets.hf import HFDataModule

    cols = {"speech": {"column": "clip", "kind": "audio", **settings}}
    return HFDataModule(str(root), columns=cols, cache_dir=str(tmp_path / "cache"), batch_size=4, bad_rows=bad_rows)


def test_audio_paths_become_cached_feature_sequences(tmp_path: Path):
    root = write_clips(tmp_path / "clips", rates=(8000, 16000))
    dm = audio_module(root, tmp_path, features="mfcc", n_mfcc=13)
    assert dm.describe().modalities["speech"].shape == (None, 13)
    dm.setup()
    wave, rate = load_wav(root / "clips" / "test_3.wav")
    direct = features(wave, rate, "mfcc", sample_rate=16000)
    np.testing.assert_allclose(np.asarray(dm.splits["test"][3]["speech"]), direct, rtol=1e-5, atol=1e-4)
    batch = next(iter(dm.train_dataloader()))
    assert batch["inputs"]["speech"].x.shape[-1] == 13
    with pytest.raises(
        ConfigError,
        match=r"row 1 of the train split: .*train_1.wav is sampled at 16000 Hz, the first recording at 8000 Hz",
    ):
        audio_module(root, tmp_path / "b", sample_rate=None).describe()


def test_unreadable_wav_is_refused_with_its_row_or_skipped_and_counted(tmp_path: Path):
    root = write_clips(tmp_path / "clips", broken=5)
    with pytest.raises(
        ConfigError, match=r"data.columns.speech: row 5 of the train split: .*train_5.wav cannot be read"
    ):
        audio_module(root, tmp_path).describe()
    dm = audio_module(root, tmp_path / "skip", bad_rows="skip")
    dm.setup()
    assert len(dm.splits["train"]) == 11 and dm.prepared_marker()["notes"]["skipped_rows"]["train"] == 1
    with pytest.raises(ConfigError, match=r"\['n_bins'\] do not apply to audio"):
        audio_module(root, tmp_path, n_bins=3)


def test_rows_are_spilled_a_chunk_at_a_time_and_read_back_in_order(tmp_path: Path):
    import datasets

    from fuselab.data.chunks import rows_to_dataset

    features = datasets.Features(
        {"x": datasets.Array2D(shape=(None, 2), dtype="float32"), "y": datasets.Value("int64")}
    )
    rows = [{"x": np.full((1 + i % 3, 2), i, dtype=np.float32), "y": i} for i in range(7)]
    spilled = rows_to_dataset(iter(rows), features, tmp_path, chunk=3)
    in_memory = rows_to_dataset(iter(rows), features, None, chunk=3)
    assert len(list(tmp_path.iterdir())) == 3  # 3 + 3 + 1 rows
    for ds in (spilled, in_memory):
        assert ds["y"] == list(range(7))
        assert [np.asarray(r).shape[0] for r in ds["x"]] == [1 + i % 3 for i in range(7)]
