"""Fit a speaker: shape model, audio -> shape model, texture bank, from the speaker's own footage."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio.features import (
    FEATURES_VERSION,
    WhisperFeatures,
    band_energy_db,
    features_at_frames,
    whisper_features,
)
from engine.lipsync.geometry import mouth_opening
from engine.lipsync.metrics import sync_meter
from engine.lipsync.model import (
    SLICES,
    PriorModel,
    Rows,
    SpeakerModel,
    TrackNorm,
    energy_fallback,
    fit_prior,
    fit_speaker_model,
    pool_window,
    prior_rows_per_speaker,
)
from engine.lipsync.shape import ShapeModel, fit_shape_model
from engine.lipsync.synth import BANK_BUDGET, BankWriter, TextureBank, choose_bank_frames, match_features
from engine.pipeline.tracks import FaceTrack
from engine.runtime.jobs import CancelToken, ProgressFn, ProgressReporter, check_cancel
from engine.runtime.paths import cache_dir
from engine.runtime.rowfile import FileRows

log = logging.getLogger("lipdub.pipeline.fit")

CONTEXT_S = 0.5
MIN_SPEECH_FRAMES = 75  # ~3 s: less than this and the speaker's own regression is not trusted
# How far the audio-to-mouth lag of a speaker is searched, each way. Measured on the clips here, the
# best lag differs per clip from -80 to +150 ms (the file's own audio/video offset plus how far the
# speaker's lips lead the sound); a prior shared across speakers cannot know it.
MAX_LAG_S = 0.12


# A track whose 16 kHz samples take more than this (about 4.4 minutes) is decoded into a temporary
# file and read a block at a time by the feature, speech and energy passes.
SAMPLES_IN_FILE_ABOVE_BYTES = 16 * 2**20


@dataclass
class AudioTrack:
    """A track's 16 kHz mono samples and where its first sample sits on the video clock."""

    samples: np.ndarray | FileRows  # a long track's in a temporary file (read by slices)
    offset_s: float = 0.0


class DesignRows:
    """A track's model input rows, computed from its Whisper vectors when they are read.

    Row ``i`` is :func:`engine.lipsync.model.pool_window` of the vectors in the ``CONTEXT_S`` window
    around video frame ``index[i]`` (every frame of the video when there is no index). A long track
    keeps its vectors (2 kB per 20 ms) instead of its rows (10 kB per video frame), and readers that
    go through the rows a block at a time (ridge fitting, prediction) never hold them all. Reads
    like a read-only float32 array of shape (n, D): ``rows[i]``, ``rows[a:b]``, ``rows[int or bool
    array]``, ``np.asarray(rows)``; :meth:`take` gives a view of some rows without computing them."""

    ndim = 2
    dtype = np.dtype(np.float32)
    BLOCK = 512  # rows computed at once (a divisor of the model's ROW_BLOCK: no split blocks)

    def __init__(self, feats: WhisperFeatures, norm: TrackNorm, frame_times: np.ndarray, offset_s: float,
                 index: np.ndarray | None = None) -> None:
        self._feats = feats
        self._norm = norm
        self._times = np.asarray(frame_times, np.float64)
        self._offset = float(offset_s)
        self._index = None if index is None else np.asarray(index, np.int64)
        n = len(self._times) if self._index is None else len(self._index)
        self.shape = (n, SLICES * int(feats.vectors.shape[1]))

    def __len__(self) -> int:
        return self.shape[0]

    def _positions(self, key: object) -> np.ndarray:
        n = len(self)
        if isinstance(key, tuple):
            raise TypeError("design rows are read whole: index them by rows only")
        if isinstance(key, slice):
            pos = np.arange(n)[key]
        else:
            a = np.asarray(key)
            if a.dtype == bool:
                if a.shape != (n,):
                    raise IndexError(f"a boolean index over {n} rows has shape {a.shape}")
                pos = np.flatnonzero(a)
            elif a.ndim == 1 and (a.dtype.kind in "iu" or a.size == 0):
                pos = a.astype(np.int64)
                if pos.size and (pos.min() < -n or pos.max() >= n):
                    raise IndexError(f"row index out of range for {n} rows")
                pos = np.where(pos < 0, pos + n, pos)
            else:
                raise TypeError(f"design rows take a slice, an int or a 1-d int or bool array, not {key!r}")
        return pos if self._index is None else self._index[pos]

    def take(self, key: object) -> DesignRows:
        """The rows ``key`` selects, as rows computed when read."""
        return DesignRows(self._feats, self._norm, self._times, self._offset, self._positions(key))

    def __getitem__(self, key: object) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self[np.asarray([key])][0]
        frames = self._positions(key)
        out = np.empty((len(frames), self.shape[1]), np.float32)
        for i in range(0, len(frames), self.BLOCK):
            win = features_at_frames(self._feats, self._times[frames[i : i + self.BLOCK]], self._offset, CONTEXT_S)
            out[i : i + self.BLOCK] = pool_window(win, self._norm)
        return out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype, copy=False)


