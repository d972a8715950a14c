"""The app's export of two dubs on one face, a file per language, on a real clip (skipped without
../shared/media): each file gets the mouths of its own language's dub."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from app.export_job import ExportRequest, planned_outputs, run_export

pytestmark = [pytest.mark.media, pytest.mark.slow]


def _short_wav(src: Path, out: Path) -> Path:
    from engine.media.audio import decode_audio

    samples = decode_audio(src, sample_rate=16000, channels=1).mono()[16000: 16000 * 4]
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return out


def test_two_languages_on_one_face_give_two_files_with_their_own_mouths(shared_media: Path, tmp_path: Path) -> None:
    from engine.faces import analyse
    from engine.media.probe import probe
    from engine.media.reader import VideoReader
    from engine.pipeline.render import choose_face
    from engine.pipeline.tracks import tracks_from_analysis
    from engine.project.model import Assignment, DubTrack, FaceIdentity, Project, Video

    video = shared_media / "video" / "vox_beard_full.mp4"
    src = probe(video, use_cache=False).require_video()
    face = choose_face(tracks_from_analysis(analyse(video)), None, video).identity
    end = float(src.frame_times[-1] - src.frame_times[0]) + 1.0 / src.fps
    tracks = [DubTrack(lang, _short_wav(shared_media / "audio" / name, tmp_path / f"{lang}.wav"), language=lang)
              for lang, name in (("de", "dub_german1.wav"), ("fr", "dub_french1.wav"))]
    project = Project(video=Video(video), tracks=tracks, identities=[FaceIdentity(face)],
                      assignments=[Assignment(f"a{t.id}", t.id, face, 0.0, end) for t in tracks])
    request = ExportRequest(out_path=tmp_path / "film.mp4", language_mode="file_per_language", crf=30)
    planned = planned_outputs(project, request)
    result = run_export(project, request)
    assert result["outputs"] == planned == [tmp_path / "film.de.mp4", tmp_path / "film.fr.mp4"]
    assert all(p.is_file() for p in planned) and not request.out_path.exists()
    assert [[a.language for a in probe(p, use_cache=False).audio] for p in planned] == [["deu"], ["fra"]]
    assert "lip-synced" in result["note"] and isinstance(result["warnings"], list)
    with VideoReader(planned[0], pixel_format="bgr24") as a, VideoReader(planned[1], pixel_format="bgr24") as b:
        differ = sum(not np.array_equal(a.frame(i), b.frame(i)) for i in range(10, src.frame_count, 10))
    assert differ >= 5, "the German and the French file have different mouths"
