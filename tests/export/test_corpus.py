"""The bad-input corpus of the export (issue 8): each case gives a clear error or a correct output,
never a crash, and never leaves anything at the target beyond what was there.

``CASES`` lists every case with its expected outcome; cases covered elsewhere are named in
``COVERED_ELSEWHERE``. ``test_corpus_count`` keeps the tally honest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engine.errors import LipdubError, MediaError, OutputError, ProjectError
from engine.media import AudioTrack, decode_audio, probe
from engine.pipeline.export import export_video
from engine.project import (
    SCHEMA_VERSION,
    DubTrack,
    Project,
    Video,
    load_project,
    missing_media,
    relink,
    save_project,
)
from tests.export.conftest import frames
from tests.synth import (
    make_audio,
    make_unknown_codec_video,
    make_video,
    make_zero_frame_video,
    read_index,
    truncate,
)


def _readable(frame: np.ndarray) -> int | None:
    try:
        return read_index(frame)
    except ValueError:
        return None


def _export_ok(src: Path, out: Path, damaged: bool = False, **kw: object) -> tuple[Path, int]:
    result = export_video(src, out, **kw)  # type: ignore[arg-type]
    info = probe(out, use_cache=False).video
    assert info is not None and info.frame_count == result.frames
    if damaged:  # frames decoded with concealed errors show garbage, as in any player: skip those
        indices = [i for i in (_readable(f) for _, f in frames(out)) if i is not None]
        assert len(set(indices)) >= 0.8 * result.frames
        return out, result.frames
    indices = [read_index(f) for _, f in frames(out)]
    assert indices == sorted(indices) and len(set(indices)) == len(indices), "frames out of order or repeated"
    return out, result.frames


def case_truncated_mp4(d: Path, out: Path) -> str:
    full = make_video(d / "full.mp4", width=320, height=240, n_frames=100, faststart=True)
    src = truncate(full, d / "truncated.mp4", 0.5)
    _, n = _export_ok(src, out)
    assert 30 <= n < 100
    return "output: the frames present"


def case_mp4_without_moov(d: Path, out: Path) -> str:
    full = make_video(d / "full.mp4", width=320, height=240, n_frames=60)  # index at the end
    src = truncate(full, d / "no moov.mp4", 0.9)
    with pytest.raises(MediaError, match="moov"):
        export_video(src, out)
    return "error: MediaError (index missing)"


def case_damaged_bytes(d: Path, out: Path) -> str:
    full = make_video(d / "full.mp4", width=320, height=240, n_frames=100, faststart=True)
    data = bytearray(full.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4000] = bytes(4000)
    src = d / "damaged.mp4"
    src.write_bytes(bytes(data))
    _, n = _export_ok(src, out, damaged=True)
    assert n >= 90
    return "output: undecodable frames left out, with a warning"


def case_audio_only_as_video(d: Path, out: Path) -> str:
    src, _ = make_audio(d / "speech.m4a", codec="aac")
    with pytest.raises(MediaError, match="no video stream"):
        export_video(src, out)
    return "error: MediaError (no video stream)"


def case_video_without_audio(d: Path, out: Path) -> str:
    src = make_video(d / "silent.mp4", n_frames=25)
    dub = np.zeros((48000, 2), np.float32)
    _export_ok(src, out, audio_tracks=[AudioTrack(dub, 48000, "de")])
    assert len(probe(out, use_cache=False).audio) == 1
    return "output: the dub becomes its audio"


def case_zero_frames(d: Path, out: Path) -> str:
    src = make_zero_frame_video(d / "empty.mkv")
    with pytest.raises(MediaError):
        export_video(src, out)
    return "error: MediaError (no frames)"


def case_one_frame(d: Path, out: Path) -> str:
    src = make_video(d / "one.mp4", n_frames=1)
    _, n = _export_ok(src, out, audio_tracks=[AudioTrack(np.zeros((4800, 2), np.float32), 48000)])
    assert n == 1
    return "output: 1 frame"


def case_unsupported_codec(d: Path, out: Path) -> str:
    src = make_unknown_codec_video(d / "unknown.avi")
    with pytest.raises(MediaError, match="codec"):
        export_video(src, out)
    return "error: MediaError (unsupported codec)"


def case_missing_file(d: Path, out: Path) -> str:
    with pytest.raises(MediaError, match="not found"):
        export_video(d / "gone.mp4", out)
    return "error: MediaError (file not found)"


def case_not_media(d: Path, out: Path) -> str:
    src = d / "notes.mp4"
    src.write_text("just some text, renamed to .mp4", encoding="utf-8")
    with pytest.raises(MediaError):
        export_video(src, out)
    return "error: MediaError (not a media file)"


def case_odd_size_420(d: Path, out: Path) -> str:
    src = make_video(d / "odd.avi", width=321, height=241, n_frames=10, codec="mpeg4", bframes=0)
    _export_ok(src, out)
    info = probe(out, use_cache=False).video
    assert info is not None and (info.width, info.height) == (321, 241)
    return "output: exact odd size (4:4:4)"


def case_10_bit(d: Path, out: Path) -> str:
    src = make_video(d / "ten bit.mp4", n_frames=10, pix_fmt="yuv420p10le")
    _export_ok(src, out)
    info = probe(out, use_cache=False).video
    assert info is not None and info.pix_fmt == "yuv420p10le"
    return "output: 10-bit kept"


def case_4k(d: Path, out: Path) -> str:
    src = make_video(d / "uhd.mp4", width=3840, height=2160, n_frames=3, bframes=0)
    _export_ok(src, out)
    info = probe(out, use_cache=False).video
    assert info is not None and (info.width, info.height) == (3840, 2160)
    return "output: 3840x2160"


def case_non_ascii_names(d: Path, out: Path) -> str:
    src = make_video(d / "Szene 1 – Café 日本.mp4", n_frames=10)
    target = out.with_name("Ausgabe ü 日本 (final).mp4")
    _export_ok(src, target)
    return "output: names kept"


def case_dub_8k_mono(d: Path, out: Path) -> str:
    return _dub_file_case(d, out, "pcm_s16le", 8000, 1, ".wav")


def case_dub_96k_24bit(d: Path, out: Path) -> str:
    return _dub_file_case(d, out, "pcm_s24le", 96000, 2, ".wav")


def case_dub_5_1(d: Path, out: Path) -> str:
    return _dub_file_case(d, out, "aac", 48000, 6, ".m4a")


def _dub_file_case(d: Path, out: Path, codec: str, rate: int, channels: int, ext: str) -> str:
    path, _ = make_audio(d / f"dub {rate} {channels}ch{ext}", codec=codec, rate=rate, channels=channels,
                         duration=1.5, kind="beeps")
    mix = decode_audio(path, sample_rate=48000, channels=2)  # what the output mix works with
    src = make_video(d / "v.mp4", n_frames=50)
    _export_ok(src, out, audio_tracks=[AudioTrack(mix.samples, 48000, "de")])
    a = probe(out, use_cache=False).audio[0]
    assert (a.sample_rate, a.channels) == (48000, 2)
    back = decode_audio(out, sample_rate=48000).samples
    onset = np.flatnonzero(np.abs(back[:, 0]) > 0.1)[0] / 48000
    assert abs(onset - 0.5) < 0.01, "the first beep (0.5 s) is where it was"
    return "output: resampled to 48 kHz stereo, in place"


def case_corrupted_project(d: Path, out: Path) -> str:
    p = d / "p.lipdub.json"
    p.write_text('{"schema_version": 1, "tracks": [', encoding="utf-8")
    with pytest.raises(ProjectError, match="not valid JSON"):
        load_project(p)
    return "error: ProjectError (line/column)"


def case_newer_schema_project(d: Path, out: Path) -> str:
    p = d / "p.lipdub.json"
    p.write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}), encoding="utf-8")
    with pytest.raises(ProjectError, match="newer Lipdub Studio"):
        load_project(p)
    return "error: ProjectError (update the app)"


def case_moved_media_project(d: Path, out: Path) -> str:
    (d / "media").mkdir()
    src = make_video(d / "media" / "v.mp4", n_frames=10)
    save_project(Project(video=Video(path=src), tracks=[DubTrack(id="t", path=src, language="de")]), d / "p.json")
    (d / "media").rename(d / "moved")
    project = load_project(d / "p.json")
    assert missing_media(project) == [d / "media" / "v.mp4"]
    relink(project, d / "media" / "v.mp4", d / "moved" / "v.mp4")
    assert missing_media(project) == [] and project.video is not None
    _export_ok(project.video.path, out)
    return "output after relink (load reports the missing file)"


def case_target_is_source(d: Path, out: Path) -> str:
    src = make_video(d / "v.mp4", n_frames=5)
    with pytest.raises(OutputError, match="source video itself"):
        export_video(src, src)
    return "error: OutputError (would overwrite the source)"


CASES: dict[str, Callable[[Path, Path], str]] = {
    name[len("case_"):]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")
}

COVERED_ELSEWHERE = {
    "vfr": "test_export.py::test_pass_through_is_frame_complete_and_timing_exact[video_vfr]",
    "rotated_90": "test_export.py::...[video_rotated] and test_renderer_changes_only_its_region[video_rotated]",
    "odd_size_444": "test_export.py::...[video_odd]",
    "29.97_fps": "test_export.py::...[video_ntsc]",
    "dub_longer_than_video": "test_export.py::test_audio_is_placed_on_the_video_timeline",
    "dub_shorter_than_video": "test_export.py::test_short_dub_is_padded_to_the_video_length",
    "read_only_folder": "test_output_errors.py::test_read_only_file_system",
    "full_disk": "test_output_errors.py::test_full_disk_gives_output_error_and_keeps_the_earlier_file",
    "cancel_and_ctrl_c": "test_export.py::test_cancel_* / test_ctrl_c_*",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_case(name: str, tmp_path: Path) -> None:
    d = tmp_path / "in put"
    d.mkdir()
    out_dir = tmp_path / "out put"
    out_dir.mkdir()
    out = out_dir / "result.mp4"
    try:
        outcome = CASES[name](d, out)
    except LipdubError as exc:  # an unexpected error would still be a clear one, but the case says which
        pytest.fail(f"{name}: unexpected {type(exc).__name__}: {exc}")
    leftovers = [p.name for p in out_dir.iterdir() if p.name.startswith(".")]
    assert not leftovers, f"{name}: temporary files left: {leftovers}"
    if outcome.startswith("error"):
        assert not out.exists(), f"{name}: an error left a file at the target"
    print(f"{name}: {outcome}")


def test_corpus_count() -> None:
    assert len(CASES) == 21
    assert len(CASES) + len(COVERED_ELSEWHERE) == 30