Design = np.ndarray | DesignRows


def select_rows(design: Rows, rows: np.ndarray) -> Rows:
    """``design[rows]``, left uncomputed for :class:`DesignRows` (no copy of a long track's rows)."""
    return design.take(rows) if isinstance(design, DesignRows) else design[rows]


@dataclass
class TrackSignals:
    """What the engine needs of one audio track, per video frame."""

    design: Design  # (n_frames, D) model input rows
    speech: np.ndarray  # (n_frames,) bool, VAD
    energy_db: np.ndarray  # (n_frames,) 1.8-4.5 kHz band energy
    fps: float = 25.0  # the video's frame rate (median over the frame-time table)
    frame_times: np.ndarray | None = None  # (n_frames,) seconds: the frame-time table


def track_signals(
    audio: AudioTrack,
    frame_times: np.ndarray,
    cancel: CancelToken | None = None,
    progress: ProgressFn | None = None,
) -> TrackSignals:
    """Whisper features (cached per track), VAD and band energy of a track at every video frame.
    The model rows are :class:`DesignRows`: computed from the vectors when read."""
    from engine.audio.vad import detect_speech, speech_mask

    # Debiased: without the part of the encoder output that depends only on the position in its 30 s
    # window, which would otherwise look like a slow trend over the track.
    # The vectors are this call's own (fresh, or just read from the cache): debiased where they lie.
    feats = whisper_features(audio.samples, progress=progress, cancel=cancel).debiased(in_place=True)
    check_cancel(cancel)
    vad = detect_speech(audio.samples, cancel=cancel)
    speech = speech_mask(vad.segments, frame_times, audio.offset_s)
    vec_times = np.arange(len(feats.vectors)) / feats.rate_hz
    norm = TrackNorm.from_vectors(feats.vectors, speech_mask(vad.segments, vec_times))
    energy = band_energy_db(audio.samples, frame_times, audio.offset_s)
    return TrackSignals(DesignRows(feats, norm, frame_times, audio.offset_s), speech, energy, frame_rate(frame_times),
                        np.asarray(frame_times, np.float64))


def frame_rate(frame_times: np.ndarray) -> float:
    """Frames per second from a frame-time table (median step; 25 when it has under two frames)."""
    steps = np.diff(np.asarray(frame_times, np.float64))
    steps = steps[steps > 0]
    return float(1.0 / np.median(steps)) if len(steps) else 25.0


def energy_z(energy_db: np.ndarray, speech: np.ndarray) -> np.ndarray:
    e = np.asarray(energy_db, np.float64)
    ref = e[speech] if int(np.sum(speech)) >= 10 else e
    return (e - np.median(ref)) / (np.std(ref) + 1e-6)


def lag_rows(n: int, lag: int) -> np.ndarray:
    """Row indices that read the audio ``lag`` frames later than each frame (positive: the mouth leads
    the sound), held at the ends."""
    return np.clip(np.arange(n) + int(lag), 0, max(0, n - 1))


def lag_candidates(fps: float, max_lag_s: float = MAX_LAG_S) -> range:
    m = max(1, round(max_lag_s * fps))
    return range(-m, m + 1)


def estimate_lag(
    design: Rows,
    energy_db: np.ndarray,
    frames: np.ndarray,
    opening: np.ndarray,
    fps: float,
    prior: PriorModel | None = None,
) -> int:
    """The audio-to-mouth lag in frames (positive: the mouth leads) that best lines this speaker's
    ``opening`` at ``frames`` up with the audio.

    With a prior (learned from other speakers, so nothing of this speaker is fitted), the lag whose
    prior prediction correlates best with the real opening; without one, the lag that lines the
    opening up with the 1.8-4.5 kHz band energy."""
    frames = np.asarray(frames, np.int64)
    op = np.asarray(opening, np.float64)
    if len(frames) < 25 or np.std(op) == 0:
        return 0
    n = len(design)
    # The prior's prediction (or the band energy) once per frame that some lag reads; each lag reads
    # it shifted. Only those rows are computed (design rows are computed when read).
    if prior is not None:
        reach = np.unique(np.concatenate([lag_rows(n, lag)[frames] for lag in lag_candidates(fps)]))
        signal = np.zeros(n)
        signal[reach] = prior.predict(select_rows(design, reach))
    else:
        signal = np.asarray(energy_db, np.float64)

    def score(lag: int) -> float:
        pred = signal[lag_rows(n, lag)[frames]]
        if np.std(pred) == 0:
            return -np.inf
        return float(np.corrcoef(pred, op)[0, 1])

    scores = {lag: score(lag) for lag in lag_candidates(fps)}
    best = max(scores, key=lambda k: (scores[k], -abs(k)))
    return int(best) if np.isfinite(scores[best]) else 0


# -- who speaks when ---------------------------------------------------------------------------------


