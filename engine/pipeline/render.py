"""Whole-video lip-sync: analyse faces, fit the speakers, plan the mouths for each dubbed track,
and render, streamed through the export pipeline (or into a preview session)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import BadInputError
from engine.pipeline.fit import (
    AudioTrack,
    TrackSignals,
    active_speaker,
    fit_speaker,
    library_key,
    load_prior,
    target_codes,
    track_signals,
)
from engine.pipeline.session import FacePlan, FrameComposer, RenderSession, plan_face
from engine.pipeline.tracks import FaceTrack, tracks_from_analysis
from engine.runtime.jobs import CancelToken, Progress, ProgressFn, check_cancel
from engine.runtime.paths import cache_dir

log = logging.getLogger("lipdub.pipeline.render")


@dataclass
class TrackAssignment:
    """A dubbed audio track driving one face (``face`` None: the most present face)."""

    audio_path: Path
    face: str | None = None
    offset_s: float = 0.0


@dataclass
class PreparedRender:
    video_path: Path
    plans: list[FacePlan]
    frame_count: int
    fps: float
    tracks: list[FaceTrack]


def _stage(progress: ProgressFn | None, stage: str, base: float, span: float) -> ProgressFn:
    """Map a sub-step's progress into [base, base + span] of one overall 'prepare' progress."""

    def fn(p: Progress) -> None:
        if progress is not None:
            progress(Progress("prepare", base + span * p.fraction, 1.0, None, f"{stage}: {p.message}".strip(": ")))

    return fn


def choose_face(tracks: list[FaceTrack], face: str | None, video: Path) -> FaceTrack:
    if not tracks:
        raise BadInputError("no face was found in the video", path=video)
    if face is None:
        return max(tracks, key=lambda t: int(t.usable.sum()))
    for t in tracks:
        if t.identity == str(face):
            return t
    raise BadInputError(f"there is no face {face!r} in the video", path=video,
                        hint="faces found: " + ", ".join(t.identity for t in tracks))


def _load_track(path: Path) -> AudioTrack:
    from engine.media.audio import decode_audio

    a = decode_audio(path, sample_rate=16000, channels=1)
    return AudioTrack(a.mono(), 0.0)


def prepare_render(
    video_path: str | Path,
    assignments: list[TrackAssignment],
    use_library: bool = True,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> PreparedRender:
    """Analyse (cached), fit each assigned face on the original audio, plan its mouth for its track."""
    from engine.faces import analyse
    from engine.media.probe import content_hash, probe

    video = Path(video_path)
    info = probe(video).require_video()
    times = np.asarray(info.frame_times, np.float64)
    analysis = analyse(video, progress=_stage(progress, "faces", 0.0, 0.4), cancel=cancel)
    tracks = tracks_from_analysis(analysis)
    check_cancel(cancel)
    from engine.pipeline.evaluate import load_audio16k

    try:
        original = load_audio16k(video)
    except BadInputError as exc:
        raise BadInputError("the video has no usable audio to learn the speaker from", path=video) from exc
    own = track_signals(original, times, cancel=cancel, progress=_stage(progress, "audio", 0.4, 0.1))
    speaking = active_speaker(tracks, own.energy_db, own.speech, info.fps)
    vkey = content_hash(video)
    plans = []
    fits = {}
    for k, a in enumerate(assignments):
        check_cancel(cancel)
        track = choose_face(tracks, a.face, video)
        if track.identity not in fits:
            key = library_key(vkey, track.identity)
            prior = load_prior(exclude={key}) if use_library else None
            fits[track.identity] = fit_speaker(
                video, track, own, speaking[track.identity], prior=prior,
                bank_path=cache_dir("banks") / f"{key}.npy", library_key_=key if use_library else None,
                progress=_stage(progress, "fit", 0.5 + 0.4 * k / len(assignments), 0.4 / len(assignments)),
                cancel=cancel,
            )
        dub_audio = _load_track(a.audio_path)
        dub: TrackSignals = track_signals(AudioTrack(dub_audio.samples, float(times[0]) + a.offset_s), times,
                                          cancel=cancel)
        codes = target_codes(fits[track.identity], dub, info.fps)
        plans.append(plan_face(track, fits[track.identity], codes))
    if progress is not None:
        progress(Progress("prepare", 1.0, 1.0))
    return PreparedRender(video, plans, len(times), float(info.fps), tracks)


def open_session(prepared: PreparedRender, cache_frames: int = 16) -> RenderSession:
    """A preview session: ``render_frame(i) -> (original, result)``."""
    return RenderSession(prepared.video_path, prepared.plans, cache_frames)


def frames_to_render(prepared: PreparedRender) -> set[int]:
    out: set[int] = set()
    for p in prepared.plans:
        out.update(int(i) for i in np.flatnonzero(p.ok))
    return out


def mix_tracks(assignments: list[TrackAssignment], sample_rate: int = 48000) -> np.ndarray:
    """All assigned tracks mixed into one stereo track (several speakers, each with their own dub)."""
    from engine.media.audio import decode_audio

    parts = []
    for a in assignments:
        d = decode_audio(a.audio_path, sample_rate=sample_rate, channels=2).samples
        lead = round(a.offset_s * sample_rate)
        if lead > 0:
            d = np.concatenate([np.zeros((lead, 2), np.float32), d])
        elif lead < 0:
            d = d[-lead:]
        parts.append(d)
    n = max(len(p) for p in parts)
    mix = np.zeros((n, 2), np.float32)
    for p in parts:
        mix[: len(p)] += p
    return np.clip(mix, -1.0, 1.0)


def render_video(
    video_path: str | Path,
    out_path: str | Path,
    assignments: list[TrackAssignment],
    use_library: bool = True,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> object:
    """The whole job: prepare, then export with the mouths replaced and the dub(s) as the audio."""
    from engine.media import AudioTrack as MuxTrack
    from engine.pipeline.export import ExportSettings, export_video

    prepared = prepare_render(video_path, assignments, use_library, progress, cancel)
    composer = FrameComposer(prepared.plans)
    todo = frames_to_render(prepared)
    audio = MuxTrack(mix_tracks(assignments), 48000)
    log.info("rendering %s: %d of %d frames change", video_path, len(todo), prepared.frame_count)
    return export_video(
        video_path, out_path, frame_renderer=lambda i, f: composer(i, f), needs_render=todo,
        audio_tracks=[audio], settings=ExportSettings(renderer_pixel_format="bgr24"),
        progress=progress, cancel=cancel,
    )
