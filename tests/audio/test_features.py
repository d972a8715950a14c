"""Log-mel, Whisper features, frame-time sampling and the band-energy envelope."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.audio import (
    FEATURE_DIM,
    band_energy_db,
    features,
    features_at_frames,
    log_mel_frames,
    logmel_at_frames,
    num_feature_frames,
    whisper_features,
    window_offsets,
)
from engine.audio.features import WhisperFeatures
from engine.audio.mel import log_mel_max, log_mel_raw, mel_filters, power_spectrogram
from engine.lipsync.model import TrackNorm
from engine.runtime.rowfile import FileRows, RowFile, RowLog
from tests.audio.signals import bursts, tone

SR = 16000


def vfr_times(n: int, seed: int = 3) -> np.ndarray:
    """A variable-frame-rate table: durations drawn from 1/24 .. 1/60 s."""
    rng = np.random.default_rng(seed)
    return np.concatenate([[0.0], np.cumsum(rng.choice([1 / 24, 1 / 30, 1 / 60, 1001 / 30000], size=n - 1))])


FRAME_TABLES = {
    "25": np.arange(200) / 25.0,
    "29.97": np.arange(200) * 1001 / 30000,
    "vfr": vfr_times(200),
}


def test_mel_filters_are_slaney_triangles() -> None:
    fb = mel_filters()
    assert fb.shape == (80, 201)
    assert (fb >= 0).all()
    freqs = np.linspace(0, 8000, 201)
    peaks = freqs[fb.argmax(axis=1)]
    assert np.all(np.diff(peaks) >= 0)  # band centres rise
    # Below 1 kHz the Slaney scale is linear: equal spacing of the first band centres.
    lin = np.diff(peaks[:10])
    assert lin.max() - lin.min() <= 40.0 + 1e-6
    # Area normalisation: each triangle integrates (over Hz) to about 1.
    area = fb.sum(axis=1) * (freqs[1] - freqs[0])
    assert np.allclose(area[5:], 1.0, atol=0.1)


def test_power_spectrogram_frames_and_parseval() -> None:
    x = tone(1.0, SR, 1000.0, 0.5)
    spec = power_spectrogram(x)
    assert spec.shape == (201, len(x) // 160)
    col = spec[:, 50]
    assert np.argmax(col) == 25  # 1000 Hz / (16000 / 400)


@pytest.mark.parametrize("n", [1, 150, 200, 201, 400, 401, 5003])
def test_block_padding_reads_what_padding_the_whole_track_gives(n: int) -> None:
    """power_blocks pads each block's span itself; every span equals that span of the padded track."""
    from engine.audio.mel import _padded_span

    x = np.random.default_rng(n).normal(size=n).astype(np.float32)
    for pad in (200, 256):
        full = np.pad(x, (pad, pad), mode="reflect" if n > pad else "constant")
        for lo in range(0, len(full), 23):
            for length in (1, 400, 512, 1100):
                hi = min(len(full), lo + length)
                np.testing.assert_array_equal(_padded_span(x, pad, lo, hi), full[lo:hi])


def test_spectrogram_blocks_join_into_the_whole_spectrogram() -> None:
    from engine.audio.mel import power_blocks

    x = np.random.default_rng(1).normal(size=16000 * 3 + 77).astype(np.float32)
    whole = power_spectrogram(x)
    for block in (1, 7, 4096):
        got = np.concatenate([p for _, p in power_blocks(x, block=block)]).T
        np.testing.assert_array_equal(got, whole)