def active_speaker(tracks: list[FaceTrack], energy_db: np.ndarray, speech: np.ndarray, fps: float) -> dict[str, np.ndarray]:
    """Per identity, the frames (bool over the video) where that face is the one speaking.

    Alone on screen during speech: that face. With several faces: the one whose mouth opening follows
    the 1.8-4.5 kHz band energy best over a 3 s window (mouth leading the sound by up to 100 ms)."""
    n = len(speech)
    present = {}
    opening = {}
    for t in tracks:
        present[t.identity] = t.usable_at(n)[0]
        opening[t.identity] = t.openings(n)
    out = {t.identity: np.zeros(n, bool) for t in tracks}
    if not tracks:
        return out
    ids = [t.identity for t in tracks]
    count = np.sum([present[i] for i in ids], axis=0)
    half = max(5, round(1.5 * fps))
    lag = max(1, round(0.07 * fps))
    e = np.asarray(energy_db, np.float64)
    scores = np.full((len(ids), n), -np.inf)
    for k, i in enumerate(ids):
        op = opening[i]
        shifted = np.full(n, np.nan)
        shifted[lag:] = op[: n - lag]  # mouth leads: the opening at t - lag against the energy at t
        for f in np.flatnonzero(speech & (count > 1) & present[i]):
            lo, hi = max(0, f - half), min(n, f + half + 1)
            a, b = shifted[lo:hi], e[lo:hi]
            good = np.isfinite(a)
            if good.sum() >= 10 and np.std(a[good]) > 0 and np.std(b[good]) > 0:
                scores[k, f] = np.corrcoef(a[good], b[good])[0, 1]
    best = np.argmax(scores, axis=0)
    for k, i in enumerate(ids):
        alone = speech & present[i] & (count == 1)
        shared = speech & present[i] & (count > 1) & (best == k) & np.isfinite(scores[k])
        out[i] = alone | shared
    return out


# -- the speaker library (a prior learned from the speakers the user has processed) --------------------


# What a library entry's design rows are; entries made with other features or windows are skipped.
LIBRARY_FORMAT = f"{FEATURES_VERSION}|context {CONTEXT_S}|slices {SLICES}"


def library_dir() -> Path:
    return cache_dir("speakers")


def library_key(video_key: str, identity: str) -> str:
    return hashlib.sha256(f"{video_key}|{identity}".encode()).hexdigest()[:24]


# Rows a prior takes from all its speakers together (fit_prior), and the most one library entry keeps:
# with two or more speakers a prior never reads more of one than this, so a long video's entry is
# evenly thinned to it rather than stored (and loaded) whole.
PRIOR_ROWS = 2000
LIBRARY_MAX_ROWS = PRIOR_ROWS


def spread_rows(n: int, count: int) -> np.ndarray:
    """``count`` row positions spread evenly over ``n`` rows (all of them when ``n <= count``)."""
    return np.linspace(0, n - 1, min(n, count)).astype(int)


def save_to_library(key: str, design: Rows, opening: np.ndarray, directory: Path | None = None) -> None:
    """Store a speaker's speaking frames (model input rows, z-scored opening) for future priors:
    at most ``LIBRARY_MAX_ROWS`` of them, spread evenly over the speech."""
    if len(design) < 25:
        return
    z = (opening - opening.mean()) / (opening.std() + 1e-6)
    keep = spread_rows(len(design), LIBRARY_MAX_ROWS)
    folder = directory or library_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.npz"
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, x=design[keep].astype(np.float16), y=z[keep].astype(np.float32), format=np.array(LIBRARY_FORMAT))
    tmp.replace(path)


def load_prior(
    exclude: set[str] | frozenset[str] = frozenset(), max_speakers: int = 30, directory: Path | None = None
) -> PriorModel | None:
    """The prior from the speaker library, leaving out the speakers named in ``exclude``. Each entry
    is thinned as it is loaded to the rows the prior takes from it (:func:`fit_prior`): the prior is
    the one fitted from the stored entries whole. (A long speaker's entry is stored already thinned
    to ``LIBRARY_MAX_ROWS``, so its prior rows are spread over those, not over all of its speech.)"""
    folder = directory or library_dir()
    chosen: list[tuple[str, Path]] = []
    for p in sorted(folder.glob("*.npz")):
        key = p.name.split(".")[0]
        if len(chosen) >= max_speakers:
            break
        if key in exclude:
            continue
        try:
            with np.load(p) as z:  # reads the format alone, not the rows
                if "format" not in z.files or str(z["format"]) != LIBRARY_FORMAT:
                    log.debug("skipping speaker library entry %s: made with other audio features", p)
                    continue
        except (OSError, ValueError, KeyError) as exc:
            log.warning("skipping unreadable speaker library entry %s: %s", p, exc)
            continue
        chosen.append((key, p))
    # (An entry that passed the check but cannot be read now leaves its share unused: fit_prior takes
    # every row of the thinned entries, which is no more than its own share of them.)
    per = prior_rows_per_speaker(len(chosen))
    entries: list[tuple[str, np.ndarray, np.ndarray]] = []
    for key, p in chosen:
        try:
            with np.load(p) as z:
                x, y = z["x"], z["y"]
        except (OSError, ValueError, KeyError) as exc:
            log.warning("skipping unreadable speaker library entry %s: %s", p, exc)
            continue
        keep = spread_rows(len(x), per)
        entries.append((key, x[keep].astype(np.float32), y[keep]))
    return fit_prior(entries, PRIOR_ROWS)


