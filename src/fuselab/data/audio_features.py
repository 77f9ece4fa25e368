"""Audio features computed at preparation time (numpy only): log-mel spectrograms and silence
trimming. The mel scale is HTK's (2595 log10(1 + f / 700)) with triangular filters of unit
peak; frames are Hann-windowed."""

from __future__ import annotations

import numpy as np


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
