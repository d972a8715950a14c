"""The export the dialog starts, as one background job: the engine's project export
(engine.pipeline.render.render_project for assigned speakers, engine.pipeline.export.export_project
otherwise) with the dialog's encoding, language and audio choices and the app's engine and device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.runtime.jobs import CancelToken, Progress, ProgressFn

PRESETS = {
    "h264": ("H.264 MP4 (plays everywhere)", "libx264", ".mp4"),
    "hevc": ("HEVC / H.265 MP4 (smaller files)", "libx265", ".mp4"),
}


@dataclass
class ExportRequest:
    out_path: Path
    preset: str = "h264"  # key of PRESETS
    speed: str = "veryfast"  # x264/x265 preset
    crf: int = 18
    audio_mode: str = "dub_only"  # project AUDIO_MODES
    language_mode: str = "file_per_language"  # project LANGUAGE_MODES
    engine: str = "retrieval"  # engine.pipeline.render engines: "retrieval" | "net"
    device: str = "auto"  # "auto" | "cuda" | "cpu"


def export_languages_of(project: Any) -> list[str]:
    """The languages to export: those of assigned tracks, else those of all tracks."""
    return list(project.export_languages())


def planned_outputs(project: Any, request: ExportRequest) -> list[Path]:
    """The files the export will write (one per language, or one)."""
    from engine.pipeline.export import language_output_path

    langs = export_languages_of(project)
    if len(langs) > 1 and request.language_mode == "file_per_language":
        return [language_output_path(request.out_path, lang) for lang in langs]
    return [request.out_path]


def run_export(project: Any, request: ExportRequest, progress: ProgressFn | None = None,
               cancel: CancelToken | None = None) -> dict[str, Any]:
    """Export through the engine: :func:`engine.pipeline.render.render_project` when a track is assigned
    to a person (each language's file gets the mouths of that language's dub), else
    :func:`engine.pipeline.export.export_project` (the dub mix, frames unchanged).
    Returns {"outputs": [...], "results": [...], "note": str, "warnings": [...]}."""
    from engine.pipeline.export import ExportSettings, export_project

    if project.video is None:
        raise ValueError("the project has no video")
    langs = export_languages_of(project)
    _label, codec, _suffix = PRESETS.get(request.preset, PRESETS["h264"])
    settings = ExportSettings(codec=codec, preset=request.speed, crf=request.crf)
    files = len(planned_outputs(project, request))
    common: dict[str, Any] = {
        "languages": langs, "language_mode": request.language_mode, "audio_mode": request.audio_mode,
        "settings": settings, "progress": _overall(progress, files, bool(project.assignments)), "cancel": cancel,
    }
    if project.assignments:
        from engine.pipeline.render import render_project

        results = render_project(project, request.out_path, engine=request.engine, device=request.device, **common)
        note = "; ".join(f"{r.path.name}: {r.rendered} of {r.frames} frames lip-synced" for r in results) + "."
    else:
        results = export_project(project, request.out_path, **common)
        note = "No track is assigned to a person: frames pass through unchanged."
    warnings = [f"{r.path.name}: {w}" if len(results) > 1 else w for r in results for w in r.warnings]
    return {"outputs": [r.path for r in results], "results": results, "note": note, "warnings": warnings}


def _overall(progress: ProgressFn | None, files: int, prepares: bool) -> ProgressFn | None:
    """The engine's per-stage reports ("prepare" per language file, then "export"/"mux") as one
    fraction of the whole export, so the dialog's bar and ETA cover all the files."""
    if progress is None:
        return None
    prepare_share = 0.4 if prepares else 0.0
    file, last_stage, last_fraction = 0, "", 0.0

    def report(p: Progress) -> None:
        nonlocal file, last_stage, last_fraction
        stage = "prepare" if p.stage == "prepare" else "export"
        if last_stage == "export" and (stage == "prepare" or (not prepares and p.fraction < last_fraction - 0.5)):
            file = min(file + 1, files - 1)
        last_stage, last_fraction = stage, p.fraction
        within = prepare_share * p.fraction if stage == "prepare" else prepare_share + (1 - prepare_share) * p.fraction
        name = "Preparing the speakers" if stage == "prepare" else "Exporting"
        progress(Progress(name, (file + within) / files, 1.0, p.eta_s, p.message or name))

    return report


def run_export_in_subprocess(project: Any, request: ExportRequest, progress: ProgressFn | None = None,
                             cancel: CancelToken | None = None) -> dict[str, Any]:
    """:func:`run_export` in a child process: the speaker fitting and rendering hold the GIL for long
    stretches, which would stall the GUI thread if they ran in the app's process."""
    from app.subprocess_job import run_in_subprocess

    return run_in_subprocess("app.export_job:run_export", {"project": project, "request": request},  # type: ignore[no-any-return]
                             progress, cancel, "The export")
