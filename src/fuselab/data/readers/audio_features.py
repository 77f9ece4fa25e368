"""Audio features computed at preparation time.

- librosa (the ``audio`` extra): :func:`stft_log_magnitude` (AV-MNIST's spectrograms),
  :func:`features` (log-mel or MFCC frames of a wav, resampled to one rate) and
  :func:`load_wav` (soundfile), used by ``data=hf``'s ``audio`` columns.
- numpy only: :func:`log_mel` and :func:`trim_silence`, the fixed recipe of ``connected_digits``
  (HTK mel scale, 2595 log10(1 + f / 700), triangular filters of unit peak, Hann frames), kept
  as it is so that dataset and its committed study stay reproducible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fuselab.errors import ConfigError

INSTALL = "pip install 'fuselab[audio]' (librosa and soundfile)"
FEATURES = ("log_mel", "mfcc")


def _librosa() -> Any:
    try:
        import librosa
    except ImportError as exc:
        raise ConfigError(f"audio features need librosa: {INSTALL}") from exc
    return librosa


def stft_log_magnitude(wave: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(frames, n_fft // 2 + 1) log(1 + |STFT|): periodic Hann window, no centring, a recording
    shorter than one frame zero-padded to it."""
    librosa = _librosa()
    wave = np.asarray(wave, dtype=np.float32)
    if len(wave) < n_fft:
        wave = np.pad(wave, (0, n_fft - len(wave)))
    return np.log1p(np.abs(librosa.stft(wave, n_fft=n_fft, hop_length=hop, window="hann", center=False))).T


def load_wav(path: Any, name: str | None = None) -> tuple[np.ndarray, int]:
    """A wav (or any file soundfile reads; a path or a file object) as mono float32 and its
    sample rate; an unreadable file is named."""
    try:
        import soundfile as sf
    except ImportError as exc:
        raise ConfigError(f"reading audio files needs soundfile: {INSTALL}") from exc
    try:
        data, rate = sf.read(path if hasattr(path, "read") else str(path), dtype="float32", always_2d=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported with its name
        raise ConfigError(f"{name or path} cannot be read as audio: {exc}") from exc
    if data.ndim > 1:
        data = data.mean(1)
    return data.astype(np.float32), int(rate)


AUDIO_SETTINGS = ("features", "sample_rate", "n_fft", "hop", "n_mels", "n_mfcc")


def feature_dim(settings: dict[str, Any]) -> int:
    return (
        int(settings.get("n_mfcc", 13))
        if settings.get("features", "log_mel") == "mfcc"
        else int(settings.get("n_mels", 40))
    )


def features_of(value: Any, base: Path, settings: dict[str, Any], rates: dict[str, int]) -> np.ndarray:
    """The feature frames of one audio cell: a path (relative to ``base``), a decoded
    ``{"array", "sampling_rate"}`` or an undecoded ``{"path", "bytes"}`` dict. Without
    ``sample_rate`` every recording must share the first one's rate (``rates`` remembers it)."""
    import io

    name = "an audio array"
    if isinstance(value, dict) and value.get("array") is not None:
        wave, rate = np.asarray(value["array"], dtype=np.float32), int(value.get("sampling_rate") or 0)
        if not rate:
            raise ConfigError("an audio array without its sampling_rate")
    elif isinstance(value, dict) and value.get("bytes"):
        name = value.get("path") or "audio bytes"
        wave, rate = load_wav(io.BytesIO(value["bytes"]), name)
    elif isinstance(value, (str, Path)) or (isinstance(value, dict) and value.get("path")):
        path = Path(value["path"] if isinstance(value, dict) else value).expanduser()
        path = path if path.is_absolute() else base / path
        name = str(path)
        wave, rate = load_wav(path)
    else:
        raise ConfigError(
            f"an audio cell must be a file path or an array with its sampling_rate, got {type(value).__name__}"
        )
    if wave.size == 0 or not np.isfinite(wave).all():
        raise ConfigError(f"{name} holds no samples" if wave.size == 0 else f"{name} holds non-finite samples")
    target = settings.get("sample_rate", 16000)
    if not target:
        first = rates.setdefault("rate", rate)
        if rate != first:
            raise ConfigError(
                f"{name} is sampled at {rate} Hz, the first recording at {first} Hz (set sample_rate to resample all)"
            )
    return features(
        wave,
        rate,
        kind=settings.get("features", "log_mel"),
        sample_rate=target or None,
        n_fft=int(settings.get("n_fft", 400)),
        hop=int(settings.get("hop", 160)),
        n_mels=int(settings.get("n_mels", 40)),
        n_mfcc=int(settings.get("n_mfcc", 13)),
    )


def features(
    wave: np.ndarray,
    rate: int,
    kind: str = "log_mel",
    sample_rate: int | None = 16000,
    n_fft: int = 400,
    hop: int = 160,
    n_mels: int = 40,
    n_mfcc: int = 13,
) -> np.ndarray:
    """(frames, n_mels) log-mel (natural log of the mel power + 1e-6) or (frames, n_mfcc) MFCC
    frames of ``wave`` recorded at ``rate``, resampled to ``sample_rate`` first (None: kept)."""
    librosa = _librosa()
    if kind not in FEATURES:
        raise ConfigError(f"audio features: {kind!r} is not one of {list(FEATURES)}")
    wave = np.asarray(wave, dtype=np.float32)
    if sample_rate and rate != sample_rate:
        wave = librosa.resample(wave, orig_sr=rate, target_sr=sample_rate)
        rate = sample_rate
    if len(wave) < n_fft:
        wave = np.pad(wave, (0, n_fft - len(wave)))
    mel = librosa.feature.melspectrogram(y=wave, sr=rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels, center=False)
    log_mel_frames = np.log(mel + 1e-6)
    if kind == "log_mel":
        return log_mel_frames.T.astype(np.float32)
    return librosa.feature.mfcc(S=log_mel_frames, n_mfcc=n_mfcc).T.astype(np.float32)


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters evenly spaced on the mel scale up to Nyquist."""
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(sample_rate / 2), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - bins[None, :]) / np.maximum(upper - centre, 1e-9)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def frames(wave: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(frames, n_fft) windows of ``wave`` every ``hop`` samples (zero-padded to one frame)."""
    if len(wave) < n_fft:
        wave = np.pad(wave, (0, n_fft - len(wave)))
    count = 1 + (len(wave) - n_fft) // hop
    return wave[np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]]


def log_mel(
    wave: np.ndarray, sample_rate: int, n_fft: int = 512, hop: int = 256, n_mels: int = 40, floor: float = 1e-6
) -> np.ndarray:
    """(frames, n_mels) float32: log of the mel-filtered power spectrum."""
    spectrum = np.abs(np.fft.rfft(frames(wave, n_fft, hop) * np.hanning(n_fft), axis=1)) ** 2
    return np.log(spectrum @ mel_filterbank(sample_rate, n_fft, n_mels).T + floor).astype(np.float32)


def trim_silence(wave: np.ndarray, frame: int = 256, threshold: float = 0.05) -> np.ndarray:
    """``wave`` without its leading and trailing frames whose RMS is under ``threshold`` times
    the loudest frame's."""
    if len(wave) < frame:
        return wave
    rms = np.sqrt((frames(wave, frame, frame) ** 2).mean(1))
    loud = np.flatnonzero(rms >= threshold * rms.max())
    if len(loud) == 0:
        return wave
    return wave[loud[0] * frame : (loud[-1] + 1) * frame]
