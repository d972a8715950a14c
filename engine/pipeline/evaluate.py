"""``lipdub eval``: QUALITY.md sections 1-3 on a folder of clips, one table, contact sheets, side-by-sides.

For each clip: (1) self-reconstruction: fit on the first 70% of the frames with the clip's own audio,
render the last 30% from the audio alone, re-analyse the rendered frames with engine.faces and compare
with the real frames; (2) dubbed: fit on the whole clip, render it with a dub from ``audio/``,
re-analyse, and score the sync meter (with its two reference rows), natural motion and rest in the
dub's silences; (3) integrity and stability on both renders: untouched pixels outside the mask,
jitter, seams. The speaker prior comes from the other clips only (leave-one-out).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.errors import LipdubError
from engine.lipsync.geometry import mouth_opening
from engine.lipsync.metrics import gradient_ring, jitter, motion_lmd, mouth_box, psnr_ssim, sync_meter
from engine.lipsync.model import PriorModel, fit_prior
from engine.pipeline.crosscheck import IndependentLandmarker
from engine.pipeline.fit import (
    SAMPLES_IN_FILE_ABOVE_BYTES,
    AudioTrack,
    SpeakerFit,
    TrackSignals,
    active_speaker,
    estimate_lag,
    fit_speaker,
    lag_rows,
    target_codes,
    track_signals,
)
from engine.pipeline.session import FacePlan, FrameResult, plan_face, render_frames
from engine.pipeline.tracks import FaceTrack, tracks_from_analysis
from engine.runtime.jobs import CancelToken, ProgressFn, check_cancel

log = logging.getLogger("lipdub.pipeline.evaluate")

TRAIN_FRACTION = 0.7


@dataclass
class Clip:
    name: str
    path: Path
    frame_times: np.ndarray
    fps: float
    size: tuple[int, int]  # (h, w)
    track: FaceTrack  # the main speaker
    tracks: list[FaceTrack]
    signals: TrackSignals
    speaking: np.ndarray
    analysis: Any = None
    # Per frame, the independent landmarker's face box and opening of the original (both renders of
    # a clip measure their originals in the same frames: once is enough).
    originals_ind: dict[int, tuple[tuple[int, int, int, int] | None, float]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.frame_times)


def load_audio16k(path: Path) -> AudioTrack:
    """The file's audio at 16 kHz mono (a long track's in a temporary file: ``SAMPLES_IN_FILE_ABOVE_BYTES``)."""
    from engine.media.audio import decode_audio

    a = decode_audio(path, sample_rate=16000, channels=1, file_above_bytes=SAMPLES_IN_FILE_ABOVE_BYTES)
    return AudioTrack(a.mono(), float(a.start_time))


def load_clip(path: Path, progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> Clip | None:
    from engine.faces import analyse
    from engine.media.probe import probe

    info = probe(path).require_video()
    analysis = analyse(path, progress=progress, cancel=cancel)
    tracks = tracks_from_analysis(analysis)
    if not tracks:
        log.warning("%s: no face found, skipped", path)
        return None
    main = max(tracks, key=lambda t: int(t.usable.sum()))
    times = np.asarray(info.frame_times, np.float64)
    signals = track_signals(load_audio16k(path), times, cancel=cancel)
    speaking = active_speaker(tracks, signals.energy_db, signals.speech, info.fps)[main.identity]
    return Clip(path.stem, path, times, float(info.fps), (info.height, info.width), main, tracks, signals, speaking,
                analysis)


@dataclass
class NetChoice:
    """``--engine net`` for the eval: the regeneration network refines the retrieval warp. The
    self-reconstruction trains it on the training frames only (the held-out frames stay unseen)."""

    device: str = "auto"

    def refiner(self, clip: Clip, stop: int | None, cancel: CancelToken | None) -> Any:
        from engine.regen.infer import NetRenderer
        from engine.regen.train import train_speaker

        rng = None if stop is None else (0, stop)
        ckpt = train_speaker(clip.path, clip.analysis, clip.track.identity, device=self.device,
                             frame_range=rng, cancel=cancel)
        return NetRenderer(ckpt, device=self.device)


class Reanalyser:
    """Streams rendered frames through the face tracker and gives the main face's landmarks per frame."""

    def __init__(self, fps: float, hw: tuple[int, int]) -> None:
        from engine.faces import FaceTrackingSession, get_backend

        self.session = FaceTrackingSession(get_backend("builtin"), fps, hw[1], hw[0])
        self.indices: list[int] = []
        self.times: list[float] = []

    def add(self, index: int, t: float, bgr: np.ndarray) -> None:
        self.session.process(index, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        self.indices.append(index)
        self.times.append(t)

    def landmarks(self, n: int) -> np.ndarray:
        """(n, 468, 2) over the video, NaN where the main face was not found."""
        ids, _ = self.session.finish(np.asarray(self.times))
        out = np.full((n, 468, 2), np.nan)
        if ids:
            best = max(ids, key=lambda i: len(i.frames))
            f = np.asarray(best.frames)
            out[f[f < n]] = np.asarray(best.landmarks)[f < n]
        return out


@dataclass
class FrameStats:
    """Per-render integrity measures collected frame by frame."""

    frames: int = 0
    untouched_ok: int = 0
    changed_frames: int = 0
    seam_render: list[float] = field(default_factory=list)
    seam_source: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)

    def add(self, original: np.ndarray, result: np.ndarray, details: list[FrameResult],
            real_landmarks: np.ndarray | None) -> None:
        self.frames += 1
        h, w = original.shape[:2]
        alpha = np.zeros((h, w), np.float32)
        for d in details:
            alpha = np.maximum(alpha, d.mask.full(h, w))
        outside = alpha == 0
        if np.array_equal(result[outside], original[outside]):
            self.untouched_ok += 1
        if not details:
            return
        self.changed_frames += 1
        for d in details:
            x0, y0, x1, y1 = d.mask.box
            ring = (d.mask.alpha > 0) & (d.mask.alpha < 1)
            self.seam_render.append(gradient_ring(result[y0:y1, x0:x1], ring))
            self.seam_source.append(gradient_ring(original[y0:y1, x0:x1], ring))
        if real_landmarks is not None and np.isfinite(real_landmarks).all():
            bx0, by0, bx1, by1 = mouth_box(real_landmarks, (h, w))
            p, s = psnr_ssim(result[by0:by1, bx0:bx1], original[by0:by1, bx0:bx1])
            self.psnr.append(p)
            self.ssim.append(s)

    @property
    def untouched(self) -> float:
        return self.untouched_ok / max(1, self.frames)

    @property
    def seam_ratio(self) -> float:
        r, s = np.nanmean(self.seam_render or [np.nan]), np.nanmean(self.seam_source or [np.nan])
        return float(r / s) if s and np.isfinite(s) else float("nan")


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    good = np.isfinite(a) & np.isfinite(b)
    if good.sum() < 5 or np.std(a[good]) == 0 or np.std(b[good]) == 0:
        return float("nan")
    return float(np.corrcoef(a[good], b[good])[0, 1])


