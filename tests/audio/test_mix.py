"""Output mix: placement lands to the sample, nothing clips, the modes, ducking."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from engine.audio.mix import (
    OUTPUT_RATE,
    DubInput,
    MixMode,
    MixSettings,
    duck_gain,
    mix_output,
)
from engine.audio.tracks import load_track
from tests.audio.make_media import write_audio
from tests.audio.signals import bursts, tone


@dataclass
class Dub:
    offset_s: float = 0.0
    gain_db: float = 0.0
    trim_in_s: float = 0.0
    trim_out_s: float | None = None


def dub_file(tmp_path: Path, name: str, samples: np.ndarray, rate: int = OUTPUT_RATE) -> DubInput:
    x = samples if samples.ndim == 2 else samples[:, None]
    return DubInput(load_track(write_audio(tmp_path / name, x, rate, "pcm_f32le")), Dub(), name)


NO_FADE = MixSettings(edge_fade_s=0.0)


def test_offset_trim_gain_land_to_the_sample(tmp_path: Path) -> None:
    src = bursts(3.0, OUTPUT_RATE, [(0.5, 1.0), (1.6, 2.4)], seed=1)
    stereo = np.stack([src, -0.5 * src], axis=1)
    d = dub_file(tmp_path, "dub.wav", stereo)
    d.placement = Dub(offset_s=1.2345, gain_db=-6.0, trim_in_s=0.4, trim_out_s=2.0)
    result = mix_output([d], 5.0, settings=NO_FADE)
    out = result.tracks[0].samples
    assert out.shape == (5 * OUTPUT_RATE, 2) and out.dtype == np.float32 and result.sample_rate == 48000
    dst, a, b = round(1.2345 * OUTPUT_RATE), round(0.4 * OUTPUT_RATE), round(2.0 * OUTPUT_RATE)
    g = 10 ** (-6 / 20)
    assert np.allclose(out[dst : dst + b - a], stereo[a:b] * g, atol=1e-6)
    assert not out[:dst].any() and not out[dst + b - a :].any()
    # The first burst sample (0.5 s in the file) lands at offset + (0.5 - trim in), exactly.
    first = np.flatnonzero(np.abs(out[:, 0]) > 0)[0]
    assert first == dst + round(0.5 * OUTPUT_RATE) - a
    assert result.tracks[0].gain_db == 0.0 and result.warnings == []


def test_mono_dub_plays_at_full_level_on_both_sides(tmp_path: Path) -> None:
    d = dub_file(tmp_path, "mono.wav", np.full(OUTPUT_RATE, 0.25, np.float32))
    out = mix_output([d], 1.0, settings=NO_FADE).tracks[0].samples
    assert np.allclose(out, 0.25, atol=1e-6)


def test_resampled_dub_keeps_its_timing(tmp_path: Path) -> None:
    src = bursts(2.0, 44100, [(0.7, 1.2)], seed=2)
    d = dub_file(tmp_path, "cd.wav", src, rate=44100)
    d.placement = Dub(offset_s=0.5)
    out = mix_output([d], 3.0, settings=NO_FADE).tracks[0].samples[:, 0]
    first = np.flatnonzero(np.abs(out) > 1e-3)[0]
    assert abs(first - round(1.2 * OUTPUT_RATE)) <= 2


def test_mixing_never_clips(tmp_path: Path) -> None:
    loud = [dub_file(tmp_path, f"l{i}.wav", tone(2.0, OUTPUT_RATE, 200.0 * (i + 1), 0.99)) for i in range(3)]
    for i, d in enumerate(loud):
        d.placement = Dub(offset_s=0.1 * i, gain_db=6.0)
    result = mix_output(loud, 2.0)
    track = result.tracks[0]
    ceiling = 10 ** (-1 / 20)
    assert float(np.abs(track.samples).max()) <= ceiling + 1e-7
    assert track.gain_db < -6.0 and track.peak_dbfs <= -1.0 + 1e-5
    # The sum was not clipped before the gain: the waveform is the scaled sum, not a flattened one.
    expected = sum(
        np.pad(tone(2.0, OUTPUT_RATE, 200.0 * (i + 1), 0.99), (round(0.1 * i * OUTPUT_RATE), 0))[: 2 * OUTPUT_RATE]
        for i in range(3)
    ) * 10 ** (6 / 20) * 10 ** (track.gain_db / 20)
    mid = slice(OUTPUT_RATE // 2, OUTPUT_RATE)
    assert np.allclose(track.samples[mid, 0], expected[mid], atol=1e-4)


def test_quiet_mix_is_left_alone(tmp_path: Path) -> None:
    d = dub_file(tmp_path, "q.wav", tone(1.0, OUTPUT_RATE, 300.0, 0.3))
    track = mix_output([d], 1.0, settings=NO_FADE).tracks[0]
    assert track.gain_db == 0.0
    assert float(np.abs(track.samples).max()) == pytest.approx(0.3, abs=1e-4)


def test_edge_fades_avoid_clicks(tmp_path: Path) -> None:
    d = dub_file(tmp_path, "dc.wav", np.full(OUTPUT_RATE, 0.5, np.float32))
    d.placement = Dub(offset_s=0.25, trim_in_s=0.1, trim_out_s=0.6)
    out = mix_output([d], 1.0).tracks[0].samples[:, 0]
    start, end = round(0.25 * OUTPUT_RATE), round(0.75 * OUTPUT_RATE)
    assert np.abs(np.diff(out)).max() < 0.5 / 200  # 5 ms linear ramps, no step
    assert out[start] == 0.0 and out[start + 480] == pytest.approx(0.5) and out[end - 1] == 0.0


def test_dub_and_original_gives_two_tracks(tmp_path: Path) -> None:
    d = dub_file(tmp_path, "d.wav", tone(1.0, OUTPUT_RATE, 300.0, 0.3))
    original = np.stack([tone(1.5, OUTPUT_RATE, 500.0, 0.2)] * 2, axis=1)
    result = mix_output([d], 1.5, original=original, settings=MixSettings(mode=MixMode.DUB_AND_ORIGINAL))
    assert [t.label for t in result.tracks] == ["Dub", "Original"]
    assert np.allclose(result.tracks[1].samples, original, atol=1e-6)
    assert result.tracks[0].samples.shape == result.tracks[1].samples.shape


def test_modes_without_original_fall_back_with_a_warning(tmp_path: Path) -> None:
    d = dub_file(tmp_path, "d.wav", tone(1.0, OUTPUT_RATE, 300.0, 0.3))
    result = mix_output([d], 1.0, settings=MixSettings(mode=MixMode.ORIGINAL_DUCKED))
    assert len(result.tracks) == 1 and "original audio is missing" in result.warnings[0]


def test_duck_gain_shape() -> None:
    s = MixSettings(duck_db=-20.0, duck_attack_s=0.1, duck_release_s=0.2)
    g = duck_gain([(1.0, 2.0)], 4 * OUTPUT_RATE, s)
    at = lambda t: float(g[round(t * OUTPUT_RATE)])  # noqa: E731
    assert at(0.5) == 1.0 and at(3.0) == 1.0
    assert at(1.5) == pytest.approx(0.1, rel=1e-4)
    assert 0.1 < at(0.95) < 1.0 and 0.1 < at(2.1) < 1.0
    assert np.all(np.diff(g[: OUTPUT_RATE]) <= 0)  # monotone attack


@pytest.mark.media
def test_original_ducked_under_real_speech(tmp_path: Path, shared_media: Path) -> None:
    track = load_track(shared_media / "audio" / "dub_german1.wav")
    dub = DubInput(track, Dub(offset_s=1.0, gain_db=-6.0), "German")
    original = np.stack([tone(12.0, OUTPUT_RATE, 120.0, 0.05)] * 2, axis=1)
    settings = MixSettings(mode=MixMode.ORIGINAL_DUCKED, duck_db=-18.0)
    ducked = mix_output([dub], 12.0, original=original, settings=settings)
    dub_only = mix_output([dub], 12.0)
    assert ducked.tracks[0].gain_db == 0.0 and dub_only.tracks[0].gain_db == 0.0
    under = ducked.tracks[0].samples[:, 0] - dub_only.tracks[0].samples[:, 0]
    ratio = np.abs(under) / 0.05
    block = lambda t: float(ratio[round(t * OUTPUT_RATE) : round((t + 0.1) * OUTPUT_RATE)].max())  # noqa: E731
    assert block(0.2) == pytest.approx(1.0, abs=0.01)  # before the dub: full level
    assert block(4.0) == pytest.approx(10 ** (-18 / 20), abs=0.01)  # inside its speech: ducked
    assert block(11.5) == pytest.approx(1.0, abs=0.01)  # after it: back up


def test_original_from_a_video_file(tmp_path: Path) -> None:
    sound = tone(1.0, OUTPUT_RATE, 440.0, 0.3)
    video = write_audio(tmp_path / "clip.mkv", sound[:, None], OUTPUT_RATE, "pcm_s16le", video="libx264")
    d = dub_file(tmp_path, "d.wav", tone(1.0, OUTPUT_RATE, 300.0, 0.1))
    result = mix_output([d], 1.0, original=video, settings=MixSettings(mode=MixMode.DUB_AND_ORIGINAL))
    orig = result.tracks[1].samples
    assert np.allclose(orig[:, 0], orig[:, 1]) and np.allclose(orig[:, 0], sound, atol=1e-4)


def test_unreadable_original_falls_back_with_a_warning(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    d = dub_file(tmp_path, "d.wav", tone(1.0, OUTPUT_RATE, 300.0, 0.1))
    result = mix_output([d], 1.0, original=bad, settings=MixSettings(mode=MixMode.ORIGINAL_DUCKED))
    assert len(result.tracks) == 1 and any(str(bad) in w for w in result.warnings)


def test_many_loud_tracks_do_not_saturate_the_sum(tmp_path: Path) -> None:
    # 24 in-phase full-scale tracks at +12 dB: a sum of 95x full scale, still exact before the limiter.
    base = tone(0.5, OUTPUT_RATE, 250.0, 0.99)
    dubs = [dub_file(tmp_path, f"t{i}.wav", base) for i in range(24)]
    for d in dubs:
        d.placement = Dub(gain_db=12.0)
    track = mix_output(dubs, 0.5, settings=NO_FADE).tracks[0]
    assert float(np.abs(track.samples).max()) <= 10 ** (-1 / 20) + 1e-7
    shape = track.samples[:, 0] / np.abs(track.samples[:, 0]).max()
    assert np.allclose(shape, base / np.abs(base).max(), atol=1e-4)  # a scaled sine, not a clipped one


@pytest.mark.parametrize("mode", list(MixMode))
def test_a_long_mix_in_a_temporary_file_equals_the_mix_in_memory(tmp_path: Path, monkeypatch, mode) -> None:
    from engine.audio import mix
    from engine.audio.pcm import PcmFile

    monkeypatch.setattr(mix, "_BLOCK_S", 0.2)  # many blocks; fades and ducking ramps cross their edges
    loud = dub_file(tmp_path, "loud.wav", np.stack([tone(2.0, OUTPUT_RATE, 220.0, 0.9)] * 2, axis=1))
    loud.placement = Dub(offset_s=0.398, gain_db=4.0, trim_in_s=0.1, trim_out_s=1.7)
    second = dub_file(tmp_path, "second.wav", bursts(2.5, 44100, [(0.3, 0.9), (1.4, 2.0)], seed=3), rate=44100)
    second.placement = Dub(offset_s=-0.5)
    original = np.stack([tone(3.0, OUTPUT_RATE, 500.0, 0.4), tone(3.0, OUTPUT_RATE, 510.0, 0.4)], axis=1)
    settings = MixSettings(mode=mode)

    in_memory = mix_output([loud, second], 2.6, original=original, settings=settings)
    monkeypatch.setattr(mix, "FILE_ABOVE_BYTES", 0)
    on_disk = mix_output([loud, second], 2.6, original=original, settings=settings)

    assert on_disk.warnings == in_memory.warnings
    assert [t.label for t in on_disk.tracks] == [t.label for t in in_memory.tracks]
    for a, b in zip(in_memory.tracks, on_disk.tracks, strict=True):
        assert isinstance(a.samples, np.ndarray) and isinstance(b.samples, PcmFile)
        assert b.samples.shape == a.samples.shape and b.samples.dtype == np.float32
        np.testing.assert_array_equal(np.asarray(b.samples), a.samples)
        assert (b.peak_dbfs, b.gain_db) == (a.peak_dbfs, a.gain_db)
    assert in_memory.tracks[0].gain_db < 0.0  # the loud dub was brought under the ceiling


def test_edge_fades_across_block_edges_match_the_placed_ramps(tmp_path: Path, monkeypatch) -> None:
    from engine.audio import mix

    monkeypatch.setattr(mix, "_BLOCK_S", 0.2)
    src = np.full(OUTPUT_RATE, 0.5, np.float32)
    d = dub_file(tmp_path, "dc.wav", src)
    d.placement = Dub(offset_s=0.398, gain_db=-6.0, trim_in_s=0.1, trim_out_s=0.6)  # ends at 0.898 s
    out = mix_output([d], 1.0, settings=MixSettings(edge_fade_s=0.005)).tracks[0].samples[:, 0]
    start, end, fade = round(0.398 * OUTPUT_RATE), round(0.898 * OUTPUT_RATE), 240
    expected = np.zeros(OUTPUT_RATE, np.float32)
    expected[start:end] = 0.5 * np.float32(10 ** (-6 / 20))
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    expected[start : start + fade] *= ramp
    expected[end - fade : end] *= ramp[::-1]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_pcm_file_reads_back_what_was_written() -> None:
    from engine.audio.pcm import PcmFile

    x = PcmFile(1000, 2)
    assert x.shape == (1000, 2) and len(x) == 1000 and x.ndim == 2 and not np.asarray(x).any()
    block = np.arange(200, dtype=np.float32).reshape(100, 2)
    x[300:400] = block
    np.testing.assert_array_equal(x[300:400], block)
    np.testing.assert_array_equal(x[350:450, 1], np.concatenate([block[50:, 1], np.zeros(50, np.float32)]))
    np.testing.assert_array_equal(x[-700], block[0])
    assert x[990:2000].shape == (10, 2)  # a run past the end stops at the end, as an array's does
    x[0:1000] = 0.25  # a scalar fills the run
    assert float(np.asarray(x).min()) == 0.25
    with pytest.raises(TypeError):
        x[::2]
    x.close()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to see where an unnamed file lives")
def test_a_long_mix_is_kept_in_the_cache_folder_not_the_system_temp(tmp_path: Path, monkeypatch) -> None:
    import os

    from engine.audio import mix
    from engine.runtime.paths import cache_dir

    monkeypatch.setattr(mix, "FILE_ABOVE_BYTES", 0)
    d = dub_file(tmp_path, "d.wav", tone(1.0, OUTPUT_RATE, 300.0, 0.3))
    samples = mix_output([d], 1.0).tracks[0].samples
    where = os.readlink(f"/proc/self/fd/{samples._file.fileno()}")
    assert where.startswith(str(cache_dir("tmp"))), where


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_a_long_track_is_decoded_for_output_into_a_file(tmp_path: Path, channels: int) -> None:
    """Above the size limit a track decoded for the mix is rows in a file, converted a block at a
    time: the same samples as the array (mono at full level on both sides, 5.1 down-mixed)."""
    from engine.audio.tracks import decode_for_output
    from engine.runtime.rowfile import FileRows

    rng = np.random.default_rng(channels)
    x = (rng.standard_normal((44100 * 2, channels)) * 0.1).astype(np.float32)
    path = write_audio(tmp_path / f"c{channels}.flac", x, 44100, "flac")
    for out_channels in (1, 2):
        held = decode_for_output(path, OUTPUT_RATE, out_channels)
        filed = decode_for_output(path, OUTPUT_RATE, out_channels, file_above_bytes=1000)
        assert isinstance(held, np.ndarray) and isinstance(filed, FileRows)
        assert filed.shape == held.shape == (2 * OUTPUT_RATE, out_channels)
        np.testing.assert_array_equal(np.asarray(filed), held)
