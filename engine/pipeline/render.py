"""Whole-video lip-sync: analyse faces, fit the speakers, plan the mouths for each dubbed track,
and render, streamed through the export pipeline (or into a preview session)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import BadInputError
from engine.pipeline.fit import (
    SAMPLES_IN_FILE_ABOVE_BYTES,
    AudioTrack,
    SpeakerFit,
    TrackSignals,
    active_speaker,
    fit_speaker,
    library_key,
    load_prior,
    target_codes,
    track_signals,
)
from engine.pipeline.fitcache import fit_key, load_fit, store_fit
from engine.pipeline.session import FacePlan, FrameComposer, RenderSession, plan_face
from engine.pipeline.tracks import FaceTrack, tracks_from_analysis
from engine.runtime.jobs import CancelToken, Progress, ProgressFn, check_cancel
from engine.runtime.memory import release_free_memory
from engine.runtime.paths import cache_dir

if TYPE_CHECKING:
    from engine.pipeline.export import ExportSettings

log = logging.getLogger("lipdub.pipeline.render")

N_COMPONENTS = 8  # shape-code components per speaker
# Past this much landmark data (about 4.5 minutes of one face at 30 fps), a render keeps the
# landmarks in temporary files rather than in memory (FaceTrack.spill).
SPILL_LANDMARKS_ABOVE_BYTES = 64 * 2**20


@dataclass
class TrackAssignment:
    """A dubbed audio track driving one face (``face`` None: the most present face).

    ``offset_s``: where the (trimmed) track starts on the video timeline; ``trim_in_s``/``trim_out_s``:
    the part of the file that plays; ``start_s``/``end_s``: the part of the video this assignment
    covers (None: all of it). Outside its range a face is left as it is."""

    audio_path: Path
    face: str | None = None
    offset_s: float = 0.0
    trim_in_s: float = 0.0
    trim_out_s: float | None = None
    start_s: float | None = None
    end_s: float | None = None


@dataclass(frozen=True)
class AssignmentSync:
    """How closely an assignment's planned mouth follows the syllables of its dub, predicted from the
    plan (nothing decoded or rendered): engine.lipsync.metrics.sync_meter of the planned opening
    against the dub's 1.8-4.5 kHz band energy, over the frames the plan changes.

    ``z`` >= 2: the mouth clearly follows the dub (a mouth against unrelated speech scores about
    0 +- 1); NaN when too few frames are covered to tell. ``own_z``: the speaker's real mouth against
    their own original voice (SpeakerFit.own_sync), None when that was not measurable."""

    face: str
    audio_path: Path
    z: float
    r: float
    own_z: float | None
    frames: int  # frames the score covers

    def to_dict(self) -> dict[str, Any]:
        def num(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else round(float(v), 3)

        return {"face": self.face, "audio": str(self.audio_path), "z": num(self.z), "r": num(self.r),
                "own_z": num(self.own_z), "frames": self.frames}


def plan_sync(plan: FacePlan, dub: TrackSignals, fps: float, audio_path: Path) -> AssignmentSync:
    """The sync score of ``plan``'s mouth against ``dub`` (see :class:`AssignmentSync`): the opening
    of its codes on the frames it changes (``plan.ok``), NaN elsewhere (the meter skips those)."""
    from engine.lipsync.metrics import sync_meter

    opening = np.asarray(plan.fit.shape.code_opening(plan.codes), np.float64)
    ok = np.asarray(plan.ok, bool)
    opening = np.where(ok, opening, np.nan)
    score = sync_meter(opening, dub.energy_db, fps)
    own = plan.fit.own_sync
    own_z = float(own[1]) if own is not None and math.isfinite(float(own[1])) else None
    return AssignmentSync(plan.track.identity, Path(audio_path), float(score.z), float(score.r), own_z, int(ok.sum()))


@dataclass
class PreparedRender:
    video_path: Path
    plans: list[FacePlan]
    frame_count: int
    fps: float
    tracks: list[FaceTrack]
    fits: dict[str, SpeakerFit]
    sync: list[AssignmentSync] = field(default_factory=list)  # one per assignment, in assignment order


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


def _load_track(a: TrackAssignment, video_start: float) -> AudioTrack:
    """The assignment's track at 16 kHz mono, trimmed, placed on the video clock."""
    from engine.audio.timeline import trimmed_samples
    from engine.media.audio import decode_audio

    d = decode_audio(a.audio_path, sample_rate=16000, channels=1, file_above_bytes=SAMPLES_IN_FILE_ABOVE_BYTES)
    samples, offset = trimmed_samples(d.mono(), 16000, a)  # type: ignore[arg-type]
    return AudioTrack(samples, video_start + offset)


