"""The export job shows the engine's mix warnings (carried in each ExportResult)."""

from __future__ import annotations

from pathlib import Path

from app.export_job import ExportRequest, run_export


def test_mix_warnings_reach_the_export_result(video_with_audio: Path, tone_track: Path, tmp_path: Path) -> None:
    from engine.project.model import DubTrack, Project, Video

    # The 2 s dub starts 2 s into the 3 s video, so its end is cut: the mix says so.
    project = Project(video=Video(video_with_audio), tracks=[DubTrack("t1", tone_track, language="de", offset_s=2.0)])
    result = run_export(project, ExportRequest(out_path=tmp_path / "film.mp4", crf=35))
    assert result["outputs"] == [tmp_path / "film.mp4"] and (tmp_path / "film.mp4").is_file()
    [exported] = result["results"]
    mix_notes = [w for w in exported.warnings if w.startswith("de mix: ")]
    assert mix_notes, exported.warnings
    assert all(w in result["warnings"] for w in mix_notes)
    assert "frames pass through unchanged" in result["note"]
