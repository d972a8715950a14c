"""Waveform peaks for the timeline."""

from __future__ import annotations

import numpy as np

from engine.audio.peaks import waveform_peaks


def test_levels_are_exact_min_max() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 100_000).astype(np.float32)
    peaks = waveform_peaks(x, 16000, use_cache=False)
    assert sorted(peaks.levels) == [256, 1024, 4096, 16384]
    for b, rows in peaks.levels.items():
        n = -(-len(x) // b)
        assert rows.shape == (n, 2)
        for i in (0, n // 2, n - 1):
            chunk = x[i * b : (i + 1) * b]
            assert rows[i, 0] == chunk.min() and rows[i, 1] == chunk.max()


def test_burst_shows_where_it_is_and_cache_round_trips() -> None:
    x = np.zeros(16000 * 4, np.float32)
    x[16000:24000] = 0.8
    p = waveform_peaks(x)
    rows = p.levels[1024]
    loud = np.flatnonzero(rows[:, 1] > 0)
    assert loud[0] == 16000 // 1024 and loud[-1] == (24000 - 1) // 1024
    again = waveform_peaks(x)
    assert all(np.array_equal(again.levels[b], p.levels[b]) for b in p.levels)
    b, part = p.range(0.9, 1.6, samples_per_pixel=3000)
    assert b == 1024 and part[:, 1].max() == np.float32(0.8)
    assert p.level_for(100) == 256 and p.level_for(50_000) == 16384


def test_empty() -> None:
    p = waveform_peaks(np.zeros(0, np.float32), use_cache=False)
    assert all(rows.shape == (0, 2) for rows in p.levels.values())
