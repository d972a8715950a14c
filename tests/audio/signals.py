"""Generated test signals: speech-like bursts (voiced harmonics with a syllable envelope) at known times."""

from __future__ import annotations

import numpy as np


def speech_like(duration_s: float, rate: int, seed: int = 0, f0: float = 140.0) -> np.ndarray:
    """A voiced, formant-ish signal with a 4 Hz syllable envelope, peak about 0.5."""
    rng = np.random.default_rng(seed)
    n = round(duration_s * rate)
    t = np.arange(n) / rate
    pitch = f0 * (1.0 + 0.08 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    x = np.zeros(n)
    for h, amp in ((1, 1.0), (2, 0.6), (3, 0.5), (5, 0.3), (8, 0.15), (13, 0.08), (20, 0.04)):
        if h * f0 < rate / 2.2:
            x += amp * np.sin(h * phase)
    x += 0.02 * rng.standard_normal(n)
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t - np.pi / 2)
    x *= env
    x *= 0.5 / max(1e-9, np.abs(x).max())
    return x.astype(np.float32)


def bursts(total_s: float, rate: int, spans: list[tuple[float, float]], seed: int = 0) -> np.ndarray:
    """Silence with speech-like bursts over ``spans`` [(start_s, end_s)], sample-exact."""
    out = np.zeros(round(total_s * rate), dtype=np.float32)
    for k, (s, e) in enumerate(spans):
        i0, i1 = round(s * rate), round(e * rate)
        out[i0:i1] = speech_like((i1 - i0) / rate, rate, seed + k)[: i1 - i0]
    return out


def tone(duration_s: float, rate: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(duration_s * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
