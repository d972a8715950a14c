"""load_track: every format, rate and layout loads to float32 mono 16 kHz; bad input gives clear errors."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from engine.audio.tracks import ENGINE_RATE, downmix_to_mono, load_track
from engine.errors import MediaError
from tests import synth
from tests.audio.make_media import write_audio
from tests.audio.signals import bursts

SPANS = [(0.5, 1.0), (1.3, 1.7)]
# name, codec, rate, channels, video codec, encoder sample format, exact (lossless + no codec delay)
CASES = [
    ("u8_8k_mono.wav", "pcm_u8", 8000, 1, None, None, True),
    ("s16_16k_stereo.wav", "pcm_s16le", 16000, 2, None, None, True),
    ("s24_96k_mono.wav", "pcm_s24le", 96000, 1, None, "s32", True),
    ("s32_44k_stereo.wav", "pcm_s32le", 44100, 2, None, None, True),
    ("f32_22k_51.wav", "pcm_f32le", 22050, 6, None, None, True),
    ("mp3_44k_stereo.mp3", "libmp3lame", 44100, 2, None, None, False),
    ("aac_48k_mono.m4a", "aac", 48000, 1, None, None, False),
    ("aac_32k_stereo.aac", "aac", 32000, 2, None, None, False),
    ("flac_88k_51.flac", "flac", 88200, 6, None, None, True),
    ("opus_48k_stereo.opus", "libopus", 48000, 2, None, None, False),
    ("vorbis_24k_stereo.ogg", "vorbis", 24000, 2, None, None, False),
    ("h264_aac.mp4", "aac", 48000, 2, "libx264", None, False),
    ("mpeg4_aac.mov", "aac", 44100, 1, "mpeg4", None, False),
    ("h264_opus_51.mkv", "libopus", 48000, 6, "libx264", None, False),
    ("h264_pcm_12k.mkv", "pcm_s16le", 12000, 2, "libx264", None, True),
]


def lag_samples(a: np.ndarray, b: np.ndarray, max_lag: int = 2000) -> int:
    """The shift of ``a`` relative to ``b`` (positive: ``a`` is late), by cross-correlation."""
    n = min(len(a), len(b))
    a, b = a[:n].astype(np.float64), b[:n].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    vals = np.concatenate([corr[: max_lag + 1], corr[-max_lag:]])
    return int(lags[np.argmax(vals)])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_format_rate_and_layout_loads(tmp_path: Path, case: tuple) -> None:
    name, codec, rate, channels, video, fmt, exact = case
    signal = bursts(2.0, rate, SPANS)
    path = write_audio(tmp_path / name, np.repeat(signal[:, None], channels, axis=1), rate, codec, video, fmt)
    track = load_track(path)
    assert track.source_rate == rate
    assert track.source_channels == channels
    assert track.audio16k.dtype == np.float32 and track.audio16k.ndim == 1
    assert track.sample_rate == ENGINE_RATE
    reference = bursts(2.0, ENGINE_RATE, SPANS)
    if exact:
        assert abs(len(track.audio16k) - len(reference)) <= 1
    else:
        # Lossy codecs pad to whole frames (raw ADTS AAC also keeps its 1024-sample priming delay).
        assert 1.99 <= track.duration_s <= 2.1
    lag = lag_samples(track.audio16k, reference)
    assert abs(lag) <= (1 if exact else int(0.07 * ENGINE_RATE)), lag
    # Identical channels down-mix to the same level (no +3 dB from FFmpeg's unnormalised matrix).
    assert 0.4 <= float(np.abs(track.audio16k).max()) <= 0.6
    if exact and rate == ENGINE_RATE:
        assert np.allclose(track.audio16k[: len(reference)], reference[: len(track.audio16k)], atol=2e-4)
    assert track.key and track.key == load_track(path).key


def test_downmix_weights_are_convex() -> None:
    x = np.zeros((10, 6), np.float32)
    x[:, 3] = 1.0  # LFE only: no dialogue
    assert np.allclose(downmix_to_mono(x), 0.0)
    x[:] = 0.8
    assert np.allclose(downmix_to_mono(x), 0.8)
    stereo = np.stack([np.ones(5), -np.ones(5)], axis=1).astype(np.float32)
    assert np.allclose(downmix_to_mono(stereo), 0.0)


def _expect_media_error(path: Path, words: str) -> MediaError:
    with pytest.raises(MediaError) as info:
        load_track(path)
    text = str(info.value)
    assert str(path) in text, text
    assert any(w in text.lower() for w in words.split("|")), text
    return info.value


def test_missing_and_empty_files(tmp_path: Path) -> None:
    _expect_media_error(tmp_path / "nope.wav", "not found")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    _expect_media_error(empty, "empty")


def test_zero_length_wav(tmp_path: Path) -> None:
    # A valid PCM WAV header with an empty data chunk.
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 0)
    path = tmp_path / "zero.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(riff)) + riff)
    _expect_media_error(path, "no samples|zero length|empty|ends before")


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp3"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    _expect_media_error(path, "not a media file|damaged|corrupt|cannot be read|no audio")


def test_video_without_audio(tmp_path: Path) -> None:
    path = tmp_path / "silent_video.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        for i in range(10):
            f = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 25)
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    _expect_media_error(path, "no audio")


def test_unknown_codec(tmp_path: Path) -> None:
    path = synth.write_unknown_codec_wav(tmp_path / "strange.wav")
    _expect_media_error(path, "codec|cannot be read|not a media file")


def test_truncated_file_loads_what_is_there(tmp_path: Path) -> None:
    signal = bursts(2.0, 44100, SPANS)
    path = write_audio(tmp_path / "cut.mp3", np.repeat(signal[:, None], 2, axis=1), 44100, "libmp3lame")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    track = load_track(path)
    assert 0.5 < track.duration_s < 1.6