def prepare_render(
    video_path: str | Path,
    assignments: list[TrackAssignment],
    use_library: bool = True,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    fitted: dict[str, SpeakerFit] | None = None,
    engine: str = "retrieval",
    device: str = "auto",
) -> PreparedRender:
    """Analyse (cached), fit each assigned face on the original audio, plan its mouth for its track.

    ``engine="net"``: each planned face also gets the speaker's regeneration network as its refiner
    (engine.regen.refiner_for on ``device``; trained first when no checkpoint is cached, which is
    slow on a CPU), applied on top of the retrieval warp."""
    if engine not in ("retrieval", "net"):
        raise BadInputError(f"unknown engine {engine!r}; use retrieval or net")
    from engine.faces import analyse
    from engine.media.probe import content_hash, probe

    video = Path(video_path)
    info = probe(video).require_video()
    times = np.asarray(info.frame_times, np.float64)
    analysis: Any = analyse(video, progress=_stage(progress, "faces", 0.0, 0.4), cancel=cancel)
    tracks = tracks_from_analysis(analysis)
    if sum(t.landmark_bytes for t in tracks) > SPILL_LANDMARKS_ABOVE_BYTES:
        # A long video: its landmarks go to temporary files for the rest of the render (read a frame
        # or a block at a time), and the analysis that holds them too is let go unless the
        # regeneration network still needs it.
        tracks = [t.spill(cache_dir("tmp")) for t in tracks]
        if engine != "net":
            analysis = None
    release_free_memory()  # what the analysis freed, before the audio stage's peak comes on top
    check_cancel(cancel)
    from engine.pipeline.evaluate import load_audio16k

    try:
        original = load_audio16k(video)
    except BadInputError as exc:
        raise BadInputError("the video has no usable audio to learn the speaker from", path=video) from exc
    own = track_signals(original, times, cancel=cancel, progress=_stage(progress, "audio", 0.4, 0.1))
    del original
    release_free_memory()
    speaking = active_speaker(tracks, own.energy_db, own.speech, info.fps)
    vkey = content_hash(video)
    plans = []
    sync: list[AssignmentSync] = []
    refiners: dict[str, Any] = {}
    fits = dict(fitted or {})
    chosen = [choose_face(tracks, a.face, video) for a in assignments]
    for k, track in enumerate(chosen):
        check_cancel(cancel)
        if track.identity not in fits:
            key = library_key(vkey, track.identity)
            prior = load_prior(exclude={key}) if use_library else None
            cached_key = fit_key(vkey, track, speaking[track.identity], prior, N_COMPONENTS)
            fit = load_fit(cached_key, track, len(times))
            if fit is None:
                bank_path = cache_dir("banks") / f"{key}.npy"
                fit = fit_speaker(
                    video, track, own, speaking[track.identity], prior=prior, n_components=N_COMPONENTS,
                    bank_path=bank_path, library_key_=key if use_library else None,
                    progress=_stage(progress, "fit", 0.5 + 0.4 * k / len(assignments), 0.4 / len(assignments)),
                    cancel=cancel,
                )
                store_fit(cached_key, fit, bank_path)
            else:
                log.info("speaker %s: fit taken from the cache", track.identity)
            fits[track.identity] = fit
    # The original audio's model rows (10 kB per frame) are done with once every speaker is fitted.
    del own
    release_free_memory()
    for k, (a, track) in enumerate(zip(assignments, chosen, strict=True)):
        check_cancel(cancel)
        dub: TrackSignals = track_signals(_load_track(a, float(times[0])), times, cancel=cancel)
        codes = target_codes(fits[track.identity], dub, info.fps)
        dub = replace(dub, design=dub.design[:0])  # the rows are done with; the sync score needs the rest
        plan = plan_face(track, fits[track.identity], codes)
        rel = times - times[0]
        if a.start_s is not None:
            plan.ok &= rel >= a.start_s - 1e-6
        if a.end_s is not None:
            plan.ok &= rel < a.end_s - 1e-6
        sync.append(plan_sync(plan, dub, float(info.fps), a.audio_path))
        log.info("assignment %d (face %s, %s): predicted lip sync z %.2f (the speaker's own %s) over %d frames",
                 k + 1, track.identity, a.audio_path.name, sync[-1].z,
                 "unknown" if sync[-1].own_z is None else f"{sync[-1].own_z:.2f}", sync[-1].frames)
        if engine == "net":
            plan.refiner = _refiner(video, analysis, track.identity, device, refiners, progress, cancel)
        plans.append(plan)
    release_free_memory()
    if progress is not None:
        progress(Progress("prepare", 1.0, 1.0))
    return PreparedRender(video, plans, len(times), float(info.fps), tracks, fits, sync)


