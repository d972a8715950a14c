"""Waveform peaks for the timeline: min/max per bucket at several zoom levels, computed once, cached.

Peaks are of the track's 16 kHz mono signal (what the engine hears); bucket sizes are in those
samples (256 samples = 16 ms). Each coarser level is reduced from the finer one, so all levels cost
one pass over the audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.audio import cache

DEFAULT_BUCKETS = (256, 1024, 4096, 16384)
_CACHE_VERSION = "peaks-1"


@dataclass(frozen=True)
class WaveformPeaks:
    """``levels[bucket]``: float32 (n_buckets, 2) of (min, max) over each run of ``bucket`` samples."""

    sample_rate: int
    num_samples: int
    levels: dict[int, np.ndarray]

    def level_for(self, samples_per_pixel: float) -> int:
        """The finest level whose bucket is not finer than a pixel (the coarsest if all are finer)."""
        sizes = sorted(self.levels)
        fitting = [s for s in sizes if s <= max(1.0, samples_per_pixel)]
        return fitting[-1] if fitting else sizes[0]

    def range(self, start_s: float, end_s: float, samples_per_pixel: float) -> tuple[int, np.ndarray]:
        """(bucket size, the (min, max) rows covering [start_s, end_s)) for drawing at a zoom."""
        b = self.level_for(samples_per_pixel)
        rows = self.levels[b]
        i0 = max(0, int(start_s * self.sample_rate) // b)
        i1 = min(len(rows), -(-int(end_s * self.sample_rate) // b))
        return b, rows[i0:max(i0, i1)]


def _reduce(samples: np.ndarray, bucket: int) -> np.ndarray:
    n = len(samples)
    full = n // bucket
    out = np.empty((full + (1 if n % bucket else 0), 2), dtype=np.float32)
    if full:
        body = samples[: full * bucket].reshape(full, bucket)
        out[:full, 0] = body.min(axis=1)
        out[:full, 1] = body.max(axis=1)
    if n % bucket:
        tail = samples[full * bucket :]
        out[full] = (tail.min(), tail.max())
    return out


def _coarsen(rows: np.ndarray, factor: int) -> np.ndarray:
    n = len(rows)
    full = n // factor
    out = np.empty((full + (1 if n % factor else 0), 2), dtype=np.float32)
    if full:
        body = rows[: full * factor].reshape(full, factor, 2)
        out[:full, 0] = body[:, :, 0].min(axis=1)
        out[:full, 1] = body[:, :, 1].max(axis=1)
    if n % factor:
        out[full] = (rows[full * factor :, 0].min(), rows[full * factor :, 1].max())
    return out


def waveform_peaks(
    samples: np.ndarray,
    sample_rate: int = 16000,
    buckets: tuple[int, ...] = DEFAULT_BUCKETS,
    use_cache: bool = True,
) -> WaveformPeaks:
    """Min/max peaks of a mono signal at each bucket size (cached per content)."""
    x = np.ascontiguousarray(np.asarray(samples, dtype=np.float32).reshape(-1))
    sizes = sorted(set(int(b) for b in buckets))
    if not sizes or sizes[0] <= 0:
        raise ValueError("bucket sizes must be positive")
    key = cache.content_key(x, sample_rate, _CACHE_VERSION, tuple(sizes))
    if use_cache:
        hit = cache.load("peaks", key)
        if hit is not None and all(f"b{s}" in hit for s in sizes):
            return WaveformPeaks(sample_rate, len(x), {s: hit[f"b{s}"] for s in sizes})
    levels: dict[int, np.ndarray] = {}
    if len(x) == 0:
        levels = {s: np.zeros((0, 2), np.float32) for s in sizes}
    else:
        prev_size, prev = sizes[0], _reduce(x, sizes[0])
        levels[prev_size] = prev
        for s in sizes[1:]:
            # Reduce from the finer level when the sizes nest; otherwise from the samples.
            prev = _coarsen(prev, s // prev_size) if s % prev_size == 0 else _reduce(x, s)
            prev_size = s
            levels[s] = prev
    if use_cache:
        cache.store("peaks", key, **{f"b{s}": v for s, v in levels.items()})
    return WaveformPeaks(sample_rate, len(x), levels)
