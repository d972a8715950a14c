"""Whisper's own 80-band log-mel spectrogram, in numpy (no torch or librosa needed).

16 kHz input, 25 ms periodic Hann window (n_fft 400), 10 ms hop (160), centred frames with reflect
padding, power spectrum, Slaney-scale mel filters with Slaney area normalisation, log10 clamped at
1e-10, dynamic range limited to 8 (80 dB) under the maximum, then ``(x + 4) / 4``. This matches what
the Whisper encoder was trained on, which the encoder features depend on.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import numpy as np

from engine.runtime.rowfile import FileRows

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
FRAMES_PER_SECOND = SAMPLE_RATE // HOP  # 100 mel frames per second
WINDOW_SAMPLES = 30 * SAMPLE_RATE  # one encoder window: 30 s
WINDOW_FRAMES = WINDOW_SAMPLES // HOP  # 3000 mel frames


def _hz_to_mel_slaney(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    linear = hz / f_sp
    log_part = min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log_part, linear)


def _mel_to_hz_slaney(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    linear = mel * f_sp
    log_part = min_log_hz * np.exp(logstep * (mel - min_log_mel))
    return np.where(mel >= min_log_mel, log_part, linear)


@lru_cache(maxsize=4)
def mel_filters(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney mel filterbank, shape (n_mels, n_fft // 2 + 1), float32, area-normalised."""
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mel_pts = np.linspace(_hz_to_mel_slaney(np.array(0.0)), _hz_to_mel_slaney(np.array(sample_rate / 2.0)), n_mels + 2)
    hz_pts = _mel_to_hz_slaney(mel_pts)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    enorm = 2.0 / (hz_pts[2 : n_mels + 2] - hz_pts[:n_mels])
    weights *= enorm[:, None]
    weights.flags.writeable = False
    return weights.astype(np.float32)


def as_samples(audio16k: np.ndarray | FileRows) -> np.ndarray | FileRows:
    """A mono track as the audio functions read it (by slices): samples in a file as they are, which
    must be float32 rows of shape (n,); anything else as a contiguous float32 array of shape (n,)."""
    if isinstance(audio16k, FileRows):
        if audio16k.ndim != 1 or audio16k.dtype != np.float32:
            raise ValueError(f"a mono track in a file must be float32 rows of shape (n,), not {audio16k.shape}")
        return audio16k
    return np.ascontiguousarray(np.asarray(audio16k, dtype=np.float32).reshape(-1))


@lru_cache(maxsize=2)
def _hann(n: int) -> np.ndarray:
    # Periodic Hann window (as torch.hann_window(n) by default).
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    return w.astype(np.float32)


