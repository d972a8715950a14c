"""export_project: a project's dubs mixed per language and exported in the chosen layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import ProjectError
from engine.media import decode_audio, probe
from engine.pipeline.export import export_project, language_output_path
from engine.project import Assignment, DubTrack, FaceIdentity, Project, RenderSettings, Video
from tests.synth import make_audio


def _project(video: Path, media: Path, **render: object) -> Project:
    de, _ = make_audio(media / "de.wav", codec="pcm_s16le", duration=1.0, kind="beeps")
    fr, _ = make_audio(media / "fr.m4a", codec="aac", duration=2.0, kind="beeps")
    return Project(
        video=Video(path=video),
        tracks=[DubTrack(id="t1", path=de, language="de", offset_s=0.25),
                DubTrack(id="t2", path=fr, language="fr")],
        identities=[FaceIdentity(id="p1", name="A")],
        assignments=[Assignment(id="a1", track_id="t1", identity_id="p1", start_s=0, end_s=3),
                     Assignment(id="a2", track_id="t2", identity_id="p1", start_s=0, end_s=3)],
        render=RenderSettings(**render),  # type: ignore[arg-type]
    )


def _onset(path: Path, index: int | None = None) -> float:
    x = decode_audio(path, sample_rate=48000, stream_index=index).samples
    return float(np.flatnonzero(np.abs(x[:, 0]) > 0.05)[0]) / 48000


def test_file_per_language(video_with_audio: Path, tmp_path: Path) -> None:
    project = _project(video_with_audio, tmp_path)
    results = export_project(project, tmp_path / "film.mp4")
    assert [r.path for r in results] == [language_output_path(tmp_path / "film.mp4", x) for x in ("de", "fr")]
    assert abs(_onset(results[0].path) - 0.75) < 0.01, "the de dub's first beep (0.5 s) moved by its offset"
    assert abs(_onset(results[1].path) - 0.5) < 0.01
    for r in results:
        info = probe(r.path, use_cache=False)
        assert info.video is not None and info.video.frame_count == 75
        assert len(info.audio) == 1 and abs((info.audio[0].duration or 0) - 3.0) < 0.05


def test_one_language_one_file_with_original(video_with_audio: Path, tmp_path: Path) -> None:
    project = _project(video_with_audio, tmp_path, audio_mode="dub_plus_original", language_mode="one_file_multi_track")
    (result,) = export_project(project, tmp_path / "film.mp4", languages=["fr"])
    assert result.path == tmp_path / "film.mp4"
    info = probe(result.path, use_cache=False)
    assert len(info.audio) == 2 and all(a.language == "fra" for a in info.audio)


def test_all_languages_in_one_file(video_with_audio: Path, tmp_path: Path) -> None:
    project = _project(video_with_audio, tmp_path, language_mode="one_file_multi_track")
    (result,) = export_project(project, tmp_path / "film.mkv")
    assert [a.language for a in probe(result.path, use_cache=False).audio] == ["deu", "fra"]


def test_project_errors(video_with_audio: Path, tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="no video"):
        export_project(Project(), tmp_path / "x.mp4")
    project = _project(video_with_audio, tmp_path)
    with pytest.raises(ProjectError, match="no dub track in es"):
        export_project(project, tmp_path / "x.mp4", languages=["es"])
    project.tracks[1].path = tmp_path / "gone.wav"
    with pytest.raises(ProjectError, match="missing"):
        export_project(project, tmp_path / "x.mp4")
    with pytest.raises(ProjectError, match="no dub tracks"):
        export_project(Project(video=Video(path=video_with_audio)), tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize("mode", ["file_per_language", "one_file_multi_track"])
def test_a_mix_kept_in_a_temporary_file_exports_the_same_audio(video_with_audio: Path, tmp_path: Path,
                                                               monkeypatch, mode: str) -> None:
    from engine.audio import mix

    project = _project(video_with_audio, tmp_path, audio_mode="dub_plus_original", language_mode=mode)
    in_memory = export_project(project, tmp_path / "memory.mkv")
    monkeypatch.setattr(mix, "FILE_ABOVE_BYTES", 0)  # every timeline buffer is a PcmFile
    on_disk = export_project(project, tmp_path / "disk.mkv")
    assert len(on_disk) == len(in_memory) >= 1
    for a, b in zip(in_memory, on_disk, strict=True):
        streams = probe(a.path, use_cache=False).audio
        assert len(streams) == len(probe(b.path, use_cache=False).audio) >= 2
        for s in streams:
            x = decode_audio(a.path, stream_index=s.index).samples
            y = decode_audio(b.path, stream_index=s.index).samples
            assert x.shape == y.shape and np.abs(x).max() > 0.05
            np.testing.assert_array_equal(x, y)  # the same PCM in, the same AAC out
