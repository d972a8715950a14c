"""Encode + mux: an encoded copy keeps every frame's time and count; audio tracks with languages;
atomic output (temp file beside the target, renamed when complete); clear OutputErrors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from engine.media import (
    AudioTrack,
    ColorInfo,
    OutputError,
    VideoReader,
    VideoWriter,
    atomic_output,
    cleanup_stale_partials,
    decode_audio,
    iso639_2,
    probe,
)
from tests import synth

ROOT = Path(__file__).resolve().parents[2]


def _copy(src: Path, dst: Path, **kw) -> Path:  # type: ignore[no-untyped-def]
    with VideoReader(src) as r:
        v = r.info
        with VideoWriter(dst, v.width, v.height, time_base=v.time_base, fps=v.fps, **kw) as w:
            for i, frame in r.iter_frames():
                w.write(frame, float(v.frame_times[i]))
    return dst


@pytest.mark.parametrize("name", ["video_25fps", "video_ntsc", "video_vfr", "video_rotated"])
def test_encoded_copy_keeps_every_frame_time(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    src = request.getfixturevalue(name)
    out = _copy(src, tmp_path / f"copy of {name}.mp4")
    a, b = probe(src).require_video(), probe(out).require_video()
    assert b.frame_count == a.frame_count
    np.testing.assert_allclose(b.frame_times, a.frame_times, atol=0.5 * float(a.time_base))
    assert b.is_vfr == a.is_vfr
    assert (b.width, b.height, b.rotation) == (a.width, a.height, 0)  # written upright
    with VideoReader(out) as r:
        for i in (0, 7, len(r) - 1, 3):
            assert synth.read_index(r.frame(i)) == i


def test_odd_size_is_padded_by_one_pixel(video_odd: Path, tmp_path: Path) -> None:
    out = tmp_path / "odd.mp4"
    with VideoReader(video_odd) as r:
        first = r.frame(0)
        with VideoWriter(out, 721, 405, fps=25) as w:
            assert w.padded and (w.enc_width, w.enc_height) == (722, 406)
            for i, f in r.iter_frames():
                w.write(f, i / 25)
    with VideoReader(out) as r2:
        got = r2.frame(0)
        assert got.shape == (406, 722, 3)
        assert synth.read_index(got[:405, :721]) == 0
        assert np.abs(got[:405, :721].astype(int) - first).mean() < 3  # the source pixels, where they were
    exact = tmp_path / "odd444.mp4"
    with VideoReader(video_odd) as r, VideoWriter(exact, 721, 405, fps=25, pix_fmt="yuv444p") as w:
        assert not w.padded
        for i, f in r.iter_frames(0, 5):
            w.write(f, i / 25)
    assert (probe(exact).require_video().width, probe(exact).require_video().height) == (721, 405)


def test_audio_tracks_with_languages(tmp_path: Path) -> None:
    sr = 48000
    de = synth.beeps(2.0, sr, 2)
    en = synth.tone(2.0, 44100, 1)
    out = tmp_path / "dubbed.mp4"
    with VideoWriter(
        out, 160, 120, fps=25,
        audio_tracks=[AudioTrack(de, sr, "de", "Deutsch"), AudioTrack(en, 44100, "eng", "English")],
    ) as w:
        for i in range(50):
            w.write(synth.draw_frame(i, 160, 120), i / 25)
    info = probe(out)
    assert [a.language for a in info.audio] == ["deu", "eng"]
    assert [a.title for a in info.audio] == ["Deutsch", "English"]
    assert [a.default for a in info.audio] == [True, False]
    assert [(a.codec, a.sample_rate, a.channels) for a in info.audio] == [("aac", 48000, 2), ("aac", 44100, 1)]
    got = decode_audio(out, stream_index=info.audio[0].index, sample_rate=16000, channels=1)
    onset = np.argmax(np.abs(got.samples[:, 0]) > 0.1) / 16000
    assert onset == pytest.approx(synth.BEEP_TIMES[0], abs=0.003)  # in sync with the video clock
    assert decode_audio(out, stream_index=info.audio[1].index).duration == pytest.approx(2.0, abs=0.05)


def test_iso639() -> None:
    assert [iso639_2(c) for c in ("en", "de-DE", "fr_FR", "jpn", "", None, "xx")] == [
        "eng", "deu", "fra", "jpn", "und", "und", "und"]


def test_hevc_and_color_metadata(tmp_path: Path) -> None:
    out = tmp_path / "hevc.mp4"
    color = ColorInfo(range=1, space=1, primaries=1, trc=1)
    with VideoWriter(out, 160, 120, fps=25, codec="libx265", color=color) as w:
        for i in range(10):
            w.write(synth.draw_frame(i, 160, 120), i / 25)
    v = probe(out).require_video()
    assert v.codec == "hevc" and v.frame_count == 10
    assert v.color == color
    with VideoReader(out) as r:
        assert synth.read_index(r.frame(9)) == 9


def test_times_must_increase(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "x.mp4", 64, 64, fps=25) as w:
        w.write(np.zeros((64, 64, 3), np.uint8), 0.0)
        with pytest.raises(ValueError, match="increase"):
            w.write(np.zeros((64, 64, 3), np.uint8), 0.0)
        with pytest.raises(ValueError, match="expects 64x64"):
            w.write(np.zeros((32, 64, 3), np.uint8), 1.0)


def _partials(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if ".partial-" in p.name]


def test_atomic_writer(tmp_path: Path) -> None:
    target = tmp_path / "final.mp4"
    w = VideoWriter(target, 64, 64, fps=25)
    w.write(np.zeros((64, 64, 3), np.uint8), 0.0)
    assert not target.exists() and len(_partials(tmp_path)) == 1
    assert _partials(tmp_path)[0].name.startswith(".final.partial-")
    w.close()
    assert target.exists() and not _partials(tmp_path)
    # abort leaves the old file alone
    before = target.read_bytes()
    w2 = VideoWriter(target, 64, 64, fps=25)
    w2.write(np.full((64, 64, 3), 255, np.uint8), 0.0)
    w2.abort()
    assert target.read_bytes() == before and not _partials(tmp_path)
    # an exception inside the with-block aborts too
    with pytest.raises(RuntimeError), VideoWriter(target, 64, 64, fps=25) as w3:
        w3.write(np.zeros((64, 64, 3), np.uint8), 0.0)
        raise RuntimeError("cancelled")
    assert target.read_bytes() == before and not _partials(tmp_path)


def test_atomic_output(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".report.partial-") and tmp.suffix == ".json"
        tmp.write_text("{}")
        assert not target.exists()
    assert target.read_text() == "{}" and not _partials(tmp_path)
    with pytest.raises(KeyError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise KeyError("boom")
    assert target.read_text() == "{}" and not _partials(tmp_path)


def test_missing_and_read_only_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist") as e:
        VideoWriter(tmp_path / "nope" / "x.mp4", 64, 64, fps=25)
    assert "x.mp4" in str(e.value)
    with pytest.raises(OutputError, match="does not exist"), atomic_output(tmp_path / "nope" / "x.mp4"):
        pass
    if os.geteuid() == 0:
        pytest.skip("running as root: a read-only folder is still writable")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="read-only"):
            VideoWriter(ro / "x.mp4", 64, 64, fps=25)
        with pytest.raises(OutputError, match="read-only"), atomic_output(ro / "x.json"):
            pass
    finally:
        ro.chmod(0o755)


def test_read_only_location_even_as_root(tmp_path: Path) -> None:
    target = Path("/proc/lipdub-test.mp4")
    if not Path("/proc").is_dir():
        pytest.skip("no /proc")
    with pytest.raises(OutputError) as e:
        VideoWriter(target, 64, 64, fps=25)
    assert "lipdub-test.mp4" in str(e.value)


def test_disk_full_is_a_clear_error(tmp_path: Path) -> None:
    """A file-size limit makes writes fail as on a full disk: OutputError, and no partial file left."""
    script = f"""