# -- fitting ----------------------------------------------------------------------------------------


@dataclass
class SpeakerFit:
    """Everything rendering a speaker needs."""

    identity: str
    shape: ShapeModel
    model: SpeakerModel
    bank: TextureBank
    speech_opening: np.ndarray  # the speaker's opening over its speaking frames (range, statistics)
    train_frames: np.ndarray
    speaking_frames: np.ndarray
    library_key: str | None = None
    speech_code_std: np.ndarray | None = None  # per component, over the speaker's speaking frames
    lag_frames: int = 0  # audio read this many frames later than each frame (positive: mouth leads)
    own_sync: tuple[float, float] | None = None  # (r, z) of the real mouth against its own audio's band energy
    opening_dir: np.ndarray | None = None  # (C,) code change per unit of mouth opening, speaking frames
    speech_speed: float | None = None  # mean |change| of the tracked opening per frame while speaking


def fit_motion(
    track: FaceTrack,
    signals: TrackSignals,
    speaking: np.ndarray,
    train: np.ndarray | None = None,
    prior: PriorModel | None = None,
    n_components: int = 8,
    library_key_: str | None = None,
) -> SpeakerFit:
    """The speaker's motion: shape model, lag and audio -> shape model, fitted on the frames in
    ``train`` (bool over the video; default all). No pixels are read: the returned fit's texture bank
    is empty (:func:`fit_speaker` fills it), which is all that target shapes need."""
    n = len(signals.speech)
    ok, pose = track.usable_at(n)
    if train is not None:
        ok &= np.asarray(train, bool)
    frames = np.flatnonzero(ok)
    if len(frames) < 10:
        from engine.errors import BadInputError

        raise BadInputError(f"face {track.identity} is usable on only {len(frames)} frames: nothing to learn from")
    # The training faces' landmarks are widened to float64 a block at a time, never all at once.
    lm = track.landmark_rows(frames)
    silent = ~signals.speech[frames]
    shape = fit_shape_model(lm, n_components, silent=silent)
    codes = np.concatenate([shape.encode_landmarks(b) for b in lm.blocks()])
    opening = np.concatenate([mouth_opening(b) for b in lm.blocks()])
    spk = np.asarray(speaking, bool)[frames]
    lag = estimate_lag(signals.design, signals.energy_db, frames[spk], opening[spk], signals.fps, prior)
    # The speaking frames' rows, read by the fit a block at a time (a long video's rows are its
    # largest data: never all in memory at once).
    x = select_rows(signals.design, lag_rows(n, lag)[frames[spk]])
    if int(spk.sum()) >= MIN_SPEECH_FRAMES:
        model = fit_speaker_model(x, codes[spk], shape.scale, prior)
    elif prior is not None:
        model = fit_speaker_model(x, codes[spk], shape.scale, prior, min_frames=MIN_SPEECH_FRAMES)
    else:
        ref = spk if spk.sum() >= 3 else np.ones(len(frames), bool)
        model = energy_fallback(codes[ref], opening[ref], shape.scale, shape.rest)
    log.info("speaker %s: %d training frames, %d speaking, model %s, lag %+d frames", track.identity, len(frames),
             int(spk.sum()), model.kind, lag)
    if library_key_ and int(spk.sum()) >= MIN_SPEECH_FRAMES:
        save_to_library(library_key_, x, opening[spk])
    ref = codes[spk] if int(spk.sum()) >= 10 else codes
    ref_op = opening[spk] if int(spk.sum()) >= 10 else opening
    direction = None
    if len(ref_op) >= 10 and np.std(ref_op) > 0:
        direction = np.linalg.lstsq(np.stack([ref_op, np.ones_like(ref_op)], 1), ref, rcond=None)[0][0]
    real = np.full(n, np.nan)
    real[frames] = opening
    meter = sync_meter(real, signals.energy_db, signals.fps)
    own = (meter.r, meter.z) if np.isfinite(meter.z) else None
    empty = BankWriter(frames[:0], codes[:0], pose[:0], np.zeros((0, 468, 2)), (1, 1)).finish()
    return SpeakerFit(track.identity, shape, model, empty, opening[spk] if spk.any() else opening,
                      frames, frames[spk], library_key_, ref.std(0), lag, own, direction,
                      speaking_speed(shape, codes[spk], frames[spk]))