def _valid_rows(lm: np.ndarray) -> np.ndarray:
    return np.isfinite(lm).all(axis=(1, 2))


def _face_crops(original: np.ndarray, result: np.ndarray, landmarks: np.ndarray, size: int = 320
                ) -> tuple[np.ndarray, np.ndarray]:
    """The face (from the eyes down, with margin) of both frames, ``size`` px square, for the sheets."""
    h, w = original.shape[:2]
    if not np.isfinite(landmarks).all():
        box = (0, 0, w, h)
    else:
        lo, hi = landmarks.min(0), landmarks.max(0)
        c = (lo + hi) / 2 + [0, 0.1 * (hi[1] - lo[1])]
        half = 0.65 * max(hi - lo)
        x0, y0 = (np.maximum(c - half, 0)).astype(int)
        x1, y1 = int(min(w, c[0] + half)), int(min(h, c[1] + half))
        box = (x0, y0, x1, y1)
    x0, y0, x1, y1 = box

    def crop(img: np.ndarray) -> np.ndarray:
        return cv2.resize(img[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)

    return crop(original), crop(result)


def _sheet(pairs: list[tuple[np.ndarray, np.ndarray]], path: Path, max_w: int = 1400) -> None:
    """A grid of (original | result) pairs, three pairs per row."""
    if not pairs:
        return
    _h, w = pairs[0][0].shape[:2]
    cell_w = max_w // 3
    scale = min(1.0, cell_w / (2 * w))
    cells = []
    for o, r in pairs:
        c = np.concatenate([o, r], 1)
        cells.append(cv2.resize(c, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    while len(cells) % 3:
        cells.append(np.zeros_like(cells[0]))
    rows = [np.concatenate(cells[i : i + 3], 1) for i in range(0, len(cells), 3)]
    cv2.imwrite(str(path), np.concatenate(rows, 0))


class SideBySide:
    """A short original | result mp4 (with the track's audio), at most ``max_h`` pixels high."""

    def __init__(self, path: Path, hw: tuple[int, int], fps: float, audio: AudioTrack | None, max_h: int = 480) -> None:
        from engine.media.writer import AudioTrack as MuxTrack
        from engine.media.writer import VideoWriter

        h, w = hw
        s = min(1.0, max_h / h)
        self.size = (round(w * s / 2) * 2, round(h * s / 2) * 2)
        tracks = []
        if audio is not None:
            tracks.append(MuxTrack(np.asarray(audio.samples, np.float32).reshape(-1, 1), 16000, start_time=audio.offset_s))
        self.writer = VideoWriter(path, 2 * self.size[0], self.size[1], fps=fps, audio_tracks=tracks,
                                  input_format="bgr24")

    def add(self, original: np.ndarray, result: np.ndarray) -> None:
        o = cv2.resize(original, self.size, interpolation=cv2.INTER_AREA)
        r = cv2.resize(result, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(np.concatenate([o, r], 1))

    def close(self) -> None:
        self.writer.close()


@dataclass
class Measured:
    """What a render's measuring pass collected: the engine's re-analysis (mesh landmarks per frame),
    the integrity stats, the contact-sheet pairs, and the independent landmarker's opening of the
    original and of the rendered frame (NaN outside the rendered range or where it found no face)."""

    landmarks: np.ndarray
    stats: FrameStats
    pairs: list[tuple[np.ndarray, np.ndarray]]
    open_original: np.ndarray
    open_render: np.ndarray
    measure_s: float = 0.0  # time spent in the independent landmarker (not rendering)
    plan: FacePlan | None = None  # the render plan the frames came from
    open_target: np.ndarray | None = None  # opening of the target landmarks each frame was composed to


def _render_and_measure(
    clip: Clip, fit: SpeakerFit, codes: np.ndarray, start: int, stop: int, sheet_every: int,
    side: SideBySide | None, cancel: CancelToken | None, refiner: Any = None,
    independent: IndependentLandmarker | None = None,
) -> Measured:
    plan = plan_face(clip.track, fit, codes)
    plan.refiner = refiner
    stats = FrameStats()
    re = Reanalyser(clip.fps, clip.size)
    ok_face, real_lm, _ = clip.track.dense(clip.n)
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    open_o, open_r, open_t = np.full(clip.n, np.nan), np.full(clip.n, np.nan), np.full(clip.n, np.nan)
    spent = [0.0]

    def on_frame(i: int, original: np.ndarray, result: np.ndarray, details: list[FrameResult]) -> None:
        stats.add(original, result, details, real_lm[i])
        if details:
            open_t[i] = float(mouth_opening(details[0].target_landmarks))
        re.add(i, float(clip.frame_times[i]), result)
        if independent is not None and ok_face[i]:
            t0 = time.monotonic()
            # One face box, found on the original, for both readings: only the mouth differs.
            if i not in clip.originals_ind:
                found = independent.find_face(original, real_lm[i])
                clip.originals_ind[i] = (found, independent.opening(original, real_lm[i], found) if found else np.nan)
            box, open_o[i] = clip.originals_ind[i]
            if box is not None:
                open_r[i] = independent.opening(result, real_lm[i], box)
            spent[0] += time.monotonic() - t0
        if (i - start) % sheet_every == 0 and len(pairs) < 12:
            pairs.append(_face_crops(original, result, real_lm[i]))
        if side is not None:
            side.add(original, result)

    render_frames(clip.path, [plan], lambda i, f: None, start, stop, cancel=cancel, on_frame=on_frame)
    if side is not None:
        side.close()
    return Measured(re.landmarks(clip.n), stats, pairs, open_o, open_r, spent[0], plan, open_t)


def self_reconstruction(clip: Clip, prior: PriorModel | None, out_dir: Path, cancel: CancelToken | None,
                        net: NetChoice | None = None, independent: IndependentLandmarker | None = None
                        ) -> dict[str, Any]:
    n = clip.n
    split = round(n * TRAIN_FRACTION)
    train = np.arange(n) < split
    t0 = time.monotonic()
    fit = fit_speaker(clip.path, clip.track, clip.signals, clip.speaking, train=train, prior=prior,
                      bank_path=out_dir / f".{clip.name}_bank_self.npy", cancel=cancel)
    fit_s = time.monotonic() - t0
    codes = target_codes(fit, clip.signals, clip.fps)
    refiner = net.refiner(clip, split, cancel) if net is not None else None
    t0 = time.monotonic()
    m = _render_and_measure(clip, fit, codes, split, n, max(1, (n - split) // 6), None, cancel, refiner, independent)
    rendered, stats, pairs = m.landmarks, m.stats, m.pairs
    render_s = time.monotonic() - t0 - m.measure_s
    (out_dir / f".{clip.name}_bank_self.npy").unlink(missing_ok=True)
    _sheet(pairs, out_dir / f"{clip.name}_self.png")
    held = np.arange(split, n)
    _, real, _ = clip.track.dense(n)
    ok = _valid_rows(rendered[held]) & _valid_rows(real[held])
    hr = held[ok]
    op_render = mouth_opening(rendered[hr])
    op_real = mouth_opening(real[hr])
    lmd, lmd_still = motion_lmd(rendered[hr], real[hr]) if len(hr) > 2 else (np.nan, np.nan)
    # What the model asked for (target landmarks), before synthesis and re-analysis.
    op_target = np.array([mouth_opening(fit.shape.apply_to_frame(real[i], codes[i])) for i in hr])
    row = {
        "clip": clip.name, "seconds": n / clip.fps, "held_frames": len(hr), "model": fit.model.kind,
        "r_open": _corr(op_render, op_real), "r_target": _corr(op_target, op_real),
        "lmd_ratio": lmd / lmd_still if lmd_still else np.nan,
        "psnr": float(np.nanmean(stats.psnr or [np.nan])), "ssim": float(np.nanmean(stats.ssim or [np.nan])),
        "lag_frames": fit.lag_frames, "untouched_self": stats.untouched, "jitter_self": jitter(rendered[hr]) / jitter(real[hr]) if len(hr) > 3 else np.nan,
        "seam_self": stats.seam_ratio, "fit_s": fit_s, "render_fps": (n - split) / max(render_s, 1e-6),
    }
    if independent is not None:
        # The independent r, the frames both of its readings exist on (its weight), and the share of
        # the held-out face frames it found a face on.
        row["r_open_ind"] = _corr(m.open_render[held], m.open_original[held])
        row["held_frames_ind"] = int(np.sum(np.isfinite(m.open_render[held]) & np.isfinite(m.open_original[held])))
        row["ind_found_self"] = _found(m, held, clip)
    return row


def _found(m: Measured, frames: np.ndarray, clip: Clip) -> float:
    """Share of ``frames`` with a tracked face where the independent landmarker read the render."""
    ok_face, _, _ = clip.track.dense(clip.n)
    face = frames[ok_face[frames]]
    return float(np.mean(np.isfinite(m.open_render[face]))) if len(face) else float("nan")


def _silence_runs(speech: np.ndarray, fps: float, min_s: float = 0.3) -> np.ndarray:
    out = np.zeros(len(speech), bool)
    i = 0
    while i < len(speech):
        if speech[i]:
            i += 1
            continue
        j = i
        while j < len(speech) and not speech[j]:
            j += 1
        if (j - i) / fps >= min_s:
            out[i:j] = True
        i = j
    return out


def resting_level(opening: np.ndarray, speech: np.ndarray) -> float:
    """The speaker's resting mouth opening, from the real footage: the median of the smallest fifth of
    the openings where they do not speak (all frames when they pause on fewer than 5)."""
    op = np.asarray(opening, np.float64)
    pause = ~np.asarray(speech, bool) & np.isfinite(op)
    pool = op[pause] if int(pause.sum()) >= 5 else op[np.isfinite(op)]
    if pool.size == 0:
        return float("nan")
    return float(np.median(pool[pool <= np.quantile(pool, 0.2)]))


def closure_level(op_real: np.ndarray, speech: np.ndarray) -> float:
    """The opening at or below which a mouth counts as closed (rest in silences, closures in speech).
    Measured on the real footage, not taken from the model: the speaker's mouth in their own pauses
    (:func:`resting_level`), with a tolerance of a quarter of their speech range (10th-90th
    percentile)."""
    op = np.asarray(op_real, np.float64)
    speech_ops = op[np.asarray(speech, bool) & np.isfinite(op)]
    span = float(np.percentile(speech_ops, 90) - np.percentile(speech_ops, 10)) if speech_ops.size else 0.0
    return resting_level(op, speech) + 0.25 * span


def _closures_per_s(opening: np.ndarray, speech: np.ndarray, level: float, fps: float) -> float:
    op = np.where(speech, opening, np.nan)
    closed = op <= level
    events = int(np.sum(closed[1:] & ~closed[:-1] & np.isfinite(op[:-1])))
    secs = float(np.sum(speech & np.isfinite(opening))) / fps
    return events / secs if secs > 0 else float("nan")


def dub_measures(op_render: np.ndarray, op_real: np.ndarray, own: TrackSignals, dub: TrackSignals, fps: float,
                 face: np.ndarray) -> dict[str, Any]:
    """The dubbed render's opening-based measures (QUALITY.md section 2): the sync meter with its two
    reference rows, natural motion, and rest in the dub's silences. ``op_render``/``op_real``: the
    re-measured and the original mouth opening per frame (NaN where unmeasured), ``face``: frames
    where the track has the face."""
    mine = sync_meter(op_real, own.energy_db, fps)
    ref_dub = sync_meter(op_real, dub.energy_db, fps)
    res = sync_meter(op_render, dub.energy_db, fps)
    sp_real = own.speech & np.isfinite(op_real)
    sp_dub = dub.speech & np.isfinite(op_render)
    std_ratio = np.nanstd(op_render[sp_dub]) / np.nanstd(op_real[sp_real]) if sp_dub.any() and sp_real.any() else np.nan
    spd_r = np.abs(np.diff(op_render))[sp_dub[1:]]
    spd_o = np.abs(np.diff(op_real))[sp_real[1:]]
    speed_ratio = np.nanmean(spd_r) / np.nanmean(spd_o) if len(spd_r) and len(spd_o) else np.nan
    rest_level = closure_level(op_real, own.speech)
    close_r = _closures_per_s(op_render, dub.speech, rest_level, fps)
    close_o = _closures_per_s(op_real, own.speech, rest_level, fps)
    sil = _silence_runs(dub.speech, fps) & np.isfinite(op_render) & face
    rest_rate = float(np.mean(op_render[sil] <= rest_level)) if sil.any() and np.isfinite(rest_level) else np.nan
    return {
        "z_own": mine.z, "z_orig_dub": ref_dub.z, "z_render": res.z, "lag_ms": res.lag_ms,
        "r_prior_own": mine.r, "r_prior_render": res.r, "std_ratio": std_ratio, "speed_ratio": speed_ratio,
        "close_ratio": close_r / close_o if close_o else np.nan, "silence_frames": int(sil.sum()),
        "rest_rate": rest_rate,
    }


def dubbed(clip: Clip, dub_path: Path, prior: PriorModel | None, out_dir: Path, cancel: CancelToken | None,
           net: NetChoice | None = None, independent: IndependentLandmarker | None = None,
           trace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Render the clip with a dub and measure it (QUALITY.md section 2). ``trace``: filled with the
    per-frame openings behind the measures (:func:`dub_trace`)."""
    n = clip.n
    fit = fit_speaker(clip.path, clip.track, clip.signals, clip.speaking, prior=prior,
                      bank_path=out_dir / f".{clip.name}_bank_dub.npy", cancel=cancel)
    dub_audio = load_audio16k(dub_path)
    dub_audio = AudioTrack(dub_audio.samples, float(clip.frame_times[0]))
    dub = track_signals(dub_audio, clip.frame_times, cancel=cancel)
    codes = target_codes(fit, dub, clip.fps)
    side_n = min(n, round(8 * clip.fps))
    side = SideBySide(out_dir / f"{clip.name}_dub.mp4", clip.size, clip.fps,
                      AudioTrack(dub_audio.samples[: int(16000 * (side_n / clip.fps + 1))], 0.0))
    written = {"n": 0}

    class _Limited:
        def add(self, o: np.ndarray, r: np.ndarray) -> None:
            if written["n"] < side_n:
                side.add(o, r)
                written["n"] += 1

        def close(self) -> None:
            side.close()

    refiner = net.refiner(clip, None, cancel) if net is not None else None
    m = _render_and_measure(clip, fit, codes, 0, n, max(1, n // 12), _Limited(), cancel,  # type: ignore[arg-type]
                            refiner, independent)
    rendered, stats = m.landmarks, m.stats
    (out_dir / f".{clip.name}_bank_dub.npy").unlink(missing_ok=True)
    _sheet(m.pairs, out_dir / f"{clip.name}_dub.png")
    ok_face, real, _ = clip.track.dense(n)
    op_render = np.where(_valid_rows(rendered), mouth_opening(np.nan_to_num(rendered)), np.nan)
    op_real = np.where(_valid_rows(real), mouth_opening(np.nan_to_num(real)), np.nan)
    row = {"dub": dub_path.stem, **dub_measures(op_render, op_real, clip.signals, dub, clip.fps, ok_face)}
    if trace is not None and m.plan is not None and m.open_target is not None:
        trace.update(dub_trace(m.plan, m.open_target, op_render, op_real, clip.signals.speech, dub.speech,
                               clip.fps, ok_face))
    if independent is not None:
        ind = dub_measures(m.open_render, m.open_original, clip.signals, dub, clip.fps, ok_face)
        row.update({f"{k}_ind": v for k, v in ind.items()})
        row["ind_found_dub"] = _found(m, np.arange(n), clip)
    both = _valid_rows(rendered) & _valid_rows(real)
    row.update({
        "untouched_dub": stats.untouched, "seam_dub": stats.seam_ratio,
        "jitter_dub": jitter(rendered[both]) / jitter(real[both]) if both.sum() > 3 else np.nan,
    })
    return row


def dub_trace(plan: FacePlan, op_target: np.ndarray, op_render: np.ndarray, op_real: np.ndarray,
              own_speech: np.ndarray, dub_speech: np.ndarray, fps: float, face: np.ndarray) -> dict[str, Any]:
    """Per frame of a dubbed render: the opening asked for (``op_target``: of the target landmarks the
    frame was composed to, ``Measured.open_target``), the mesh's reading of the render and of the
    original, and of the two source frames the texture came from (``first``, ``second``: their own
    landmarks, NaN where none); the dub's speech, its silences as the rest measure counts them, and
    the closure level."""
    n = len(op_render)
    bank_open = mouth_opening(np.asarray(plan.fit.bank.landmarks))

    def sources(path: np.ndarray | None) -> np.ndarray:
        out = np.full(n, np.nan)
        if path is None:
            return out
        p = np.asarray(path[:n], np.int64)
        out[: len(p)] = np.where(p >= 0, bank_open[np.maximum(p, 0)], np.nan)
        return out

    return {
        "target": np.asarray(op_target, np.float64), "render": np.asarray(op_render, np.float64), "original": np.asarray(op_real, np.float64),
        "first": sources(plan.path), "second": sources(plan.second), "speech": np.asarray(dub_speech, bool),
        "silence": _silence_runs(dub_speech, fps) & np.asarray(face, bool),
        "level": closure_level(op_real, own_speech), "fps": fps,
    }


def list_clips(media: Path, names: list[str] | None = None) -> list[Path]:
    clips = sorted((media / "video").glob("*.mp4")) + sorted((media / "video").glob("*.mov"))
    if names:
        wanted = {Path(x).stem for x in names}
        clips = [c for c in clips if c.stem in wanted]
    return clips


def dub_for(clip: Path, all_clips: list[Path], dubs: list[Path]) -> Path | None:
    """The dub a clip is rendered with: chosen by the clip's place among all clips, so a run on a
    few clips (``--clips``) renders the same dubs as the full run."""
    return dubs[all_clips.index(clip) % len(dubs)] if dubs else None


def list_dubs(media: Path) -> list[Path]:
    return sorted(p for p in (media / "audio").iterdir() if p.suffix.lower() in (".wav", ".mp3", ".m4a", ".flac", ".ogg"))


@dataclass
class LibraryEntry:
    """One clip's speaker as the speaker library holds it: speaking frames, design rows, opening."""

    name: str
    design: np.ndarray  # (n_frames, D) all of the clip's rows (shifted per lag when used)
    energy_db: np.ndarray
    frames: np.ndarray  # speaking frames with a usable face
    opening: np.ndarray  # real opening at those frames
    fps: float

    def rows(self, lag: int) -> tuple[str, np.ndarray, np.ndarray]:
        z = (self.opening - self.opening.mean()) / (self.opening.std() + 1e-6)
        return self.name, self.design[lag_rows(len(self.design), lag)[self.frames]], z


def library_entry(clip: Clip) -> LibraryEntry | None:
    """The clip's main speaker as a library entry: all of its speech (a clip's entry is never used
    when that clip itself is evaluated); None with under 25 speaking frames."""
    ok, lm, _ = clip.track.dense(clip.n)
    sel = np.flatnonzero(ok & clip.speaking)
    if len(sel) < 25:
        return None
    # Computed once here: the library reads an entry's rows at many lags (the clips are short).
    design = np.asarray(clip.signals.design, np.float32)
    return LibraryEntry(clip.name, design, clip.signals.energy_db, sel, mouth_opening(lm[sel]), clip.fps)


class LeaveOneOutLibrary:
    """The speaker-library prior for each evaluated clip, built from the other clips only.

    As in use, each library entry is stored at its own audio-to-mouth lag, estimated with a prior of
    the other entries. Here that prior leaves out the evaluated clip as well (first every entry is
    lined up with its band energy, then each entry's lag is re-estimated with a prior of the entries
    other than itself and the evaluated clip), so nothing of the evaluated clip reaches its prior."""

    def __init__(self, entries: list[LibraryEntry]) -> None:
        self.entries = {e.name: e for e in entries}
        self.energy_lag = {e.name: estimate_lag(e.design, e.energy_db, e.frames, e.opening, e.fps) for e in entries}
        self._pair: dict[frozenset[str], PriorModel | None] = {}

    def _prior_without(self, names: set[str], lags: dict[str, int]) -> PriorModel | None:
        return fit_prior([e.rows(lags[k]) for k, e in self.entries.items() if k not in names])

    def prior_for(self, name: str) -> PriorModel | None:
        lags = {}
        for other, e in self.entries.items():
            if other == name:
                continue
            key = frozenset((name, other))
            if key not in self._pair:
                self._pair[key] = self._prior_without({name, other}, self.energy_lag)
            pair = self._pair[key]
            lags[other] = estimate_lag(e.design, e.energy_db, e.frames, e.opening, e.fps, pair)
        return self._prior_without({name}, lags)


def load_library(media: Path, keep: Collection[Path] | None = None, cancel: CancelToken | None = None,
                 say: Any = None) -> tuple[dict[Path, Clip], LeaveOneOutLibrary]:
    """Analyse every clip of ``media`` (cached) and build the leave-one-out speaker library from all
    of them. Returns the clips in ``keep`` (all when None) by path, and the library; the others'
    analyses are not kept."""
    loaded: dict[Path, Clip] = {}
    entries = []
    for path in list_clips(media):
        check_cancel(cancel)
        if say is not None:
            say(f"analysing {path.name}")
        clip = load_clip(path, cancel=cancel)
        if clip is None:
            continue
        entry = library_entry(clip)
        if entry is not None:
            entries.append(entry)
        if keep is None or path in keep:
            loaded[path] = clip
    return loaded, LeaveOneOutLibrary(entries)


def run_eval(media: Path, out_dir: Path, names: list[str] | None = None, progress: ProgressFn | None = None,
             cancel: CancelToken | None = None, say: Any = print, engine: str = "retrieval",
             device: str = "auto", independent: bool = True) -> list[dict[str, Any]]:
    """Evaluate every clip; returns one row per clip (also printed by the CLI). ``engine="net"``: the
    mouths are rendered with each speaker's regeneration network on ``device`` (trained when not cached).
    ``independent``: measure the openings a second time with dlib's landmarker (the ``*_ind`` columns,
    engine.pipeline.crosscheck)."""
    net = NetChoice(device) if engine == "net" else None
    ind = None
    if independent:
        try:
            ind = IndependentLandmarker()
        except (ImportError, LipdubError) as exc:  # e.g. a build that ships without the 68-point model
            say(f"the independent landmarker is not available ({exc}); measuring with the engine's own only")
    out_dir.mkdir(parents=True, exist_ok=True)
    all_clips = list_clips(media)
    chosen = list_clips(media, names)
    dubs = list_dubs(media)
    loaded, library = load_library(media, chosen, cancel, say)
    rows = []
    for path in chosen:
        clip = loaded.get(path)
        if clip is None:
            continue
        say(f"evaluating {path.name}")
        prior = library.prior_for(clip.name)
        row = self_reconstruction(clip, prior, out_dir, cancel, net, ind)
        row["engine"] = engine
        dub = dub_for(path, all_clips, dubs)
        if dub is not None:
            row.update(dubbed(clip, dub, prior, out_dir, cancel, net, ind))
        rows.append(row)
        say(format_row(row))
    return rows


COLUMNS = [
    ("clip", "{:<28}"), ("seconds", "{:5.1f}"), ("model", "{:<13}"), ("r_open", "{:+.2f}"), ("r_target", "{:+.2f}"), ("lag_frames", "{:+d}"),
    ("lmd_ratio", "{:.2f}"), ("psnr", "{:5.1f}"), ("ssim", "{:.3f}"), ("dub", "{:<17}"), ("z_own", "{:+.2f}"),
    ("z_orig_dub", "{:+.2f}"), ("z_render", "{:+.2f}"), ("lag_ms", "{:3.0f}"), ("r_prior_own", "{:+.2f}"),
    ("r_prior_render", "{:+.2f}"), ("std_ratio", "{:.2f}"), ("speed_ratio", "{:.2f}"), ("close_ratio", "{:.2f}"),
    ("rest_rate", "{:.2f}"), ("untouched_self", "{:.3f}"), ("untouched_dub", "{:.3f}"), ("jitter_self", "{:.2f}"),
    ("jitter_dub", "{:.2f}"), ("seam_self", "{:.2f}"), ("seam_dub", "{:.2f}"), ("render_fps", "{:5.1f}"),
    # The same openings measured by the independent landmarker (engine.pipeline.crosscheck).
    ("r_open_ind", "{:+.2f}"), ("z_own_ind", "{:+.2f}"), ("z_orig_dub_ind", "{:+.2f}"), ("z_render_ind", "{:+.2f}"),
    ("r_prior_own_ind", "{:+.2f}"), ("r_prior_render_ind", "{:+.2f}"), ("rest_rate_ind", "{:.2f}"),
    ("ind_found_self", "{:.2f}"), ("ind_found_dub", "{:.2f}"),
]


def _fmt(fmt: str, v: Any) -> str:
    try:
        if isinstance(v, float) and not np.isfinite(v):
            return "nan"
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def format_row(row: dict[str, Any]) -> str:
    return " | ".join(f"{k}={_fmt(f, row.get(k, float('nan'))).strip()}" for k, f in COLUMNS)


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Frame-weighted opening r (all clips / clips of 10 s or more) and the other targets' aggregates."""
    def wmean(key: str, sel: list[dict[str, Any]], weight: str = "held_frames") -> float:
        v = np.array([r[key] for r in sel], float)
        w = np.array([r.get(weight, r["held_frames"]) for r in sel], float)
        good = np.isfinite(v)
        return float(np.sum(v[good] * w[good]) / np.sum(w[good])) if good.any() else float("nan")

    long = [r for r in rows if r["seconds"] >= 10.0 - 0.15]
    out = {
        "r_open_all": wmean("r_open", rows), "r_open_long": wmean("r_open", long) if long else float("nan"),
        "r_target_all": wmean("r_target", rows), "r_target_long": wmean("r_target", long) if long else float("nan"),
        "lmd_ratio_mean": float(np.nanmean([r["lmd_ratio"] for r in rows])),
        "clips": float(len(rows)), "long_clips": float(len(long)),
    }
    for sfx in ("", "_ind"):
        measured = [r for r in rows if f"r_open{sfx}" in r]
        if not measured:
            continue
        weight = f"held_frames{sfx}"
        out[f"r_open{sfx}_all"] = wmean(f"r_open{sfx}", measured, weight)
        long_measured = [r for r in measured if r["seconds"] >= 10.0 - 0.15]
        out[f"r_open{sfx}_long"] = wmean(f"r_open{sfx}", long_measured, weight) if long else float("nan")
        out[f"r_open{sfx}_clips"] = float(sum(np.isfinite(r[f"r_open{sfx}"]) for r in measured))
        # Sync: the clips whose original scores z >= 2 with its own audio are the eligible ones.
        eligible = [r[f"z_render{sfx}"] for r in rows if r.get(f"z_own{sfx}", np.nan) >= 2.0]
        rest = [r[f"rest_rate{sfx}"] for r in rows if np.isfinite(r.get(f"rest_rate{sfx}", np.nan))]
        prior = [r[f"r_prior_render{sfx}"] - r[f"r_prior_own{sfx}"] for r in rows
                 if np.isfinite(r.get(f"r_prior_render{sfx}", np.nan)) and np.isfinite(r.get(f"r_prior_own{sfx}", np.nan))]
        out[f"sync_ok{sfx}"], out[f"sync_eligible{sfx}"] = float(sum(z >= 2.0 for z in eligible)), float(len(eligible))
        out[f"rest_ok{sfx}"], out[f"rest_clips{sfx}"] = float(sum(v >= 0.95 for v in rest)), float(len(rest))
        out[f"prior_ok{sfx}"], out[f"prior_clips{sfx}"] = float(sum(d <= 0.2 for d in prior)), float(len(prior))
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    # Columns no row has (the *_ind ones of a run without the independent landmarker) are left out.
    columns = [(k, f) for k, f in COLUMNS if any(k in r for r in rows)] if rows else COLUMNS
    heads = [k for k, _ in columns]
    cells = [[_fmt(f, r.get(k, float("nan"))).strip() for k, f in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(heads)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    if rows:
        s = summary(rows)
        lines.append("")
        lines.append(
            f"opening r frame-weighted: all {s['r_open_all']:+.3f} ({int(s['clips'])} clips), "
            f">= 10 s {s['r_open_long']:+.3f} ({int(s['long_clips'])} clips); "
            f"target-landmark r: all {s['r_target_all']:+.3f}, >= 10 s {s['r_target_long']:+.3f}; "
            f"motion LMD / still mean {s['lmd_ratio_mean']:.2f}"
        )
        for sfx, who in (("", "engine's mesh"), ("_ind", "independent landmarker")):
            if f"sync_ok{sfx}" not in s:
                continue
            lines.append(
                f"{who}: opening r all {s[f'r_open{sfx}_all']:+.3f}, >= 10 s {s[f'r_open{sfx}_long']:+.3f} "
                f"({int(s[f'r_open{sfx}_clips'])} clips measured); "
                f"dubbed z >= 2 on {int(s[f'sync_ok{sfx}'])}/{int(s[f'sync_eligible{sfx}'])} eligible; "
                f"rest >= 95% on {int(s[f'rest_ok{sfx}'])}/{int(s[f'rest_clips{sfx}'])}; "
                f"r_prior <= own + 0.2 on {int(s[f'prior_ok{sfx}'])}/{int(s[f'prior_clips{sfx}'])}"
            )
    return "\n".join(lines)
