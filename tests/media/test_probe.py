"""Probe: streams, frame-time tables, rotation, VFR, caching; and every bad input gives a clear MediaError."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from engine.media import MediaError, VideoReader, content_hash, decode_audio, probe
from tests import synth
from tests.conftest import VFR_TIMES


def test_cfr_tables(video_25fps: Path, video_ntsc: Path) -> None:
    v = probe(video_25fps).require_video()
    assert (v.codec, v.width, v.height, v.frame_count, v.rotation) == ("h264", 160, 120, 50, 0)
    assert v.avg_fps == pytest.approx(25) and v.real_fps == pytest.approx(25) and not v.is_vfr
    np.testing.assert_allclose(v.frame_times, np.arange(50) / 25, atol=1e-9)
    assert v.duration == pytest.approx(2.0)
    assert list(v.keyframes) == [0, 12, 24, 36, 48]
    n = probe(video_ntsc).require_video()
    assert n.time_base == Fraction(1, 30000)
    assert n.real_fps == pytest.approx(30000 / 1001) and not n.is_vfr and n.frame_count == 60
    np.testing.assert_allclose(n.frame_times, np.arange(60) * 1001 / 30000, atol=1e-9)


def test_vfr_table(video_vfr: Path) -> None:
    v = probe(video_vfr).require_video()
    assert v.is_vfr and v.frame_count == len(VFR_TIMES)
    np.testing.assert_allclose(v.frame_times, VFR_TIMES, atol=0.5 / 90000)
    assert v.avg_fps == pytest.approx((len(VFR_TIMES) - 1) / VFR_TIMES[-1])
    assert v.index_at_time(VFR_TIMES[7] + 1e-6) == 7
    assert v.index_at_time(VFR_TIMES[7] - 1e-3) == 6


def test_audio_streams_and_json(video_with_audio: Path) -> None:
    info = probe(video_with_audio)
    (a,) = info.audio
    assert (a.codec, a.sample_rate, a.channels, a.layout) == ("aac", 48000, 2, "stereo")
    assert a.duration == pytest.approx(3.0, abs=0.05)
    d = json.loads(json.dumps(info.to_dict(frames=True)))
    assert d["videos"][0]["frame_count"] == 75 and len(d["videos"][0]["frame_times"]) == 75


def test_audio_only_file(tmp_path: Path) -> None:
    path, _ = synth.make_audio(tmp_path / "a.mp3", codec="libmp3lame") if "libmp3lame" in _codecs() else (
        synth.make_audio(tmp_path / "a.m4a", codec="aac")
    )
    info = probe(path)
    assert info.video is None and len(info.audio) == 1


def _codecs() -> set[str]:
    import av

    return set(av.codecs_available)


def test_cache_is_used_and_invalidated(video_25fps: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.mp4"
    shutil.copy(video_25fps, copy)
    first = probe(copy)
    again = probe(copy)  # from the cache
    np.testing.assert_array_equal(first.require_video().pts, again.require_video().pts)
    assert again.require_video().keyframes.tolist() == first.require_video().keyframes.tolist()
    assert again.require_video().color == first.require_video().color
    synth.make_video(copy, n_frames=13)  # same path, new content: the cache must not answer
    assert probe(copy).require_video().frame_count == 13


def test_content_hash(video_25fps: Path, tmp_path: Path) -> None:
    copy = tmp_path / "renamed é.mp4"
    shutil.copy(video_25fps, copy)
    assert content_hash(copy) == content_hash(video_25fps)
    other = synth.make_video(tmp_path / "other.mp4", n_frames=10)
    assert content_hash(other) != content_hash(video_25fps)
    with pytest.raises(MediaError, match="not found"):
        content_hash(tmp_path / "nope.mp4")


# -- bad inputs: each a MediaError that names the file -------------------------------------------------


def _raises_naming(path: Path, match: str, fn=probe) -> MediaError:  # type: ignore[no-untyped-def]
    with pytest.raises(MediaError, match=match) as e:
        fn(path)
    assert str(path) in str(e.value), "the error must name the file"
    return e.value


def test_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "no such clip.mp4"
    _raises_naming(p, "file not found")
    _raises_naming(p, "file not found", VideoReader)
    _raises_naming(p, "file not found", decode_audio)


def test_text_file_renamed_mp4(tmp_path: Path) -> None:
    p = tmp_path / "notes.mp4"
    p.write_text("these are my notes, not a video\n" * 50)
    _raises_naming(p, "not a media file")
    _raises_naming(p, "not a media file", VideoReader)
    _raises_naming(p, "not a media file", decode_audio)


def test_empty_file_and_folder(tmp_path: Path) -> None:
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    _raises_naming(p, "empty")
    _raises_naming(tmp_path, "folder")


def test_audio_only_as_video(tmp_path: Path) -> None:
    p, _ = synth.make_audio(tmp_path / "speech.m4a", codec="aac")
    _raises_naming(p, "no video stream", lambda x: probe(x).require_video())
    _raises_naming(p, "no video stream", VideoReader)


def test_video_without_audio_for_decode_audio(video_25fps: Path) -> None:
    _raises_naming(video_25fps, "no audio stream", decode_audio)


def test_zero_frames(tmp_path: Path) -> None:
    p = synth.make_zero_frame_video(tmp_path / "zero.mkv")
    info = probe(p)
    assert info.video is not None and info.video.frame_count == 0
    _raises_naming(p, "no frames", lambda x: probe(x).require_video())
    _raises_naming(p, "no frames", VideoReader)


def test_zero_length_audio(tmp_path: Path) -> None:
    p = synth.make_zero_frame_video(tmp_path / "nothing.mkv", audio_s=0)
    with pytest.raises(MediaError) as e:
        decode_audio(p)
    assert str(p) in str(e.value)


def test_truncated_mkv_decodes_what_is_there(tmp_path: Path) -> None:
    full = synth.make_video(tmp_path / "full.mkv", n_frames=100, audio="tone")
    cut = synth.truncate(full, tmp_path / "cut.mkv", 0.6)
    info = probe(cut)
    v = info.require_video()
    assert v.truncated and info.truncated
    assert any("truncated" in w for w in v.warnings)
    assert 30 < v.frame_count < 100
    with VideoReader(cut) as r:
        assert r.truncated
        got = [synth.read_index(f) for _, f in r.iter_frames()]
        assert got == list(range(len(r)))
        assert synth.read_index(r.frame(len(r) - 1)) == len(r) - 1
        assert synth.read_index(r.frame(3)) == 3
    a = decode_audio(cut)
    assert 1.0 < a.duration < 4.0


def test_truncated_faststart_mp4(tmp_path: Path) -> None:
    full = synth.make_video(tmp_path / "full.mp4", n_frames=100, faststart=True)
    cut = synth.truncate(full, tmp_path / "cut.mp4", 0.6)
    v = probe(cut).require_video()
    assert v.truncated and 30 < v.frame_count < 100
    with VideoReader(cut) as r:
        frames = list(r.iter_frames())
        assert len(frames) == len(r)
        for i, f in frames:  # every frame the table lists decodes, and is the frame at that time
            assert synth.read_index(f) == round(v.frame_times[i] * 25)
        for i in (len(r) - 1, 0, len(r) // 2):
            assert synth.read_index(r.frame(i)) == round(v.frame_times[i] * 25)


def test_truncated_mp4_without_index(tmp_path: Path) -> None:
    full = synth.make_video(tmp_path / "full.mp4", n_frames=60)  # moov at the end
    cut = synth.truncate(full, tmp_path / "cut.mp4", 0.7)
    e = _raises_naming(cut, "incomplete")
    assert e.hint and "cut short" in e.hint


def test_unsupported_codec(tmp_path: Path) -> None:
    p = synth.make_unknown_codec_video(tmp_path / "odd codec.avi")
    _raises_naming(p, "codec")
    _raises_naming(p, "codec", VideoReader)


def test_non_ascii_and_spaces(video_with_audio: Path, tmp_path: Path) -> None:
    folder = tmp_path / "Ünïcödé folder 日本語"
    folder.mkdir()
    p = folder / "clip with spaces — été.mp4"
    shutil.copy(video_with_audio, p)
    assert probe(p).require_video().frame_count == 75
    with VideoReader(p) as r:
        assert synth.read_index(r.frame(40)) == 40
    assert decode_audio(p, 16000, 1).sample_rate == 16000
    _raises_naming(folder / "missing é.mp4", "not found")