def speaking_speed(shape: ShapeModel, codes: np.ndarray, frames: np.ndarray) -> float | None:
    """How fast the speaker's tracked mouth opens and closes while speaking: mean |change| of the
    opening from one frame to the next, over pairs of consecutive speaking ``frames`` (None with under
    10 pairs). The codes are the tracker's (one-euro smoothed) landmarks', as every re-measured mouth's
    are. Per frame, not per second: the render keeps the source's frames."""
    pairs = np.flatnonzero(np.diff(np.asarray(frames)) == 1)
    if len(pairs) < 10:
        return None
    op = shape.code_opening(codes)
    return float(np.mean(np.abs(op[pairs + 1] - op[pairs])))


def fit_speaker(
    video_path: str | Path,
    track: FaceTrack,
    signals: TrackSignals,
    speaking: np.ndarray,
    train: np.ndarray | None = None,
    prior: PriorModel | None = None,
    n_components: int = 8,
    bank_path: Path | None = None,
    library_key_: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    bank_budget: int = BANK_BUDGET,
) -> SpeakerFit:
    """Fit one speaker on the frames in ``train`` (bool over the video; default all): its motion
    (:func:`fit_motion`) and its texture bank.

    ``speaking``: bool over the video, frames where this face speaks (VAD + active speaker).
    Decodes the training frames once to fill the texture bank (on disk at ``bank_path`` if given);
    beyond ``bank_budget`` frames the bank keeps the runs that cover the speaker's shapes and poses."""
    from engine.media.reader import VideoReader

    fit = fit_motion(track, signals, speaking, train, prior, n_components, library_key_)
    frames = fit.train_frames
    pose = track.pose[track.rows_of(frames)]  # training frames are track frames
    # The texture is placed by the landmarks of its own frame (unsmoothed), and its code says what
    # that texture shows. Long footage keeps a bounded bank (disk, retrieval time).
    codes = np.concatenate([fit.shape.encode_landmarks(track.raw_at(frames[i : i + 2048]))
                            for i in range(0, len(frames), 2048)])
    # The resting mouth at the footage's typical head pose.
    rest = match_features(fit.shape.rest[None], np.median(pose, axis=0)[None], fit.shape.scale)[0]
    keep = choose_bank_frames(frames, match_features(codes, pose, fit.shape.scale), bank_budget, rest=rest)
    if len(keep) < len(frames):
        log.info("speaker %s: texture bank keeps %d of %d frames", track.identity, len(keep), len(frames))
    frames, pose, codes = frames[keep], pose[keep], codes[keep]
    raw = track.raw_at(frames)
    # Texture bank: one forward decode of the bank's frames (a long video's bank is a few thousand frames
    # in runs: the decoder seeks over the gaps between them and converts only the frames kept).
    reporter = ProgressReporter(progress, "texture", len(frames))
    with VideoReader(video_path, pixel_format="bgr24") as reader:
        h, w = reader.shape[:2]
        writer = BankWriter(frames, codes, pose, raw, (h, w), bank_path)
        done = 0
        try:
            for i, img in reader.iter_frames_at(frames, lambda: check_cancel(cancel)):
                writer.add(i, img)
                done += 1
                reporter.update(done)
        except BaseException:
            writer.discard()
            raise
    reporter.finish()
    return replace(fit, bank=writer.finish())


def match_motion(codes: np.ndarray, speech: np.ndarray, real_std: np.ndarray | None, max_gain: float = 2.0) -> np.ndarray:
    """Give the predicted codes the speaker's own amount of motion during speech.

    Regression shrinks its predictions towards the mean, so a predicted mouth moves less than the
    real one (measured here: opening std and speed about 0.7 of the speaker's). Each component's
    deviation from its mean over the track's speech is scaled up to the speaker's speaking std
    (never down, at most ``max_gain``)."""
    sp = np.asarray(speech, bool)
    if real_std is None or int(sp.sum()) < 10:
        return codes
    mean = codes[sp].mean(0)
    pred_std = codes[sp].std(0) + 1e-9
    gain = np.clip(real_std / pred_std, 1.0, max_gain)
    return mean + (codes - mean) * gain


def tracked_opening(shape: ShapeModel, codes: np.ndarray, fps: float, times: np.ndarray | None = None) -> np.ndarray:
    """The opening a tracker would report for a mouth that moves exactly through ``codes``: the inner
    lip points filtered as the face analysis filters every landmark (one-euro, its settings; the
    canonical frame is in eye distances, the unit the analysis filters in). ``times``: each row's
    time in seconds (the frame-time table, as the analysis uses); default ``i / fps``.

    The head is taken as still. The analysis filters image points, whose speed includes the head's
    motion, and a moving head raises the filter's cutoff: on footage with much head motion the
    tracker keeps more of the lips' speed than this says."""
    from engine.faces.analysis import AnalysisSettings
    from engine.faces.smoothing import OneEuroFilter

    settings = AnalysisSettings()
    f = OneEuroFilter(settings.smooth_min_cutoff, settings.smooth_beta)
    pts = shape.lip_points(codes)
    out = np.empty_like(pts)
    t = np.arange(len(pts)) / max(float(fps), 1e-6) if times is None else np.asarray(times, np.float64)
    for i in range(len(pts)):
        out[i] = f(pts[i], float(t[i]))
    return np.hypot(out[:, 0] - out[:, 2], out[:, 1] - out[:, 3])


