"""decode_audio round trip: every container/codec/rate/layout we meet, to float32 at a chosen rate/layout."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from engine.media import MediaError, decode_audio
from tests import synth

LOSSLESS = {"pcm_s16le": 2e-4, "pcm_s24le": 1e-6, "pcm_s32le": 1e-7, "pcm_f32le": 1e-7, "pcm_u8": 1e-2, "flac": 2e-4}

CASES = [
    # (file name, codec, rate, channels, container format)
    ("s16_44k_stereo.wav", "pcm_s16le", 44100, 2, None),
    ("s16_8k_mono.wav", "pcm_s16le", 8000, 1, None),
    ("s24_96k_stereo.wav", "pcm_s24le", 96000, 2, None),
    ("s32_48k_mono.wav", "pcm_s32le", 48000, 1, None),
    ("f32_22k_stereo.wav", "pcm_f32le", 22050, 2, None),
    ("u8_11k_mono.wav", "pcm_u8", 11025, 1, None),
    ("s16_48k_5.1.wav", "pcm_s16le", 48000, 6, None),
    ("flac_44k_stereo.flac", "flac", 44100, 2, None),
    ("flac_96k_5.1.flac", "flac", 96000, 6, None),
    ("aac_48k_mono.m4a", "aac", 48000, 1, None),
    ("aac_44k_stereo.m4a", "aac", 44100, 2, None),
    ("aac_96k_5.1.m4a", "aac", 96000, 6, None),
    ("aac_16k_mono.m4a", "aac", 16000, 1, None),
    ("mp3_44k_stereo.mp3", "libmp3lame", 44100, 2, None),
    ("mp3_16k_mono.mp3", "libmp3lame", 16000, 1, None),
    ("opus_48k_stereo.ogg", "libopus", 48000, 2, None),
    ("opus_16k_mono.ogg", "libopus", 16000, 1, None),
    ("opus_48k_5.1.ogg", "libopus", 48000, 6, None),
    ("aac_in.mkv", "aac", 48000, 2, None),
    ("aac_in.mov", "aac", 44100, 1, None),
    ("aac_in.mp4", "aac", 32000, 2, None),
    ("flac_in.mkv", "flac", 48000, 6, None),
]


def _dominant_freq(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spec)])


@pytest.mark.parametrize(("name", "codec", "rate", "channels", "fmt"), CASES, ids=[c[0] for c in CASES])
def test_round_trip(tmp_path: Path, name: str, codec: str, rate: int, channels: int, fmt: str | None) -> None:
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec} encoder")
    path, ref = synth.make_audio(tmp_path / name, codec=codec, rate=rate, channels=channels, duration=1.0, fmt=fmt)

    native = decode_audio(path)
    assert native.samples.dtype == np.float32 and native.samples.ndim == 2
    native_rate = 48000 if codec == "libopus" else rate  # Opus always decodes at 48 kHz
    assert native.sample_rate == native_rate and native.channels == channels
    assert (native.source_rate, native.source_channels) == (native_rate, channels)
    assert native.source_codec
    assert native.samples.flags["C_CONTIGUOUS"]
    assert native.duration == pytest.approx(1.0, abs=0.05)  # codec padding only
    if codec in LOSSLESS:
        assert native.num_samples == len(ref)
        np.testing.assert_allclose(native.samples, ref, atol=LOSSLESS[codec] + 1 / 128 * (codec == "pcm_u8"))
    else:
        for c in range(channels):
            if channels == 6 and c == 3:
                continue  # the LFE channel is low-passed by lossy codecs
            rms_out = float(np.sqrt(np.mean(native.samples[2048:-2048, c] ** 2)))
            rms_ref = float(np.sqrt(np.mean(ref[:, c] ** 2)))
            assert rms_out == pytest.approx(rms_ref, rel=0.3), f"{name} channel {c}"
            f = _dominant_freq(native.samples[:, c], native_rate)  # channel c carries 440 * (c + 1) Hz
            assert abs(f - 440 * (c + 1)) < 8, f"{name} channel {c}: {f} Hz"

    mono16 = decode_audio(path, sample_rate=16000, channels=1)
    assert mono16.sample_rate == 16000 and mono16.samples.shape[1] == 1
    assert mono16.duration == pytest.approx(1.0, abs=0.05)
    assert np.sqrt(np.mean(mono16.samples**2)) > 0.05
    f = _dominant_freq(mono16.samples[:, 0], 16000)  # one of the channels' tones, undistorted
    assert min(abs(f - 440 * (c + 1)) for c in range(channels)) < 8, f

    stereo = decode_audio(path, sample_rate=48000, channels=2)
    assert stereo.samples.shape[1] == 2 and stereo.sample_rate == 48000
    assert np.all(np.sqrt(np.mean(stereo.samples**2, axis=0)) > 0.02)  # 5.1 and mono reach both sides


LOSSY = [c for c in CASES if c[1] not in LOSSLESS]


@pytest.mark.parametrize(("name", "codec", "rate", "channels", "fmt"), LOSSY, ids=[c[0] for c in LOSSY])
def test_lossy_codecs_have_no_delay(tmp_path: Path, name: str, codec: str, rate: int, channels: int,
                                    fmt: str | None) -> None:
    """Encoder delay/priming is compensated: a beep written at 0.5 s decodes at 0.5 s."""
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec} encoder")
    path, _ = synth.make_audio(tmp_path / name, codec=codec, rate=rate, channels=channels, duration=1.0,
                               fmt=fmt, kind="beeps")
    a = decode_audio(path, sample_rate=16000, channels=1)
    onset = np.argmax(np.abs(a.samples[:, 0]) > 0.05) / 16000
    assert onset == pytest.approx(synth.BEEP_TIMES[0], abs=0.003), name


def test_audio_of_videos(video_with_audio: Path, tmp_path: Path) -> None:
    a = decode_audio(video_with_audio, 16000, 1)
    assert a.duration == pytest.approx(3.0, abs=0.05)
    env = np.abs(a.samples[:, 0])
    for t0 in synth.BEEP_TIMES:  # the beeps are where they were written (AAC delay compensated)
        seg = env[int((t0 - 0.05) * 16000) : int((t0 + 0.15) * 16000)]
        onset = t0 - 0.05 + np.argmax(seg > 0.1) / 16000
        assert onset == pytest.approx(t0, abs=0.003)
    for ext in ("mkv", "mov"):
        p = synth.make_video(tmp_path / f"v.{ext}", n_frames=25, audio="tone", audio_rate=44100, audio_channels=1)
        b = decode_audio(p, 22050, 2)
        assert b.samples.shape[1] == 2 and b.duration == pytest.approx(1.0, abs=0.05)


def test_stream_index(tmp_path: Path, video_with_audio: Path) -> None:
    with pytest.raises(MediaError, match="stream #0 is video"):
        decode_audio(video_with_audio, stream_index=0)
    with pytest.raises(MediaError, match="no stream #7"):
        decode_audio(video_with_audio, stream_index=7)
    assert decode_audio(video_with_audio, stream_index=1).stream_index == 1


@pytest.mark.media
def test_real_dub_tracks(shared_media: Path) -> None:
    for name in ("dub_english2.m4a", "dub_english3.mp3", "dub_french2.wav", "dub_german1.wav"):
        a = decode_audio(shared_media / "audio" / name, sample_rate=16000, channels=1)
        assert a.duration > 3 and np.abs(a.samples).max() > 0.1, name


def test_unknown_audio_codec_names_the_file(tmp_path: Path) -> None:
    """A well-formed WAV whose format tag names no codec FFmpeg knows: a MediaError, not a crash."""
    path = synth.write_unknown_codec_wav(tmp_path / "strange codec.wav")
    with pytest.raises(MediaError) as info:
        decode_audio(path)
    assert "strange codec.wav" in str(info.value)


def test_a_track_longer_than_its_first_buffer_decodes_whole(tmp_path: Path, monkeypatch) -> None:
    from engine.media import audio

    path, ref = synth.make_audio(tmp_path / "long.flac", codec="flac", rate=44100, channels=2, duration=2.0)
    whole = decode_audio(path).samples
    monkeypatch.setattr(audio, "_FIRST_BUFFER_S", 0.01)  # the buffer has to grow
    grown = decode_audio(path).samples
    assert len(whole) == len(ref) and grown.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(grown, whole)


def test_a_long_track_decodes_into_a_file_with_the_same_samples(tmp_path: Path) -> None:
    """With ``file_above_bytes`` a track decodes into a temporary file: the same samples as in memory,
    read by slices; its mono mix is the same too, and a mono track's is the file itself."""
    from engine.runtime.rowfile import FileRows
    from tests.audio.make_media import write_audio

    rng = np.random.default_rng(5)
    stereo = (rng.standard_normal((44100 * 3 + 17, 2)) * 0.1).astype(np.float32)
    path = write_audio(tmp_path / "s.flac", stereo, 44100, "flac")
    held = decode_audio(path, sample_rate=16000)
    filed = decode_audio(path, sample_rate=16000, file_above_bytes=1000)
    assert isinstance(held.samples, np.ndarray) and isinstance(filed.samples, FileRows)
    assert filed.samples.shape == held.samples.shape and filed.channels == 2
    assert filed.start_time == held.start_time and filed.duration == held.duration
    np.testing.assert_array_equal(np.asarray(filed.samples), held.samples)
    np.testing.assert_array_equal(filed.samples[1000:1300], held.samples[1000:1300])
    mono = filed.mono()
    assert isinstance(mono, FileRows) and mono.shape == (len(held.samples),)
    np.testing.assert_array_equal(np.asarray(mono), held.mono())
    # Under the limit: in memory as always.
    assert isinstance(decode_audio(path, sample_rate=16000, file_above_bytes=10**9).samples, np.ndarray)
    one = decode_audio(path, sample_rate=16000, channels=1, file_above_bytes=0)
    m = one.mono()
    assert isinstance(m, FileRows) and m.shape == (len(held.samples),)
    np.testing.assert_array_equal(np.asarray(m), np.asarray(decode_audio(path, sample_rate=16000, channels=1).mono()))