def _refiner(video: Path, analysis: Any, identity: str, device: str, cache: dict[str, Any],
             progress: ProgressFn | None, cancel: CancelToken | None) -> Any:
    """The speaker's network renderer (one per identity, shared by that face's assignments)."""
    if identity not in cache:
        from engine.regen.infer import refiner_for

        cache[identity] = refiner_for(video, analysis, identity, device=device,
                                      progress=_stage(progress, f"net {identity}", 0.9, 0.1), cancel=cancel)
    return cache[identity]


def open_session(prepared: PreparedRender, cache_frames: int = 16) -> RenderSession:
    """A preview session: ``render_frame(i) -> (original, result)``."""
    return RenderSession(prepared.video_path, prepared.plans, cache_frames)


def frames_to_render(prepared: PreparedRender) -> set[int]:
    out: set[int] = set()
    for p in prepared.plans:
        out.update(int(i) for i in np.flatnonzero(p.ok))
    return out


def render_project(
    project: Any,
    out_path: str | Path,
    *,
    languages: list[str] | None = None,
    language_mode: str | None = None,
    audio_mode: str | None = None,
    engine: str = "retrieval",
    device: str = "auto",
    use_library: bool = True,
    settings: ExportSettings | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    on_sync: Callable[[str | None, list[AssignmentSync]], None] | None = None,
) -> list[Any]:
    """Export an :class:`engine.project.Project` with the assigned faces' mouths regenerated: prepare
    (analyse, fit, plan) the assignments, then :func:`engine.pipeline.export.export_project` mixes each
    language's dubs (offsets, gains, trims; the original per ``audio_mode``) and streams the video
    through the composer. Returns one ExportResult per file written.

    The mouths follow one language per file: with ``file_per_language`` each language's file is
    rendered from that language's assignments (the speaker fits are shared); one file with a track per
    language follows the first language (its default audio track). ``settings`` (an
    :class:`engine.pipeline.export.ExportSettings`) overrides the project's codec, CRF and preset.
    ``on_sync(lip_language, scores)``: called once per file's preparation with the predicted sync score
    of each of that language's assignments (:class:`AssignmentSync`, in assignment order)."""
    from engine.errors import ProjectError
    from engine.pipeline.export import language_output_path, project_languages
    from engine.project.store import missing_media

    if project.video is None:
        raise ProjectError("the project has no video", hint="add a video first")
    missing = missing_media(project)
    if missing:
        raise ProjectError("media files are missing: " + ", ".join(str(m) for m in missing[:3]),
                           hint="relink them (the app offers to) and save")
    if not assignments_from_project(project):
        raise ProjectError("the project assigns no dub track to a face", hint="assign a track to a face first")
    langs = list(languages) if languages else project_languages(project)
    mode = language_mode or project.render.language_mode
    fits: dict[str, SpeakerFit] = {}
    if len(langs) > 1 and mode == "file_per_language":
        results: list[Any] = []
        for lang in langs:
            results += _render_languages(project, language_output_path(out_path, lang), [lang], lang, audio_mode,
                                         engine, device, use_library, fits, progress, cancel, settings=settings,
                                         on_sync=on_sync)
        return results
    return _render_languages(project, out_path, langs, langs[0] if langs else None, audio_mode, engine, device,
                             use_library, fits, progress, cancel, language_mode=mode, settings=settings,
                             on_sync=on_sync)