# The speaking speed is matched by scaling the codes' fast part (their deviation from a running mean
# of this width, Gaussian sigma in seconds: the syllable-rate motion) and the slow part (the rest),
# the two gains chosen together so that both the speed and the opening's spread come as close to the
# speaker's as they can. Gains are searched on a grid inside these bounds: a prediction that hardly
# moves is not blown up into noise, nor a busy one frozen.
SPEED_SPLIT_S = 0.15
SPEED_GAINS = np.geomspace(0.4, 2.5, 13)  # 1.0 in the middle
SPREAD_GAINS = np.geomspace(0.7, 1 / 0.7, 9)
# How far the opening's spread may move to meet the speed (log ratio): the amount of motion is
# the speaker's already (match_motion).
SPREAD_TOLERANCE = float(np.log(1.1))
# A target whose speed is within this of the speaker's (log ratio) is left alone.
SPEED_TOLERANCE = float(np.log(1.1))
# Speed is estimated on at most this many seconds of the track (whole runs of frames, spread over it):
# the estimate is a mean, and the tracker's filter runs frame by frame.
SPEED_SAMPLE_S = 120.0


def speed_gains(
    fit: SpeakerFit, codes: np.ndarray, moving: np.ndarray, fps: float, times: np.ndarray | None = None,
    accept: Callable[[np.ndarray], bool] | None = None,
) -> tuple[float, float]:
    """The (fast, slow) gains :func:`match_speed` applies; (1, 1) where there is nothing to match."""
    return _speed_gains(fit, _SpeedSplit(codes, moving, fps), moving, fps, times, accept)