def test_log_mel_silence_and_tone_band() -> None:
    x = np.concatenate([np.zeros(SR, np.float32), tone(1.0, SR, 1000.0, 0.5)])
    mel = log_mel_frames(x)
    assert mel.shape == (len(x) // 160, 80)
    loud = mel[150].argmax()
    centres = np.linspace(0, 8000, 201)[mel_filters().argmax(axis=1)]
    assert abs(centres[loud] - 1000.0) < 120.0
    # Whisper's floor: 8 (80 dB) under the maximum, then (x + 4) / 4.
    assert mel[20].max() == pytest.approx(mel.max() - 2.0, abs=1e-5)


def test_window_offsets_are_symmetric_and_odd() -> None:
    off = window_offsets(0.5, 0.02)
    assert len(off) == 25 and off[12] == 0.0
    assert off[0] == pytest.approx(-0.24) and off[-1] == pytest.approx(0.24)
    assert len(window_offsets(0.0, 0.02)) == 1


@pytest.mark.parametrize("table", sorted(FRAME_TABLES))
def test_features_at_frames_map_frame_times_exactly(table: str) -> None:
    # A ramp series whose every column holds its own time * 50: sampling must return t * 50 exactly.
    times = FRAME_TABLES[table]
    n = int(times[-1] * 50) + 40
    ramp = np.repeat(np.arange(n, dtype=np.float32)[:, None], 4, axis=1)
    offset = 0.37
    out = features_at_frames(ramp, times + offset, offset_s=offset, context_s=0.2)
    assert out.shape == (len(times), 11, 4)
    expected = (times[:, None] + window_offsets(0.2, 0.02)[None, :]) * 50.0
    inside = (expected >= 0) & (expected <= n - 1)
    got = out[..., 0]
    assert np.allclose(got[inside], expected[inside], atol=1e-3)
    # The frame's own time is the window's middle sample.
    mid = got[:, 5]
    assert np.allclose(mid, times * 50.0, atol=1e-3)


def test_features_at_frames_negative_offset_and_outside_fill() -> None:
    ramp = np.repeat(np.arange(100, dtype=np.float32)[:, None], 2, axis=1)
    from engine.audio.features import WhisperFeatures

    feats = WhisperFeatures(ramp, silence=np.full(2, -7.0, np.float32), duration_s=2.0)
    times = np.array([0.0, 0.5, 3.0])
    out = features_at_frames(feats, times, offset_s=-1.0, context_s=0.0)
    # Track starts 1 s before the video: video time 0 reads track time 1.0 (row 50).
    assert out[:, 0, 0].tolist() == pytest.approx([50.0, 75.0, -7.0])


def test_logmel_at_frames_shape() -> None:
    mel = log_mel_frames(tone(2.0, SR))
    out = logmel_at_frames(mel, FRAME_TABLES["29.97"][:30], context_s=0.1)
    assert out.shape == (30, 11, 80)


def test_band_energy_db_level_and_timing() -> None:
    # A 3 kHz tone of amplitude 0.5 from 1 s to 2 s, a 500 Hz tone (outside the band) elsewhere.
    x = tone(3.0, SR, 500.0, 0.5)
    x[SR : 2 * SR] = tone(1.0, SR, 3000.0, 0.5)
    times = np.arange(75) / 25.0
    db = band_energy_db(x, times)
    assert db.shape == (75,)
    inside = db[27:48]
    assert np.allclose(inside, 10 * np.log10(0.125), atol=0.3)  # mean power of a sine: A^2 / 2
    assert np.all(db[:23] <= inside.mean() - 30)
    # Offset: the same track placed 0.4 s later moves the loud frames by 10 frames.
    db2 = band_energy_db(x, times, offset_s=0.4)
    assert np.allclose(db2[37:58], inside, atol=0.3)
    assert np.all(db2[:10] == db2.min())


def test_whisper_features_shape_rate_and_timing() -> None:
    # 35 s: two encoder windows (stitched with an overlap). A loud burst from 31 s to 33 s.
    total = 35.0
    x = bursts(total, SR, [(2.0, 4.0), (31.0, 33.0)])
    feats = whisper_features(x)
    assert feats.vectors.shape == (num_feature_frames(len(x)), FEATURE_DIM) == (1750, FEATURE_DIM)
    assert feats.rate_hz == 50.0 and np.isfinite(feats.vectors).all()
    # Against the encoding of an all-silent track (same positions in the windows): frames far from
    # the bursts look like silence, frames inside them do not.
    silent = whisper_features(np.zeros_like(x))
    dist = np.linalg.norm(feats.vectors - silent.vectors, axis=1)
    t = np.arange(len(dist)) / 50.0
    quiet = dist[(t > 12) & (t < 25)]
    loud_a = dist[(t > 2.3) & (t < 3.7)]
    loud_b = dist[(t > 31.3) & (t < 32.7)]
    assert loud_a.mean() > 2 * quiet.mean() and loud_b.mean() > 2 * quiet.mean()
    # Sampled at 29.97 fps with a negative offset: shape and the mapping back to the burst.
    frames = np.arange(300) * 1001 / 30000
    at = features_at_frames(feats, frames, offset_s=-1.0)
    assert at.shape == (300, 25, FEATURE_DIM)
    fd = np.linalg.norm(at[:, 12] - features_at_frames(silent, frames, offset_s=-1.0)[:, 12], axis=1)
    burst_frames = (frames + 1.0 > 2.3) & (frames + 1.0 < 3.7)
    assert fd[burst_frames].mean() > 2 * fd[(frames + 1.0 > 5.5) & (frames + 1.0 < 9.0)].mean()
    # Window positions: the first window gives frames 0..1449, the second (starting 28 s in) the rest,
    # from its position 50 on (1 s of overlap dropped at each inner edge).
    assert feats.positions is not None
    assert np.array_equal(feats.positions[:1450], np.arange(1450))
    assert np.array_equal(feats.positions[1450:], np.arange(50, 50 + 300))
    # Debiased: silence at any window position maps to zero; speech does not.
    residual = np.linalg.norm(silent.debiased().vectors, axis=1)
    assert residual.mean() < 0.05 * np.linalg.norm(silent.vectors, axis=1).mean()
    deb = np.linalg.norm(feats.debiased().vectors, axis=1)
    assert deb[(t > 31.3) & (t < 32.7)].mean() > 5 * residual.mean()
    assert deb[(t > 31.3) & (t < 32.7)].mean() > 2 * deb[(t > 12) & (t < 25)].mean()
    # Cached per content: a second call returns identical vectors without re-encoding.
    again = whisper_features(x)
    assert np.array_equal(again.vectors, feats.vectors)
    assert again.positions is not None and np.array_equal(again.positions, feats.positions)


def test_power_spectrogram_matches_torch_stft_as_whisper_uses_it() -> None:
    torch = pytest.importorskip("torch")
    x = (np.random.default_rng(0).standard_normal(16000 * 2) * 0.1).astype(np.float32)
    ref = torch.stft(torch.from_numpy(x), 400, 160, window=torch.hann_window(400), return_complex=True)
    ref = (ref.abs() ** 2)[:, :-1].numpy()  # Whisper drops the last centred frame
    mine = power_spectrogram(x)
    assert mine.shape == ref.shape
    assert np.abs(mine - ref).max() <= 1e-5 * ref.max()


def test_encoder_mel_scaled_in_place_is_whispers_scaling() -> None:
    from engine.audio.features import _mel_for_encoder
    from engine.audio.mel import log_mel_raw, whisper_scale

    x = np.concatenate([np.zeros(SR // 2, np.float32), tone(2.0, SR, 440.0, 0.3)])
    raw = log_mel_raw(x)
    mel, pad_value = _mel_for_encoder(x)
    np.testing.assert_array_equal(mel, whisper_scale(raw, max_value=max(float(raw.max()), -10.0)))
    assert pad_value == pytest.approx((max(-10.0, float(raw.max()) - 8.0) + 4.0) / 4.0)


def test_log_mel_of_a_span_is_that_span_of_the_whole_track() -> None:
    x = (np.random.default_rng(4).standard_normal(SR * 7 + 123) * 0.1).astype(np.float32)
    whole = log_mel_raw(x)
    for a, b in [(0, 5), (0, 10_000), (3, 4100), (4090, 4200), (690, 10_000), (-5, 3), (700, 700)]:
        span = log_mel_raw(x, (a, b))
        np.testing.assert_allclose(span, whole[:, max(a, 0) : b], rtol=0, atol=1e-5)
    assert log_mel_max(x) == float(whole.max())
    assert log_mel_max(np.zeros(100, np.float32)) is None  # shorter than one hop: no frame


def test_long_track_features_live_in_a_file_with_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    x = bursts(35.0, SR, [(2.0, 4.0), (31.0, 33.0)]) * np.float32(0.9)  # content unlike other tests
    held = whisper_features(x, use_cache=False)
    assert isinstance(held.vectors, np.ndarray)
    monkeypatch.setattr(features, "FILE_ABOVE_BYTES", 0)
    filed = whisper_features(x)
    assert isinstance(filed.vectors, FileRows) and filed.vectors.shape == held.vectors.shape
    np.testing.assert_array_equal(np.asarray(filed.vectors), held.vectors)
    assert filed.positions is not None and held.positions is not None
    np.testing.assert_array_equal(filed.positions, held.positions)
    # From the cache: rows read from the cache file, the same values.
    again = whisper_features(x)
    assert isinstance(again.vectors, FileRows) and not isinstance(again.vectors, RowFile)
    np.testing.assert_array_equal(np.asarray(again.vectors), held.vectors)
    # Debiased: the same values as in memory; the cache's file is never written over.
    expected = held.debiased().vectors
    np.testing.assert_array_equal(np.asarray(again.debiased(in_place=True).vectors), expected)
    np.testing.assert_array_equal(np.asarray(whisper_features(x).vectors), held.vectors)
    own = filed.debiased(in_place=True)
    assert own.vectors is filed.vectors  # its own temporary file: written in place
    np.testing.assert_array_equal(np.asarray(own.vectors), expected)
    # Sampled at frame times and normalised over speech from the file: the same as from memory.
    frames = np.arange(400) * 1001 / 30000
    mem = WhisperFeatures(expected, held.silence, held.duration_s, held.rate_hz, held.positions)
    np.testing.assert_array_equal(features_at_frames(own, frames, offset_s=-0.3),
                                  features_at_frames(mem, frames, offset_s=-0.3))
    speech = np.arange(len(expected)) % 3 > 0
    a, b = TrackNorm.from_vectors(own.vectors, speech, block=500), TrackNorm.from_vectors(expected, speech, block=500)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)


def test_samples_in_a_file_give_what_the_array_gives(tmp_path: Path) -> None:
    """A long track's 16 kHz samples are read from a file by slices: the cache key, the Whisper
    features, the speech probabilities, the band energy and a trimmed part are those of the array."""
    from types import SimpleNamespace

    from engine.audio import cache, detect_speech
    from engine.audio.timeline import trimmed_samples

    x = bursts(33.0, SR, [(1.0, 6.0), (29.0, 32.0)], seed=7) * np.float32(0.8)
    log = RowLog((), np.float32, tmp_path)
    log.extend(x)
    assert cache.content_key(log, SR, "v") == cache.content_key(x, SR, "v")
    a, b = whisper_features(x, use_cache=False), whisper_features(log, use_cache=False)
    np.testing.assert_array_equal(np.asarray(b.vectors), np.asarray(a.vectors))
    np.testing.assert_array_equal(detect_speech(log, use_cache=False).probs, detect_speech(x, use_cache=False).probs)
    times = np.arange(900) * 1001 / 30000
    np.testing.assert_array_equal(band_energy_db(log, times, 0.2), band_energy_db(x, times, 0.2))
    place = SimpleNamespace(offset_s=1.5, gain_db=0.0, trim_in_s=2.0, trim_out_s=20.0)
    part, offset = trimmed_samples(log, SR, place)
    whole, offset2 = trimmed_samples(x, SR, place)
    assert isinstance(part, FileRows) and offset == offset2
    np.testing.assert_array_equal(np.asarray(part), whole)