def _render_languages(
    project: Any, out_path: str | Path, langs: list[str], lip_language: str | None, audio_mode: str | None,
    engine: str, device: str, use_library: bool, fits: dict[str, SpeakerFit], progress: ProgressFn | None,
    cancel: CancelToken | None, language_mode: str | None = None, settings: ExportSettings | None = None,
    on_sync: Callable[[str | None, list[AssignmentSync]], None] | None = None,
) -> list[Any]:
    """One export_project call: the mouths follow ``lip_language``'s assignments, the audio has ``langs``."""
    import dataclasses

    from engine.errors import ProjectError
    from engine.pipeline.export import ExportSettings, export_project

    language = {t.id: t.language for t in project.tracks}
    assignments = [a for a, pa in zip(assignments_from_project(project), _project_assignments(project), strict=True)
                   if lip_language is None or language[pa.track_id] == lip_language]
    if not assignments:
        raise ProjectError(f"no dub track in {lip_language} is assigned to a face",
                           hint="assign a track of that language to a face")
    prepared = prepare_render(project.video.path, assignments, use_library, progress, cancel, fitted=fits,
                              engine=engine, device=device)
    fits.update(prepared.fits)
    if on_sync is not None:
        on_sync(lip_language, list(prepared.sync))
    composer = FrameComposer(prepared.plans)
    todo = frames_to_render(prepared)
    log.info("rendering %s (%s): %d of %d frames change", project.video.path, lip_language, len(todo),
             prepared.frame_count)
    base = settings if settings is not None else ExportSettings.from_render_settings(project.render)
    settings = dataclasses.replace(base, renderer_pixel_format="bgr24")
    return export_project(
        project, out_path, languages=langs, language_mode=language_mode,  # type: ignore[arg-type]
        audio_mode=audio_mode, settings=settings, frame_renderer=lambda i, f: composer(i, f),
        needs_render=todo, progress=progress, cancel=cancel,
    )


