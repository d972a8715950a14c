"""DubTrack placement: offset, trim and gain land where they should, to the sample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from engine.audio.timeline import (
    place_on_timeline,
    place_track,
    to_samples,
    track_time_offset,
    trimmed_samples,
)
from engine.errors import BadInputError

RATES = [8000, 16000, 44100, 48000]


def marker_track(n: int, channels: int = 0) -> np.ndarray:
    """Sample i holds (i + 1) / (n + 1): every output sample names its source sample."""
    x = (np.arange(n, dtype=np.float64) + 1) / (n + 1)
    x = x.astype(np.float32)
    return x if channels == 0 else np.repeat(x[:, None], channels, axis=1)


def source_index(out: np.ndarray, n: int) -> np.ndarray:
    return np.rint(out.astype(np.float64) * (n + 1)).astype(np.int64) - 1


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(
    "offset, trim_in, trim_out",
    [(0.0, 0.0, None), (1.25, 0.0, None), (-0.7, 0.0, None), (0.4, 0.3, 1.9), (-0.2, 0.5, 2.2), (2.0137, 0.0123, None)],
)
def test_offset_and_trim_are_sample_exact(rate: int, offset: float, trim_in: float, trim_out: float | None) -> None:
    n = int(2.5 * rate)
    video = 4.0
    out, warnings = place_on_timeline(marker_track(n), rate, offset, 0.0, trim_in, trim_out, video)
    assert out.shape == (to_samples(video, rate),) and out.dtype == np.float32
    src_in = round(trim_in * rate)
    src_out = n if trim_out is None else round(trim_out * rate)
    dst = round(offset * rate)
    idx = source_index(out, n)
    for k in range(len(out)):
        if k % 997 and not (abs(k - max(dst, 0)) < 3 or abs(k - (dst + src_out - src_in)) < 3):
            continue
        expected = src_in + (k - dst)
        if src_in <= expected < src_out:
            assert idx[k] == expected, (k, idx[k], expected)
        else:
            assert out[k] == 0.0, k
    runs_past = dst + (src_out - src_in) > len(out)
    assert len(warnings) == (1 if runs_past else 0) and all("past the end of the video" in w for w in warnings)


def test_vectorised_exactness_everywhere() -> None:
    rate, n = 48000, 96000
    out, _ = place_on_timeline(marker_track(n, 2), rate, 0.5, 0.0, 0.25, 1.75, 3.0)
    assert out.shape == (144000, 2)
    k = np.arange(len(out))
    expected = 12000 + (k - 24000)
    inside = (expected >= 12000) & (expected < 84000)
    assert np.array_equal(source_index(out[inside, 0], n), expected[inside])
    assert np.array_equal(out[inside, 0], out[inside, 1])
    assert not out[~inside].any()
    # Silence after the track: from 0.5 s + 1.5 s to the end of the video.
    assert int(inside.sum()) == 72000 and not out[96000:].any()


@pytest.mark.parametrize("gain_db", [-12.0, -6.0, 0.0, 3.5])
def test_gain(gain_db: float) -> None:
    x = np.full(1000, 0.25, np.float32)
    out, _ = place_on_timeline(x, 1000, 0.0, gain_db, 0.0, None, 1.0)
    assert np.allclose(out, 0.25 * 10 ** (gain_db / 20), rtol=1e-6)


def test_longer_than_video_is_cut_with_a_warning() -> None:
    out, warnings = place_on_timeline(np.ones(5000, np.float32), 1000, 1.0, 0.0, 0.0, None, 4.0, name="German dub")
    assert out.shape == (4000,) and out[1000:].all() and not out[:1000].any()
    assert len(warnings) == 1 and "German dub" in warnings[0] and "2.00 s" in warnings[0]


def test_shorter_than_video_and_outside() -> None:
    out, warnings = place_on_timeline(np.ones(500, np.float32), 1000, 0.0, 0.0, 0.0, None, 2.0)
    assert out[:500].all() and not out[500:].any() and warnings == []
    out, warnings = place_on_timeline(np.ones(500, np.float32), 1000, -0.6, 0.0, 0.0, None, 2.0)
    assert not out.any() and "not heard" in warnings[0]
    out, warnings = place_on_timeline(np.ones(500, np.float32), 1000, 2.5, 0.0, 0.0, None, 2.0)
    assert not out.any() and "not heard" in warnings[0]


def test_trim_edge_cases() -> None:
    x = np.ones(1000, np.float32)
    out, warnings = place_on_timeline(x, 1000, 0.0, 0.0, 0.5, 0.5, 2.0)
    assert not out.any() and "nothing left" in warnings[0]
    out, warnings = place_on_timeline(x, 1000, 0.0, 0.0, 0.0, 3.0, 2.0)
    assert out[:1000].all() and "past the end of the audio" in warnings[0]
    with pytest.raises(BadInputError):
        place_on_timeline(x, 1000, 0.0, 0.0, -0.1, None, 2.0)


@dataclass
class FakeDub:
    offset_s: float = 0.75
    gain_db: float = -6.0
    trim_in_s: float = 0.25
    trim_out_s: float | None = None


def test_place_track_uses_dubtrack_fields() -> None:
    dub = FakeDub()
    out, _ = place_track(np.ones(2000, np.float32), 1000, dub, 3.0)
    assert not out[:750].any() and np.allclose(out[750:2500], 10 ** (-6 / 20)) and not out[2500:].any()
    assert track_time_offset(dub) == pytest.approx(0.5)


def test_trimmed_samples_for_engine_signals() -> None:
    x = np.arange(16000 * 3, dtype=np.float32)
    part, start = trimmed_samples(x, 16000, FakeDub(offset_s=2.0, trim_in_s=0.5, trim_out_s=1.25))
    assert start == 2.0 and part[0] == 8000 and len(part) == 12000
    part, _ = trimmed_samples(x, 16000, FakeDub(trim_in_s=0.0, trim_out_s=None))
    assert len(part) == len(x)
    part, _ = trimmed_samples(x, 16000, FakeDub(trim_in_s=5.0, trim_out_s=None))
    assert len(part) == 0