class _SpeedSplit:
    """Codes as their mean over the moving frames, a slow part (Gaussian running mean of
    ``SPEED_SPLIT_S``) and a fast part (the rest), recombined with a gain on each."""

    def __init__(self, codes: np.ndarray, moving: np.ndarray, fps: float) -> None:
        from scipy.ndimage import gaussian_filter1d

        c = np.asarray(codes, np.float64)
        mv = np.asarray(moving, bool)
        self.codes = c
        self.slow = gaussian_filter1d(c, SPEED_SPLIT_S * fps, axis=0, mode="nearest")
        self.fast = c - self.slow
        self.mean = c[mv].mean(0) if mv.any() else c.mean(0)

    def mix(self, g_fast: float, g_slow: float, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        return self.mean + g_slow * (self.slow[rows] - self.mean) + g_fast * self.fast[rows]


def _speed_gains(
    fit: SpeakerFit, split: _SpeedSplit, moving: np.ndarray, fps: float, times: np.ndarray | None,
    accept: Callable[[np.ndarray], bool] | None,
) -> tuple[float, float]:
    mv = np.asarray(moving, bool)
    real = fit.speech_speed
    n = len(mv)
    if real is None or real <= 0 or int(np.sum(mv[1:] & mv[:-1])) < 10:
        return 1.0, 1.0
    # The frames the speed is estimated on: the whole track, or runs of 10 s spread over it.
    budget = max(int(SPEED_SAMPLE_S * fps), 10)
    if n <= budget:
        sample = np.arange(n)
    else:
        run = max(min(int(10 * fps), budget), 2)
        starts = np.linspace(0, n - run, max(budget // run, 1)).astype(np.int64)
        sample = np.unique((starts[:, None] + np.arange(run)[None, :]).ravel())
    mv_s = mv[sample]
    pairs = np.flatnonzero(mv_s[1:] & mv_s[:-1] & (np.diff(sample) == 1))
    aim_spread = float(np.std(fit.shape.code_opening(split.codes[mv])))
    if len(pairs) < 10 or aim_spread <= 0:
        return 1.0, 1.0
    sample_times = None if times is None else np.asarray(times, np.float64)[sample]
    best, best_cost = (1.0, 1.0), np.inf
    for g_fast in SPEED_GAINS:
        for g_slow in SPREAD_GAINS:
            spread = float(np.std(fit.shape.code_opening(split.mix(g_fast, g_slow, mv))))
            # The spread is cheap and bounded: the filter runs only for gains that keep it.
            off = abs(np.log(max(spread, 1e-9) / aim_spread))
            if off > SPREAD_TOLERANCE:
                continue
            cost = 0.25 * off**2 + 1e-3 * (np.log(g_fast) ** 2 + np.log(g_slow) ** 2)
            if cost >= best_cost:
                continue
            op = tracked_opening(fit.shape, split.mix(g_fast, g_slow, sample), fps, sample_times)
            speed = float(np.mean(np.abs(op[pairs + 1] - op[pairs])))
            # Within SPEED_TOLERANCE of the speaker's speed counts as met: no gain for nothing.
            cost += max(abs(np.log(max(speed, 1e-9) / real)) - SPEED_TOLERANCE, 0.0) ** 2
            if cost >= best_cost:
                continue
            if accept is not None and (g_fast, g_slow) != (1.0, 1.0) and not accept(split.mix(g_fast, g_slow)):
                continue
            best, best_cost = (float(g_fast), float(g_slow)), cost
    return best


def match_speed(
    fit: SpeakerFit, codes: np.ndarray, moving: np.ndarray, fps: float, times: np.ndarray | None = None,
    accept: Callable[[np.ndarray], bool] | None = None,
) -> np.ndarray:
    """Give the predicted codes the speaker's own speed of articulation over the ``moving`` frames
    (speech not at rest), keeping the opening's spread.

    The amount of motion (:func:`match_motion`) does not fix its speed: the audio model's prediction
    moves too slowly for some speakers (its syllable-rate part is damped) and too fast for others
    (the articulation push). Speed is compared as the face analysis would measure it, on the tracked
    (one-euro smoothed) opening: the speaker's from their footage (:func:`speaking_speed`), the
    target's through the same filter (:func:`tracked_opening`). A speed within ``SPEED_TOLERANCE``
    of the speaker's is left as it is; otherwise the codes' fast and slow parts are scaled (gains
    searched on a grid) so that the speed comes as close to that band as it can with the opening's
    spread within ``SPREAD_TOLERANCE`` of its own, and (``accept``, given the rescaled codes)
    whatever else the caller requires. ``times``: the frame-time table."""
    split = _SpeedSplit(codes, moving, fps)
    g_fast, g_slow = _speed_gains(fit, split, moving, fps, times, accept)
    if g_fast == 1.0 and g_slow == 1.0:
        return codes
    return split.mix(g_fast, g_slow)


def target_codes(
    fit: SpeakerFit, signals: TrackSignals, fps: float, smooth_sigma_frames: float = 1.0, calibrate: bool = True,
    speed: bool = True,
) -> np.ndarray:
    """Shape codes per video frame for a track: the model's prediction at the speaker's lag, smoothed
    without lag, given the speaker's own amount of motion, (``calibrate``) their own closeness to
    the syllable rhythm and (``speed``) their own speed of articulation, and the resting mouth
    wherever the track is silent for 0.3 s or more."""
    from engine.lipsync.model import rest_weights
    from engine.lipsync.shape import smooth_codes

    rows = lag_rows(len(signals.speech), fit.lag_frames)
    if fit.model.kind == "energy":
        codes = fit.model.predict(None, energy_z(signals.energy_db, signals.speech)[rows])
    else:
        codes = fit.model.predict(signals.design)[rows]  # row by row: no copy of the rows
    codes = smooth_codes(codes, smooth_sigma_frames)
    w = rest_weights(signals.speech, fps)[:, None]

    def rest(c: np.ndarray) -> np.ndarray:
        return (1 - w) * c + w * fit.shape.rest[None, :]

    def finish(c: np.ndarray) -> np.ndarray:
        return rest(match_motion(c, signals.speech, fit.speech_code_std))

    if calibrate and fit.model.kind != "energy":
        codes = calibrate_articulation(fit, codes, signals, fps, finish, smooth_sigma_frames)
    if not speed:
        return finish(codes)
    moving = signals.speech & (w[:, 0] == 0)
    base = match_motion(codes, signals.speech, fit.speech_code_std)
    accept = None
    if fit.own_sync is not None:
        # The articulation's ceiling holds through the speed: a faster mouth must not follow the
        # loudness more than the real mouth did (plus the margin), unless it already did before.
        def loudness_r(c: np.ndarray) -> float:
            return float(sync_meter(fit.shape.code_opening(rest(c)), signals.energy_db, fps).r)

        limit = max(fit.own_sync[0] + ARTICULATION_R_MARGIN, loudness_r(base))

        def accept(c: np.ndarray) -> bool:
            return not loudness_r(c) > limit

    return rest(match_speed(fit, base, moving, signals.fps, signals.frame_times, accept))


# How much more the articulation may follow the track's band energy than the speaker's real mouth
# followed theirs: the sync score aimed at (z above the speaker's own) and the ceiling on the
# correlation (a mouth that follows loudness much more closely than the real one looks robotic).
# The ceiling is the natural-motion limit of QUALITY.md (the real mouth's r plus 0.2), taken on the
# target before rendering: the rendered mouth, re-measured, follows the loudness less than its target
# (vox_goatee's dub: target 0.42, render 0.30). Where renders exceed the limit, their dubs' silences
# do it, not the push (the eval's misses were the same at 0.15). At 0.15 the ceiling stopped
# vox_beard_threequarter's dub at sync z 1.87 by dlib; at 0.2 it renders at 2.02.
ARTICULATION_Z_MARGIN = 1.0
ARTICULATION_R_MARGIN = 0.2
ARTICULATION_MAX_GAIN = 2.0
# The push carries the band energy's syllable-rate part only: its movement around a running mean of
# this width (Gaussian sigma, seconds). Phrase-level loudness (a voice getting louder towards the end
# of a sentence) is not mouth opening, and the audio model already gives the slow part of the mouth.
ARTICULATION_HIGHPASS_S = 0.25
# The push is smoothed in time (Gaussian sigma, seconds) a little more than the prediction: the band
# energy of a noisy track flickers from frame to frame, and that flicker showed as jitter
# (radio_glasses' dub with meeting noise: 1.26x the source's jitter at one frame, 1.17x at 50 ms).
ARTICULATION_SMOOTH_S = 0.05


def articulation_push(energy_db: np.ndarray, speech: np.ndarray, fps: float) -> np.ndarray:
    """Per frame, the syllable rhythm of a track: the 1.8-4.5 kHz band energy minus its running mean
    over the speech around it (``ARTICULATION_HIGHPASS_S``), in units of its spread over speech, read
    70 ms ahead (the mouth leads the sound), clipped to +-2.5 and zero outside speech.

    The running mean is taken over speech frames only: with the silences' energy floor in it, the
    first and last syllables of every phrase would stand far above their mean and open the mouth
    wide at each phrase's edges."""
    from scipy.ndimage import gaussian_filter1d

    sp = np.asarray(speech, bool)
    n = len(sp)
    if n == 0 or not sp.any():
        return np.zeros(n)
    ez = energy_z(energy_db, sp)
    sigma = ARTICULATION_HIGHPASS_S * max(float(fps), 1.0)
    weight = gaussian_filter1d(sp.astype(np.float64), sigma, mode="nearest")
    local = gaussian_filter1d(np.where(sp, ez, 0.0), sigma, mode="nearest") / np.maximum(weight, 1e-6)
    ez = np.where(sp, ez - local, 0.0)
    # A floor under the spread: a nearly constant track has no rhythm to blow up to full scale.
    ez = ez / max(float(np.std(ez[sp])), 0.05)
    return np.clip(ez[lag_rows(n, round(0.07 * fps))], -2.5, 2.5) * sp


def calibrate_articulation(
    fit: SpeakerFit, codes: np.ndarray, signals: TrackSignals, fps: float, finish: Callable[[np.ndarray], np.ndarray],
    smooth_sigma_frames: float = 1.0,
) -> np.ndarray:
    """Make the mouth follow the track's own syllable rhythm as closely as the speaker's real mouth
    followed theirs.

    The speaker model is fitted on one voice; a dub is another voice, often another language, and
    its predictions come out damped and loosely timed there. The speaker's real mouth follows the
    1.8-4.5 kHz band energy of their own audio with a measurable strength (QUALITY.md's sync meter).
    Here the predicted opening gets the track's syllable rhythm (:func:`articulation_push`) added
    along the speaker's own opening direction, with the smallest gain that gives the track that same
    strength (plus a margin). The gain stops growing where the sync score stops rising and where the
    mouth would correlate with loudness more than ``ARTICULATION_R_MARGIN`` above the real mouth.

    Returns the codes with the push added; the score is measured on ``finish`` of them (the codes as
    rendered: the speaker's amount of motion, the rests)."""
    from engine.lipsync.shape import smooth_codes

    own = fit.own_sync
    direction = fit.opening_dir
    n = len(codes)
    if own is None or direction is None or n < 8 or int(np.sum(signals.speech)) < 10:
        return codes
    own_r, own_z = own
    sigma = float(np.std(fit.speech_opening)) if len(fit.speech_opening) > 2 else 0.0
    push = articulation_push(signals.energy_db, signals.speech, fps)[:, None] * (sigma * direction)[None, :]
    # Smoothed (ARTICULATION_SMOOTH_S): the energy's frame-to-frame noise would otherwise show as jitter.
    push = smooth_codes(push, max(smooth_sigma_frames, ARTICULATION_SMOOTH_S * fps))
    best, best_z = codes, -np.inf
    for gain in np.concatenate([[0.0], np.geomspace(0.02, 1.0, 24) * ARTICULATION_MAX_GAIN]):
        pushed = codes if gain == 0 else codes + gain * push
        meter = sync_meter(fit.shape.code_opening(finish(pushed)), signals.energy_db, fps)
        if not np.isfinite(meter.r):
            break
        # Past the first gain where the score falls, more gain only replaces the predicted mouth
        # with the loudness (measured: a later, higher peak costs the held-out mouth more than it
        # gives the dubs).
        if gain > 0 and (meter.r > own_r + ARTICULATION_R_MARGIN or meter.z < best_z):
            break
        best, best_z = pushed, meter.z
        if meter.z >= own_z + ARTICULATION_Z_MARGIN:
            break
    return best