def project_for_video(video_path: str | Path, assignments: list[TrackAssignment],
                      progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Any:
    """An in-memory project for the direct form (a video and dub files): one dub track per assignment
    at its offset and trim, one face identity per face (a face not named is the most present one),
    each assignment over the whole video (or its own range). Finding the most present face analyses
    the video (cached; reported to ``progress`` as the "prepare" stage's "faces" step)."""
    from engine.faces import analyse
    from engine.media.probe import probe
    from engine.project.model import Assignment, DubTrack, FaceIdentity, Project, Video

    video = Path(video_path)
    info = probe(video).require_video()
    times = np.asarray(info.frame_times, np.float64)
    whole = float(times[-1] - times[0]) + 1.0 / max(float(info.fps), 1e-3)
    tracks: list[FaceTrack] | None = None
    project = Project(video=Video(video))
    for k, a in enumerate(assignments):
        face = a.face
        if face is None:
            if tracks is None:
                tracks = tracks_from_analysis(analyse(video, progress=_stage(progress, "faces", 0.0, 0.4),
                                                      cancel=cancel))
            face = choose_face(tracks, None, video).identity
        tid = f"track{k + 1}"
        project.tracks.append(DubTrack(tid, Path(a.audio_path), offset_s=float(a.offset_s),
                                       trim_in_s=float(a.trim_in_s), trim_out_s=a.trim_out_s))
        if all(i.id != str(face) for i in project.identities):
            project.identities.append(FaceIdentity(str(face)))
        start = 0.0 if a.start_s is None else float(a.start_s)
        end = whole if a.end_s is None else float(a.end_s)
        project.assignments.append(Assignment(f"assign{k + 1}", tid, str(face), start, end))
    return project


def render_video(
    video_path: str | Path,
    out_path: str | Path,
    assignments: list[TrackAssignment],
    use_library: bool = True,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    engine: str = "retrieval",
    device: str = "auto",
) -> Any:
    """The direct form: the video with its dub file(s), exported through :func:`render_project` (so the
    dubs are mixed by the audio engine, like a project's). Returns the ExportResult."""
    project = project_for_video(video_path, assignments, progress, cancel)
    return render_project(project, out_path, audio_mode="dub_only", language_mode="one_file_multi_track",
                          engine=engine, device=device, use_library=use_library, progress=progress,
                          cancel=cancel)[0]


def _project_assignments(project: Any) -> list[Any]:
    """The project's assignments whose track exists (in the order of assignments_from_project)."""
    ids = {t.id for t in project.tracks}
    return [a for a in project.assignments if a.track_id in ids]


def assignments_from_project(project: Any) -> list[TrackAssignment]:
    """The project's assignments (track -> identity over a time range) as engine assignments."""
    tracks = {t.id: t for t in project.tracks}
    out = []
    for a in _project_assignments(project):
        t = tracks[a.track_id]
        out.append(TrackAssignment(Path(t.path), str(a.identity_id), float(t.offset_s), float(t.trim_in_s),
                                   t.trim_out_s, float(a.start_s), float(a.end_s)))
    return out


class ProjectPreview:
    """``render_frame(project, frame_index) -> (original, result)`` for the app's preview.

    Prepares on the first request and again only when the project's video or assignments change;
    fitted speakers are kept across those changes (refitting is the slow part). Neighbouring frames
    are fast: the session keeps decoded frames and results, and the reader decodes forward."""

    def __init__(self, use_library: bool = True, engine: str = "retrieval", device: str = "auto") -> None:
        self.use_library = use_library
        self.engine = engine  # "retrieval" or "net" (as prepare_render); a change re-prepares
        self.device = device
        self._key: tuple[Any, ...] | None = None
        self._session: RenderSession | None = None
        self._fits: dict[str, SpeakerFit] = {}
        self._fits_video: Path | None = None
        self._sync: list[AssignmentSync] = []
        self._sync_ids: list[str] = []

    def _signature(self, project: Any) -> tuple[Any, ...]:
        return (self.engine, self.device, str(project.video.path), tuple(
            (a.audio_path, a.face, a.offset_s, a.trim_in_s, a.trim_out_s, a.start_s, a.end_s)
            for a in assignments_from_project(project)))

    def prepare(self, project: Any, progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> None:
        if project.video is None:
            raise BadInputError("the project has no video")
        key = self._signature(project)
        # The scores follow the engine's assignments positionally; an assignment re-created with the same
        # content has a new id but the same plan, so the ids are taken again even when nothing re-prepares.
        ids = [str(a.id) for a in _project_assignments(project)]
        if key == self._key and self._session is not None:
            self._sync_ids = ids
            return
        video = Path(project.video.path)
        if self._fits_video != video:
            self._fits = {}
        prepared = prepare_render(video, assignments_from_project(project), self.use_library, progress, cancel,
                                  fitted=self._fits, engine=self.engine, device=self.device)
        self._fits, self._fits_video = prepared.fits, video
        if self._session is not None:
            self._session.close()
        self._session = open_session(prepared)
        self._key = key
        self._sync, self._sync_ids = list(prepared.sync), ids

    def sync_scores(self) -> dict[str, AssignmentSync]:
        """The last preparation's predicted sync score per assignment, keyed by the project's assignment
        id (in assignment order); empty before the first preparation."""
        if len(self._sync) != len(self._sync_ids):
            return {}
        return dict(zip(self._sync_ids, self._sync, strict=True))

    def render_frame(self, project: Any, frame_index: int) -> tuple[np.ndarray, np.ndarray]:
        self.prepare(project)
        assert self._session is not None
        return self._session.render_frame(frame_index)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        self._key = None
        self._sync, self._sync_ids = [], []
