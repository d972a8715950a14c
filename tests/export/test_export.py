"""The streaming export: frame-complete, timing-exact pass-through; renders change only their region;
audio placed on the video timeline; languages; cancel and failures never leave a partial file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from engine.errors import Cancelled, OutputError
from engine.media import AudioTrack, decode_audio, probe
from engine.pipeline.export import (
    ExportSettings,
    export_languages,
    export_video,
    language_output_path,
)
from engine.runtime.jobs import CancelToken
from tests.export.conftest import BoxRenderer, box_for, frames
from tests.synth import read_index

LOSSLESS = ExportSettings(crf=0, preset="ultrafast")

FIXTURES = ["video_25fps", "video_ntsc", "video_vfr", "video_rotated", "video_odd"]


@pytest.mark.parametrize("name", FIXTURES)
def test_pass_through_is_frame_complete_and_timing_exact(name: str, request: pytest.FixtureRequest,
                                                          out_dir: Path) -> None:
    src: Path = request.getfixturevalue(name)
    out = out_dir / f"{name} out.mp4"
    result = export_video(src, out)
    a, b = probe(src, use_cache=False).video, probe(out, use_cache=False).video
    assert a is not None and b is not None
    assert result.frames == a.frame_count == b.frame_count
    assert result.rendered == 0
    np.testing.assert_allclose(b.frame_times, a.frame_times, atol=1e-6)
    assert (b.width, b.height, b.rotation) == (a.width, a.height, a.rotation)
    assert (b.coded_width, b.coded_height, b.pix_fmt) == (a.coded_width, a.coded_height, a.pix_fmt)
    assert b.is_vfr == a.is_vfr
    assert [read_index(f) for _, f in frames(out)] == list(range(a.frame_count))
    assert sorted(p.name for p in out_dir.iterdir()) == [out.name], "temporary files left behind"


def test_pass_through_keeps_every_decoded_pixel(video_25fps: Path, out_dir: Path) -> None:
    """Lossless encoding shows it: pass-through frames go YUV to YUV, with no RGB round trip."""
    out = export_video(video_25fps, out_dir / "copy.mp4", settings=LOSSLESS).path
    for (i, a), (j, b) in zip(frames(video_25fps), frames(out), strict=True):
        assert i == j
        assert np.array_equal(a, b), f"frame {i} changed"


@pytest.mark.parametrize("name", ["video_25fps", "video_rotated", "video_odd", "video_vfr"])
def test_renderer_changes_only_its_region(name: str, request: pytest.FixtureRequest, out_dir: Path) -> None:
    src: Path = request.getfixturevalue(name)
    renderer = BoxRenderer()
    wanted = {1, 2, 7, 12}
    result = export_video(src, out_dir / "boxed.mp4", frame_renderer=renderer, needs_render=wanted,
                          settings=LOSSLESS)
    assert sorted(renderer.calls) == sorted(wanted), "only the frames that need it are offered"
    assert result.rendered == len(wanted)
    for (i, a), (_, b) in zip(frames(src), frames(result.path), strict=True):
        if i not in wanted:
            assert np.array_equal(a, b), f"pass-through frame {i} changed"
            continue
        y0, y1, x0, x1 = box_for(a.shape)
        outside = np.ones(a.shape[:2], bool)
        outside[y0:y1, x0:x1] = False
        # In 4:2:0 a chroma sample on the box's edge is shared with the pixel just outside: only
        # those may change (their chroma mixes the box's colour, as in any 4:2:0 encoding).
        ring = np.zeros_like(outside)
        ring[max(0, y0 - 1) : y1 + 1, max(0, x0 - 1) : x1 + 1] = True
        strict = outside & ~ring
        assert np.array_equal(a[strict], b[strict]), f"frame {i}: pixels outside the rendered box changed"
        inside = b[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].reshape(-1, 3).astype(int)
        assert np.abs(inside - renderer.colour).max() <= 4, f"frame {i}: the rendered box is not there"
        assert read_index(b) == i


def test_unchanged_renderer_output_counts_as_pass_through(video_25fps: Path, out_dir: Path) -> None:
    renderer = BoxRenderer(which=set())
    result = export_video(video_25fps, out_dir / "same.mp4", frame_renderer=renderer)
    assert len(renderer.calls) == result.frames == 50 and result.rendered == 0


def test_renderer_gets_read_only_upright_frames(video_rotated: Path, out_dir: Path) -> None:
    seen: list[tuple[int, ...]] = []

    def renderer(i: int, frame: np.ndarray) -> np.ndarray:
        seen.append(frame.shape)
        assert read_index(frame) == i
        with pytest.raises(ValueError):
            frame[0, 0] = 0
        return frame

    export_video(video_rotated, out_dir / "r.mp4", frame_renderer=renderer)
    assert set(seen) == {(160, 120, 3)}


def test_bgr_renderer(video_25fps: Path, out_dir: Path) -> None:
    renderer = BoxRenderer(which={5}, colour=(60, 30, 250))  # BGR of the RGB box colour
    settings = ExportSettings(crf=0, preset="ultrafast", renderer_pixel_format="bgr24")
    out = export_video(video_25fps, out_dir / "bgr.mp4", frame_renderer=renderer, needs_render={5},
                       settings=settings).path
    rgb = dict(frames(out))[5]
    y0, y1, x0, x1 = box_for(rgb.shape)
    assert np.abs(rgb[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].astype(int) - (250, 30, 60)).max() <= 4


def test_bad_renderer_output_is_an_error_and_writes_nothing(video_25fps: Path, out_dir: Path) -> None:
    target = out_dir / "bad.mp4"
    with pytest.raises(ValueError, match="renderer returned"):
        export_video(video_25fps, target, frame_renderer=lambda i, f: f[:10])
    assert list(out_dir.iterdir()) == []


# --- audio -----------------------------------------------------------------------------------


def _click(rate: int, n: int, at_s: float, channels: int = 2) -> np.ndarray:
    x = np.zeros((n, channels), np.float32)
    k = round(at_s * rate)
    x[k : k + rate // 100] = 0.8  # a 10 ms block
    return x


def _onset(samples: np.ndarray, rate: int) -> float:
    return float(np.flatnonzero(np.abs(samples[:, 0]) > 0.3)[0]) / rate


@pytest.mark.parametrize("start_time", [0.0, 0.25, -0.3])
def test_audio_is_placed_on_the_video_timeline(video_25fps: Path, out_dir: Path, start_time: float) -> None:
    dub = _click(48000, 48000 * 3, at_s=0.5)  # 3 s dub, longer than the 2 s video
    out = export_video(video_25fps, out_dir / "a.mp4",
                       audio_tracks=[AudioTrack(dub, 48000, "de", start_time=start_time)]).path
    audio = decode_audio(out, sample_rate=48000)
    assert abs(_onset(audio.samples, 48000) - (0.5 + start_time)) < 0.005
    info = probe(out, use_cache=False)
    assert info.audio[0].language == "deu"
    assert info.audio[0].duration is not None and abs(info.audio[0].duration - 2.0) < 0.05, "cut at the video's end"


def test_short_dub_is_padded_to_the_video_length(video_25fps: Path, out_dir: Path) -> None:
    out = export_video(video_25fps, out_dir / "a.mp4",
                       audio_tracks=[AudioTrack(_click(48000, 24000, 0.1), 48000, "fr")]).path
    info = probe(out, use_cache=False)
    assert info.audio[0].duration is not None and abs(info.audio[0].duration - 2.0) < 0.05


@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (96000, 2), (48000, 6), (44100, 2)])
def test_dub_rates_and_layouts(video_25fps: Path, out_dir: Path, rate: int, channels: int) -> None:
    dub = _click(rate, rate * 2, 0.4, channels)
    out = export_video(video_25fps, out_dir / "a.mp4", audio_tracks=[AudioTrack(dub, rate, "es")]).path
    stream = probe(out, use_cache=False).audio[0]
    assert (stream.sample_rate, stream.channels) == (48000, channels)
    assert abs(_onset(decode_audio(out, sample_rate=48000).samples, 48000) - 0.4) < 0.005


def test_audio_from_a_memmap(video_25fps: Path, out_dir: Path, tmp_path: Path) -> None:
    mm = np.lib.format.open_memmap(tmp_path / "mix.npy", mode="w+", dtype=np.float32, shape=(96000, 2))
    mm[:] = _click(48000, 96000, 1.0)
    out = export_video(video_25fps, out_dir / "a.mp4", audio_tracks=[AudioTrack(mm, 48000, "it")]).path
    assert abs(_onset(decode_audio(out, sample_rate=48000).samples, 48000) - 1.0) < 0.005


def test_one_file_with_a_track_per_language(video_25fps: Path, out_dir: Path) -> None:
    tracks = {"de": AudioTrack(_click(48000, 96000, 0.3), 48000, title="Deutsch"),
              "pt-BR": AudioTrack(_click(48000, 96000, 0.6), 48000, title="Português")}
    (result,) = export_languages(video_25fps, out_dir / "multi.mp4", tracks, mode="one_file_multi_track")
    info = probe(result.path, use_cache=False)
    assert [a.language for a in info.audio] == ["deu", "por"]
    assert [a.default for a in info.audio] == [True, False]
    for k, at in enumerate((0.3, 0.6)):
        assert abs(_onset(decode_audio(result.path, sample_rate=48000, stream_index=info.audio[k].index).samples, 48000) - at) < 0.005


def test_file_per_language_encodes_video_once(video_25fps: Path, out_dir: Path) -> None:
    renderer = BoxRenderer(which={3})
    tracks = {"de": AudioTrack(_click(48000, 96000, 0.3), 48000), "fr": AudioTrack(_click(48000, 96000, 0.7), 48000)}
    results = export_languages(video_25fps, out_dir / "film.mp4", tracks, frame_renderer=renderer)
    assert [r.path for r in results] == [language_output_path(out_dir / "film.mp4", x) for x in ("de", "fr")]
    assert renderer.calls.count(3) == 1, "rendered once for both languages"
    assert results[1].copied_video_from == results[0].path
    a, b = (probe(r.path, use_cache=False) for r in results)
    assert a.video is not None and b.video is not None
    np.testing.assert_array_equal(a.video.pts, b.video.pts)
    assert [x.language for x in a.audio] == ["deu"] and [x.language for x in b.audio] == ["fra"]
    for (_, fa), (_, fb) in zip(frames(results[0].path), frames(results[1].path), strict=True):
        assert np.array_equal(fa, fb)
    assert abs(_onset(decode_audio(results[1].path, sample_rate=48000).samples, 48000) - 0.7) < 0.005
    assert sorted(p.name for p in out_dir.iterdir()) == ["film.de.mp4", "film.fr.mp4"]


# --- never lose anything ---------------------------------------------------------------------


def _earlier_file(path: Path) -> bytes:
    data = b"an earlier export the user wants to keep"
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("at_frame", [0, 20, 49])
def test_cancel_leaves_nothing_and_keeps_the_earlier_file(video_25fps: Path, out_dir: Path, at_frame: int) -> None:
    target = out_dir / "film.mp4"
    before = _earlier_file(target)
    token = CancelToken()

    def renderer(i: int, frame: np.ndarray) -> np.ndarray:
        if i == at_frame:
            token.cancel()
        return frame

    with pytest.raises(Cancelled):
        export_video(video_25fps, target, frame_renderer=renderer, cancel=token)
    assert target.read_bytes() == before
    assert [p.name for p in out_dir.iterdir()] == ["film.mp4"]


def test_ctrl_c_leaves_nothing_and_keeps_the_earlier_file(video_25fps: Path, out_dir: Path) -> None:
    target = out_dir / "film.mp4"
    before = _earlier_file(target)

    def renderer(i: int, frame: np.ndarray) -> np.ndarray:
        if i == 17:
            raise KeyboardInterrupt
        return frame

    with pytest.raises(KeyboardInterrupt):
        export_video(video_25fps, target, frame_renderer=renderer)
    assert target.read_bytes() == before
    assert [p.name for p in out_dir.iterdir()] == ["film.mp4"]


def test_renderer_crash_leaves_nothing(video_25fps: Path, out_dir: Path) -> None:
    target = out_dir / "film.mp4"
    before = _earlier_file(target)

    def renderer(i: int, frame: np.ndarray) -> np.ndarray:
        if i == 30:
            raise RuntimeError("model exploded")
        return frame

    with pytest.raises(RuntimeError, match="model exploded"):
        export_video(video_25fps, target, frame_renderer=renderer)
    assert target.read_bytes() == before
    assert [p.name for p in out_dir.iterdir()] == ["film.mp4"]


def test_success_replaces_the_earlier_file(video_25fps: Path, out_dir: Path) -> None:
    target = out_dir / "film.mp4"
    _earlier_file(target)
    export_video(video_25fps, target)
    assert probe(target, use_cache=False).video is not None


def test_stale_partials_from_a_crash_are_removed(video_25fps: Path, out_dir: Path) -> None:
    stale = out_dir / ".film.partial-0badf00d.mp4"
    stale.write_bytes(b"half a video")
    os.utime(stale, (1_000_000_000, 1_000_000_000))
    export_video(video_25fps, out_dir / "film.mp4")
    assert not stale.exists()


def test_output_over_the_source_is_refused(video_25fps: Path, tmp_path: Path) -> None:
    copy = tmp_path / "src.mp4"
    copy.write_bytes(video_25fps.read_bytes())
    with pytest.raises(OutputError, match="source video itself"):
        export_video(copy, copy)


def test_unknown_output_type_is_refused(video_25fps: Path, out_dir: Path) -> None:
    with pytest.raises(OutputError, match=r"name the output \.mp4"):
        export_video(video_25fps, out_dir / "film.gif")


def test_missing_output_folder(video_25fps: Path, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        export_video(video_25fps, tmp_path / "nope" / "film.mp4")


def test_mkv_and_mov_outputs(video_vfr: Path, out_dir: Path) -> None:
    a = probe(video_vfr, use_cache=False).video
    assert a is not None
    for ext in (".mkv", ".mov"):
        out = export_video(video_vfr, out_dir / f"film{ext}",
                           audio_tracks=[AudioTrack(_click(48000, 48000, 0.2), 48000, "ja")]).path
        b = probe(out, use_cache=False)
        assert b.video is not None and b.video.frame_count == a.frame_count
        np.testing.assert_allclose(b.video.frame_times, a.frame_times, atol=1e-3 if ext == ".mkv" else 1e-6)
        assert b.audio[0].language in ("jpn", "ja")