import resource, signal, sys
sys.path.insert(0, {str(ROOT)!r})
resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, resource.RLIM_INFINITY))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
import numpy as np
from engine.media import VideoWriter, OutputError
rng = np.random.RandomState(0)
try:
    with VideoWriter({str(tmp_path / "big.mp4")!r}, 320, 240, fps=25) as w:
        for i in range(100):
            w.write(rng.randint(0, 255, (240, 320, 3), np.uint8), i / 25)
except OutputError as e:
    print("OUTPUT-ERROR", e)
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "OUTPUT-ERROR" in res.stdout and "disk is full" in res.stdout, res.stdout + res.stderr
    assert "big.mp4" in res.stdout
    assert list(tmp_path.iterdir()) == []


def test_cleanup_stale_partials(tmp_path: Path) -> None:
    old = tmp_path / ".movie.partial-1a2b3c4d.mp4"
    new = tmp_path / ".movie.partial-99999999.mp4"
    keep = tmp_path / "movie.mp4"
    for p in (old, new, keep):
        p.write_bytes(b"x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert cleanup_stale_partials(tmp_path) == [old]
    assert new.exists() and keep.exists()
    assert cleanup_stale_partials(tmp_path, min_age_s=0) == [new]
    assert keep.exists()


def test_fps_only_writer(tmp_path: Path) -> None:
    out = tmp_path / "ntsc.mp4"
    with VideoWriter(out, 64, 48, fps=29.97) as w:
        assert w.time_base == Fraction(1001, 30000)
        for i in range(30):
            w.write(synth.draw_frame(i, 64, 48))  # no times: the next 1/fps slot
    v = probe(out).require_video()
    assert v.frame_count == 30 and v.real_fps == pytest.approx(30000 / 1001)
    np.testing.assert_allclose(v.frame_times, np.arange(30) * 1001 / 30000, atol=1e-6)