def power_blocks(
    audio16k: np.ndarray | FileRows, n_fft: int = N_FFT, hop: int = HOP, block: int = 4096,
    frames: tuple[int, int] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """|STFT|^2 of centred, reflect-padded frames, a block of frames at a time: yields ``(first,
    power)`` with ``power`` float32 (frames, n_fft // 2 + 1) for frames ``first`` onwards.

    Like Whisper, the last frame of a centred STFT is dropped, so there are exactly
    ``len(audio) // hop`` frames and frame ``j`` is centred at ``j * hop`` samples. A long track is
    never held as one spectrogram (10 minutes would be 50-60 MB per copy). ``frames``: only frames
    ``a .. b`` (clipped to the track), the same values as in the whole track's STFT. Samples in a
    file are read a block at a time."""
    x = as_samples(audio16k)
    n_frames = len(x) // hop
    first, stop = (0, n_frames) if frames is None else (max(0, frames[0]), min(n_frames, frames[1]))
    if stop <= first:
        return
    pad = n_fft // 2
    window = _hann(n_fft)
    for b0 in range(first, stop, block):
        b1 = min(stop, b0 + block)
        # The padded track's samples this block reads, padded here: no padded copy of the whole track.
        lo, hi = b0 * hop, (b1 - 1) * hop + n_fft  # in padded coordinates
        xp = _padded_span(x, pad, lo, hi)
        idx = (np.arange(b0, b1)[:, None] * hop - lo) + np.arange(n_fft)[None, :]
        spec = np.fft.rfft(xp[idx] * window, n=n_fft, axis=1)
        yield b0, (spec.real**2 + spec.imag**2).astype(np.float32)


def _padded_span(x: np.ndarray | FileRows, pad: int, lo: int, hi: int) -> np.ndarray:
    """Samples ``lo:hi`` of ``x`` padded by ``pad`` at both ends (reflected; zeros when ``x`` is no
    longer than ``pad``), without padding the whole of ``x``."""
    n = len(x)
    if n <= pad:
        return np.pad(np.asarray(x), (pad, pad), mode="constant")[lo:hi]
    if lo >= pad and hi <= n + pad:
        return x[lo - pad : hi - pad]
    # The span reaches into the padding: pad a piece of ``x`` that holds every sample the reflection
    # reads (``x[0:pad + 1]`` on the left, ``x[n - 1 - pad:]`` on the right).
    left, right = lo < pad, hi > n + pad
    a = 0 if left else lo - pad
    b = n if right else hi - pad
    if left:
        b = max(b, min(n, pad + 1))
    if right:
        a = min(a, max(0, n - 1 - pad))
    xp = np.pad(x[a:b], (pad if left else 0, pad if right else 0), mode="reflect")
    start = lo - (a + pad - (pad if left else 0))  # xp[0] sits at padded position a + pad - left pad
    return xp[start : start + hi - lo]


def power_spectrogram(audio16k: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """|STFT|^2 of centred, reflect-padded frames: shape (n_fft // 2 + 1, len // hop), float32
    (the frames of :func:`power_blocks`)."""
    n_frames = np.asarray(audio16k).size // hop
    out = np.empty((n_fft // 2 + 1, n_frames), dtype=np.float32)
    for b0, power in power_blocks(audio16k, n_fft, hop):
        out[:, b0 : b0 + len(power)] = power.T
    return out


def log_mel_raw(audio16k: np.ndarray | FileRows, frames: tuple[int, int] | None = None) -> np.ndarray:
    """log10 of the mel power, clamped at 1e-10: shape (80, frames), before Whisper's scaling.
    ``frames``: only frames ``a .. b`` of the track (clipped to it)."""
    filters = mel_filters()
    audio16k = as_samples(audio16k)
    total = len(audio16k) // HOP
    first, stop = (0, total) if frames is None else (max(0, frames[0]), min(total, frames[1]))
    out = np.empty((filters.shape[0], max(0, stop - first)), dtype=np.float32)
    for b0, power in power_blocks(audio16k, frames=(first, stop)):
        out[:, b0 - first : b0 - first + len(power)] = np.log10(np.maximum(filters @ power.T, 1e-10))
    return out


def log_mel_max(audio16k: np.ndarray | FileRows) -> float | None:
    """The largest value of :func:`log_mel_raw` over the whole track (None when it has no frame),
    computed a block at a time: Whisper's scaling needs it before any window is encoded."""
    filters = mel_filters()
    top: float | None = None
    for _, power in power_blocks(audio16k):
        m = float(np.log10(np.maximum(filters @ power.T, 1e-10)).max())  # as log_mel_raw computes it
        top = m if top is None else max(top, m)
    return top


def whisper_scale(log_mel: np.ndarray, max_value: float | None = None) -> np.ndarray:
    """Whisper's scaling of raw log10 mel: floor at (max - 8), then (x + 4) / 4."""
    top = float(log_mel.max()) if max_value is None else float(max_value)
    if log_mel.size == 0:
        return log_mel.astype(np.float32)
    return ((np.maximum(log_mel, top - 8.0) + 4.0) / 4.0).astype(np.float32)


def log_mel_spectrogram(audio16k: np.ndarray) -> np.ndarray:
    """Whisper's log-mel of a whole 16 kHz mono signal, shape (80, len // 160), float32."""
    return whisper_scale(log_mel_raw(audio16k))


def pad_or_trim_frames(mel: np.ndarray, frames: int = WINDOW_FRAMES, fill: float | None = None) -> np.ndarray:
    """Pad (with the scaled value of digital silence, or ``fill``) or cut a mel to ``frames`` frames."""
    n = mel.shape[1]
    if n >= frames:
        return mel[:, :frames]
    if fill is None:
        fill = float(mel.min()) if n else (-10.0 + 4.0) / 4.0
    out = np.full((mel.shape[0], frames), fill, dtype=np.float32)
    out[:, :n] = mel
    return out
