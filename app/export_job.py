"""The export the dialog starts: the dub mix per language (engine.audio.mix) and the streamed
decode -> render -> encode -> mux (engine.pipeline.export), as one background job.

Until the lip-sync engine offers a frame renderer for a project, frames pass through unchanged and
the dialog says so; the audio is the real dub mix either way.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.runtime.jobs import CancelToken, Progress, ProgressFn, check_cancel

PRESETS = {
    "h264": ("H.264 MP4 (plays everywhere)", "libx264", ".mp4"),
    "hevc": ("HEVC / H.265 MP4 (smaller files)", "libx265", ".mp4"),
}
AUDIO_MODE_TO_MIX = {"dub_only": "dub_only", "dub_plus_original": "dub_and_original", "original_ducked": "original_ducked"}


@dataclass
class ExportRequest:
    out_path: Path
    preset: str = "h264"  # key of PRESETS
    speed: str = "veryfast"  # x264/x265 preset
    crf: int = 18
    audio_mode: str = "dub_only"  # project AUDIO_MODES
    language_mode: str = "file_per_language"  # project LANGUAGE_MODES


def export_languages_of(project: Any) -> list[str]:
    """The languages to export: those of assigned tracks, else those of all tracks."""
    assigned = {a.track_id for a in project.assignments}
    langs: list[str] = []
    for t in project.tracks:
        if (t.id in assigned or not assigned) and t.language not in langs:
            langs.append(t.language)
    return langs


def planned_outputs(project: Any, request: ExportRequest) -> list[Path]:
    """The files the export will write (one per language, or one)."""
    from engine.pipeline.export import language_output_path

    langs = export_languages_of(project)
    if len(langs) > 1 and request.language_mode == "file_per_language":
        return [language_output_path(request.out_path, lang) for lang in langs]
    return [request.out_path]


def lipsync_renderer(project: Any, progress: ProgressFn | None, cancel: CancelToken | None) -> tuple[Any, Any, str]:
    """(frame_renderer, needs_render, note): the engine's mouth renderer for the assigned speakers.

    The renderer takes and returns BGR frames (the export is told so)."""
    if not project.assignments:
        return None, None, "No track is assigned to a person: frames pass through unchanged."
    try:
        render = importlib.import_module("engine.pipeline.render")
        session = importlib.import_module("engine.pipeline.session")
    except ImportError:
        return None, None, "The lip-sync engine is not in this build: frames pass through unchanged."
    prepared = render.prepare_render(project.video.path, render.assignments_from_project(project),
                                     progress=progress, cancel=cancel)
    composer = session.FrameComposer(prepared.plans)
    todo = render.frames_to_render(prepared)
    return (lambda i, frame: composer(i, frame)), todo, f"{len(todo)} of {prepared.frame_count} frames lip-synced."


def run_export(project: Any, request: ExportRequest, progress: ProgressFn | None = None,
               cancel: CancelToken | None = None) -> dict[str, Any]:
    """Mix the audio of each language, then export. Returns {"outputs": [...], "note": str, "warnings": [...]}."""
    from engine.audio.mix import DubInput, MixMode, MixSettings, mix_output
    from engine.audio.tracks import load_track
    from engine.media import AudioTrack, probe
    from engine.pipeline.export import ExportSettings, export_languages

    if project.video is None:
        raise ValueError("the project has no video")
    source = project.video.path
    info = probe(source).require_video()
    duration = float(info.duration)
    langs = export_languages_of(project)
    assigned = {a.track_id for a in project.assignments}
    mode = MixMode(AUDIO_MODE_TO_MIX.get(request.audio_mode, "dub_only"))
    warnings: list[str] = []

    def stage(name: str, base: float, span: float) -> ProgressFn:
        def report(p: Progress) -> None:
            if progress is not None:
                progress(Progress(name, base + span * p.fraction, 1.0, p.eta_s, p.message or name))
        return report

    audio_by_language: dict[str, list[Any]] = {}
    for k, lang in enumerate(langs):
        check_cancel(cancel)
        tracks = [t for t in project.tracks if t.language == lang and (t.id in assigned or not assigned)]
        dubs = [DubInput(load_track(t.path, cancel=cancel), t, t.display_name) for t in tracks]
        mix = mix_output(dubs, duration, original=source if mode is not MixMode.DUB_ONLY else None,
                         settings=MixSettings(mode=mode), progress=stage(f"Mixing the {lang} audio", 0.1 * k / max(1, len(langs)), 0.1 / max(1, len(langs))),
                         cancel=cancel)
        warnings.extend(mix.warnings)
        audio_by_language[lang] = [
            AudioTrack(t.samples, mix.sample_rate, language=lang, title=f"{t.label} ({lang})", default=(i == 0))
            for i, t in enumerate(mix.tracks)
        ]
    renderer, needs, note = lipsync_renderer(project, stage("Preparing the speakers", 0.1, 0.3), cancel)
    _label, codec, _suffix = PRESETS.get(request.preset, PRESETS["h264"])
    settings = ExportSettings(codec=codec, preset=request.speed, crf=request.crf, renderer_pixel_format="bgr24")
    # One language: one file at the chosen path (no language suffix in the name).
    mode_name = request.language_mode if len(langs) > 1 else "one_file_multi_track"
    results = export_languages(source, request.out_path, audio_by_language, mode=mode_name,  # type: ignore[arg-type]
                               frame_renderer=renderer, needs_render=needs, settings=settings,
                               progress=stage("Exporting", 0.4, 0.6), cancel=cancel)
    for r in results:
        warnings.extend(r.warnings)
    return {"outputs": [r.path for r in results], "results": results, "note": note, "warnings": warnings}


def run_export_in_subprocess(project: Any, request: ExportRequest, progress: ProgressFn | None = None,
                             cancel: CancelToken | None = None) -> dict[str, Any]:
    """:func:`run_export` in a child process: the speaker fitting and rendering hold the GIL for long
    stretches, which would stall the GUI thread if they ran in the app's process."""
    from app.subprocess_job import run_in_subprocess

    return run_in_subprocess("app.export_job:run_export", {"project": project, "request": request},  # type: ignore[no-any-return]
                             progress, cancel, "The export")
