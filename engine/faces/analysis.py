"""Whole-video face analysis: who is on screen, where, and how their face moves, frame by frame.

Public API (re-exported by :mod:`engine.faces`)::

    result = analyse("clip.mp4", backend=None, progress=fn, cancel=token)   # -> FaceAnalysis (cached)
    for person in result.identities:                                        # -> Identity
        person.id, person.time_ranges, person.thumbnail, person.frames, person.landmarks
    result.faces_at(120)                                                    # -> list[FaceObservation]
    result.save(path); FaceAnalysis.load(path)

How it works, per frame: a shot-cut check on a small grey copy (a cut ends every track; black or
uniform frames are skipped and never count as cuts); each live track is followed by running the
landmark model on the ROI its previous landmarks give; the detector runs only when a track was lost, no
face is tracked, after a cut, or every ``detect_every`` frames to pick up newcomers (on large frames a
tiled pass for small faces joins it every ``small_every`` frames); observations are assigned to tracks
by :class:`engine.faces.tracker.Tracker`. Landmarks are one-euro smoothed per track (the raw ones are
kept too). Identity embeddings are computed sparsely (a track's first usable frame, then every
``embed_every_s`` seconds, less often as the track ages, and when the frame or the face's shape changes
abruptly, to split a track whose face became someone else). Tracks are merged into identities by
embedding distance, never merging two tracks that are on screen together.

Head pose conventions are in :mod:`engine.faces.pose`; quality flags are the ``FLAG_*`` bits below.
``FLAG_LOW_CONFIDENCE`` comes from the landmark model's presence score only: there is no dedicated
mouth-occlusion detector, so a hand in front of the mouth is not reliably flagged.

Memory: frames are streamed; what grows is the result itself (7.5 kB of landmarks per face per frame;
measured peak 240 MiB for 223 frames of 720p and 287 MiB for 1784, see ``bench/faces.py --memory``).
Results are cached under ``cache_dir("faces")``, keyed by the video's content hash, the backend and
:data:`ANALYSIS_VERSION`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.errors import BadInputError
from engine.faces.backend import FaceBackend, get_backend
from engine.faces.landmarks import (
    CHIN,
    LEFT_EYE,
    LOWER_LIP_INNER_MID,
    NOSE_TIP,
    RIGHT_EYE,
    UPPER_LIP_INNER_MID,
    inter_ocular,
    mouth_opening,
)
from engine.faces.pose import pose_from_mesh
from engine.faces.smoothing import OneEuroFilter
from engine.faces.tracker import CutDetector, Observation, Track, Tracker
from engine.faces.types import MeshResult, iou, landmark_box
from engine.runtime.jobs import CancelToken, ProgressFn, ProgressReporter, check_cancel
from engine.runtime.paths import cache_dir
from engine.runtime.rowfile import FileRows, RowFile, RowLog, open_npy_rows, save_npy_rows

log = logging.getLogger("lipdub.faces")

ANALYSIS_VERSION = 1

# Quality flags (bitfield, per face per frame)
FLAG_TOO_SMALL = 1  #: inter-ocular distance under ``AnalysisSettings.min_iod`` pixels
FLAG_PROFILE = 2  #: |yaw| beyond ``AnalysisSettings.max_yaw`` degrees
FLAG_LOW_CONFIDENCE = 4  #: landmark confidence low: mouth likely occluded or the face blurred
FLAG_EDGE = 8  #: some mouth/jaw points are outside the frame (face cut by the edge)

# An identity whose two landmark arrays take more than this (about 2.5 minutes of one face at 30 fps)
# keeps them in files: read by rows (engine.runtime.rowfile), cached as .npy files beside the
# analysis. While the video is processed every face's landmarks go to a temporary log file.
LANDMARKS_IN_FILE_ABOVE_BYTES = 32 * 2**20
_LANDMARK_ROW = (2, 468, 2)  # one log row: the smoothed and the raw landmarks of one face in one frame

_TRACK_POINTS = (RIGHT_EYE[0], LEFT_EYE[0], NOSE_TIP, UPPER_LIP_INNER_MID, LOWER_LIP_INNER_MID, CHIN)


@dataclass
class AnalysisSettings:
    """Tuning of the analysis; part of the cache key."""

    detect_every: int = 10  #: frames between detector runs while every face is tracked
    small_every: int = 30  #: frames between tiled small-face detector passes on large frames
    min_presence: float = 0.5  #: landmark-model presence score under which a track is lost
    max_missed_s: float = 1.0  #: a track survives this long unseen (occlusion, black frames)
    min_track_frames: int = 5  #: shorter tracks are dropped as spurious
    embed_every_s: float = 4.0  #: seconds between a track's first embeddings; the gap grows after 4 of them
    min_iod: float = 12.0  #: pixels; smaller faces are flagged too small
    max_yaw: float = 55.0  #: degrees; beyond it a face is flagged as profile
    low_confidence: float = 0.8  #: landmark presence under this is flagged
    smooth_min_cutoff: float = 1.0  #: one-euro cutoff at rest (Hz)
    smooth_beta: float = 5.0  #: one-euro speed coefficient (per inter-ocular distance per second)
    #: mean landmark jump (eye distances) from one frame to the next that triggers an identity check. With
    #: the built-in mesh's averaged readings a face's own motion stays under 0.015 on 99.3% of the frames
    #: of the 14 real clips, and a face swapped for another at the same spot jumps by 0.020 (0.023 with a
    #: single reading). Every backend uses it; a trigger costs one embedding (limited to
    #: one per half second), and only a far embedding splits the track.
    shape_jump: float = 0.015
    split_factor: float = 1.15  #: a track splits when an embedding is this far beyond the merge distance

    def key(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


@dataclass
class FaceObservation:
    """One identity's face in one frame."""

    identity: int
    track: int
    frame: int
    box: np.ndarray  #: (4,) x0, y0, x1, y1 pixels
    landmarks: np.ndarray  #: (468, 2) float32 pixels, smoothed
    confidence: float
    pose: np.ndarray  #: (3,) yaw, pitch, roll degrees
    flags: int


@dataclass
class Identity:
    """A person: every frame where they are on screen, merged over tracks, gaps and cuts.

    Per-frame arrays are aligned with ``frames`` (sorted frame indices where the person is present).
    A long presence keeps its landmarks in files (``LANDMARKS_IN_FILE_ABOVE_BYTES``): read them by
    rows or slices (``landmarks[i]``, ``landmarks[a:b]``); ``np.asarray`` reads them whole.
    """

    id: int
    frames: np.ndarray  #: (n,) int32
    boxes: np.ndarray  #: (n, 4) float32
    landmarks: np.ndarray | FileRows  #: (n, 468, 2) float32, one-euro smoothed
    landmarks_raw: np.ndarray | FileRows  #: (n, 468, 2) float32, as the model gave them
    confidence: np.ndarray  #: (n,) float32
    pose: np.ndarray  #: (n, 3) float32 yaw, pitch, roll degrees
    flags: np.ndarray  #: (n,) uint8 FLAG_* bits
    mouth_opening: np.ndarray  #: (n,) float32 inner-lip gap / inter-ocular distance (smoothed landmarks)
    track_ids: np.ndarray  #: (n,) int32 the track each frame came from
    thumbnail: np.ndarray  #: (96, 96, 3) uint8 RGB crop of the best frame
    embedding: np.ndarray  #: (d,) float32 mean identity embedding (empty when none could be computed)
    frame_times: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  #: the video's

    @property
    def frame_ranges(self) -> list[tuple[int, int]]:
        """Runs of consecutive frames, as inclusive (start, end) pairs."""
        if len(self.frames) == 0:
            return []
        breaks = np.nonzero(np.diff(self.frames) > 1)[0]
        starts = np.concatenate([[0], breaks + 1])
        ends = np.concatenate([breaks, [len(self.frames) - 1]])
        return [(int(self.frames[s]), int(self.frames[e])) for s, e in zip(starts, ends, strict=True)]

    @property
    def time_ranges(self) -> list[tuple[float, float]]:
        """Seconds (start, end) of each frame range; end is the end of its last frame."""
        t = self.frame_times
        if len(t) == 0:
            return []
        dur = float(np.median(np.diff(t))) if len(t) > 1 else 0.04
        out = []
        for s, e in self.frame_ranges:
            end = float(t[e + 1]) if e + 1 < len(t) else float(t[e]) + dur
            out.append((float(t[s]), end))
        return out

    @property
    def track_list(self) -> list[int]:
        return sorted({int(x) for x in self.track_ids})

    @property
    def mean_face_size(self) -> float:
        """Mean of the box's longer side, pixels."""
        if len(self.boxes) == 0:
            return 0.0
        return float(np.mean(np.maximum(self.boxes[:, 2] - self.boxes[:, 0], self.boxes[:, 3] - self.boxes[:, 1])))

    @property
    def pose_range(self) -> dict[str, tuple[float, float]]:
        """(min, max) degrees of yaw, pitch and roll."""
        out = {}
        for k, name in enumerate(("yaw", "pitch", "roll")):
            v = self.pose[:, k] if len(self.pose) else np.zeros(0)
            v = v[np.isfinite(v)]
            out[name] = (float(v.min()), float(v.max())) if len(v) else (0.0, 0.0)
        return out

    def index_of(self, frame: int) -> int | None:
        """Position of ``frame`` in the per-frame arrays, None when absent."""
        i = int(np.searchsorted(self.frames, frame))
        return i if i < len(self.frames) and self.frames[i] == frame else None

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "frames_present": len(self.frames),
            "frame_ranges": self.frame_ranges,
            "time_ranges": [(round(a, 3), round(b, 3)) for a, b in self.time_ranges],
            "tracks": self.track_list,
            "mean_face_size": round(self.mean_face_size, 1),
            "pose_range": {k: (round(a, 1), round(b, 1)) for k, (a, b) in self.pose_range.items()},
        }


_ARRAYS = ("frames", "boxes", "landmarks", "landmarks_raw", "confidence", "pose", "flags", "mouth_opening",
           "track_ids", "thumbnail", "embedding")


@dataclass
class FaceAnalysis:
    """Everything the analysis found in one video."""

    source: str
    backend: str
    width: int
    height: int
    frame_count: int
    frame_times: np.ndarray  #: (frame_count,) seconds
    identities: list[Identity]
    cuts: list[int] = field(default_factory=list)  #: frame indices that start a new shot
    message: str = ""  #: a note for users (e.g. "no faces found")

    def faces_at(self, frame_index: int) -> list[FaceObservation]:
        out = []
        for ident in self.identities:
            i = ident.index_of(frame_index)
            if i is None:
                continue
            out.append(FaceObservation(ident.id, int(ident.track_ids[i]), frame_index, ident.boxes[i],
                                       ident.landmarks[i], float(ident.confidence[i]), ident.pose[i],
                                       int(ident.flags[i])))
        return out

    def identity(self, identity_id: int) -> Identity:
        for ident in self.identities:
            if ident.id == identity_id:
                return ident
        raise KeyError(identity_id)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``path`` (.npz arrays) and ``path`` with suffix .json (the rest), each atomically."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {"frame_times": np.asarray(self.frame_times, np.float64)}
        row_files: list[str] = []
        for k, ident in enumerate(self.identities):
            for name in _ARRAYS:
                value = getattr(ident, name)
                if isinstance(value, FileRows):  # a long presence's landmarks: a .npy file of its own
                    _atomic_write(_rows_path(path, f"i{k}_{name}"), lambda f, v=value: save_npy_rows(f, v))
                    row_files.append(f"i{k}_{name}")
                else:
                    arrays[f"i{k}_{name}"] = value
        meta = {"version": ANALYSIS_VERSION, "source": self.source, "backend": self.backend,
                "width": self.width, "height": self.height, "frame_count": self.frame_count, "cuts": self.cuts,
                "message": self.message, "identities": [i.id for i in self.identities], "row_files": row_files}
        _atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
        _atomic_write(path.with_suffix(".json"), lambda f: f.write(json.dumps(meta, indent=1).encode()))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FaceAnalysis:
        path = Path(path)
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            if meta.get("version") != ANALYSIS_VERSION:
                raise BadInputError(f"face analysis version {meta.get('version')} is not {ANALYSIS_VERSION}", path)
            row_files = set(meta.get("row_files", []))
            with np.load(path, allow_pickle=False) as z:
                times = z["frame_times"]
                idents = []
                for k, ident_id in enumerate(meta["identities"]):
                    kw: dict[str, Any] = {
                        name: open_npy_rows(_rows_path(path, f"i{k}_{name}")) if f"i{k}_{name}" in row_files
                        else z[f"i{k}_{name}"] for name in _ARRAYS}
                    idents.append(Identity(id=int(ident_id), frame_times=times, **kw))
        except (OSError, ValueError, KeyError) as exc:
            raise BadInputError(f"face analysis file cannot be read: {exc}", path) from exc
        return cls(meta["source"], meta["backend"], int(meta["width"]), int(meta["height"]),
                   int(meta["frame_count"]), times, idents, list(meta["cuts"]), meta.get("message", ""))


def _rows_path(path: Path, name: str) -> Path:
    """Where the analysis saved at ``path`` keeps the array ``name`` that it holds in a file."""
    return path.with_name(f"{path.stem}.{name}.npy")


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- per-track accumulation ---------------------------------------------------------------------------


class _TrackRecord:
    """What one track collected: per-frame lists, a smoothing filter, sparse embeddings, a thumbnail."""

    def __init__(self, track_id: int, settings: AnalysisSettings, log: RowLog | None = None) -> None:
        self.id = track_id
        self.frames: list[int] = []
        self.boxes: list[np.ndarray] = []
        # Each frame's smoothed and raw landmarks are a row of ``log`` (shared by a session's tracks);
        # ``rows`` says which.
        self.log = log if log is not None else RowLog(_LANDMARK_ROW, np.float32, cache_dir("tmp"))
        self.rows: list[int] = []
        self.conf: list[float] = []
        self.pose: list[np.ndarray] = []
        self.flags: list[int] = []
        self.embeddings: list[np.ndarray] = []
        self.last_embed_t = -1e9
        self.last_verify_t = -1e9
        self.shape: np.ndarray | None = None  # previous frame's normalised landmark shape
        self.points: np.ndarray | None = None  # latest raw (468, 3) landmarks, to follow the face
        self.filter = OneEuroFilter(settings.smooth_min_cutoff, settings.smooth_beta)
        self.thumb: np.ndarray | None = None
        self.thumb_score = -1.0

    def __len__(self) -> int:
        return len(self.frames)

    def add_landmarks(self, smooth: np.ndarray, raw: np.ndarray) -> None:
        """This frame's (468, 2) landmarks, smoothed and raw (call once per appended frame)."""
        self.rows.append(self.log.append(np.stack([smooth[:, :2], raw[:, :2]])))


def _flags(points: np.ndarray, conf: float, pose: np.ndarray, w: int, h: int, s: AnalysisSettings) -> int:
    f = 0
    iod = inter_ocular(points)
    if not iod >= s.min_iod:
        f |= FLAG_TOO_SMALL
    if abs(float(pose[0])) > s.max_yaw:
        f |= FLAG_PROFILE
    if conf < s.low_confidence:
        f |= FLAG_LOW_CONFIDENCE
    from engine.faces.landmarks import JAW, MOUTH

    p = points[list(MOUTH + JAW), :2]
    if (p[:, 0] < 0).any() or (p[:, 1] < 0).any() or (p[:, 0] > w - 1).any() or (p[:, 1] > h - 1).any():
        f |= FLAG_EDGE
    return f


def _usable(points: np.ndarray, s: AnalysisSettings) -> bool:
    """Whether a face is big and frontal enough for an identity embedding."""
    return bool(inter_ocular(points) >= s.min_iod) and abs(float(pose_from_mesh(points)[0])) <= s.max_yaw


def _shape(points: np.ndarray) -> np.ndarray:
    """Landmarks with position, scale and in-plane rotation removed (units of the eye distance)."""
    p = np.asarray(points, np.float64)[:, :2]
    v = p[LEFT_EYE[0]] - p[RIGHT_EYE[0]]
    scale = max(float(np.hypot(v[0], v[1])), 1e-6)
    c, s = v / scale
    rot = np.array([[c, s], [-s, c]])
    return ((p - np.nanmean(p, axis=0)) @ rot.T) / scale


def _thumbnail(rgb: np.ndarray, box: np.ndarray, size: int = 96) -> np.ndarray:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = 0.6 * max(box[2] - box[0], box[3] - box[1])
    m = np.array([[2 * half / size, 0, cx - half], [0, 2 * half / size, cy - half]], np.float64)
    return cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


class FaceTrackingSession:
    """Streaming face tracking: feed frames in order with :meth:`process`, then :meth:`finish`.

    Separate from :func:`analyse` so it can run on frames from anywhere (tests, a live preview).
    """

    def __init__(self, backend: FaceBackend, fps: float, width: int, height: int,
                 settings: AnalysisSettings | None = None) -> None:
        self.backend = backend
        self.s = settings or AnalysisSettings()
        self.fps = fps if fps > 0 else 25.0
        self.width, self.height = width, height
        self.tracker = Tracker(max_missed=max(2, round(self.s.max_missed_s * self.fps)))
        self.cuts = CutDetector()
        self.records: dict[int, _TrackRecord] = {}
        self._log = RowLog(_LANDMARK_ROW, np.float32, cache_dir("tmp"))  # every track's landmarks
        self.cut_frames: list[int] = []
        self._last_detect = -10**9
        self._last_small = -10**9
        self.stats = {"detections": 0, "meshes": 0, "embeddings": 0, "blank": 0, "splits": 0}

    def _mesh_ok(self, m: MeshResult) -> bool:
        return m.score >= self.s.min_presence and bool(np.isfinite(m.points[:, :2]).any())

    def process(self, index: int, t: float, rgb: np.ndarray) -> None:
        cut, blank = self.cuts.update(rgb)
        if blank:
            self.stats["blank"] += 1
            self.tracker.mark_missed(index)
            return
        if cut:
            self.cut_frames.append(index)
            self.tracker.end_all()
        observations: list[Observation] = []
        lost = False
        for track in self.tracker.tracks:
            rec = self.records.get(track.id)
            if rec is None or rec.points is None:
                continue
            mesh = self.backend.follow(rgb, rec.points)
            self.stats["meshes"] += 1
            if self._mesh_ok(mesh):
                observations.append(self._observation(mesh))
            else:
                lost = True
        observations = self._dedupe(observations)
        need = (lost or not self.tracker.tracks or cut or len(observations) < len(self.tracker.tracks)
                or index - self._last_detect >= self.s.detect_every)
        if need:
            self._last_detect = index
            self.stats["detections"] += 1
            dets = self.backend.detect(rgb)
            if index - self._last_small >= self.s.small_every:
                self._last_small = index
                dets += [d for d in self.backend.detect_small(rgb) if all(iou(d.box, e.box) <= 0.3 for e in dets)]
            for det in dets:
                if any(iou(det.box, o.box) > 0.3 for o in observations):
                    continue
                mesh = self.backend.landmarks_from_detection(rgb, det)
                self.stats["meshes"] += 2
                if not self._mesh_ok(mesh):
                    continue
                obs = self._observation(mesh)
                if any(iou(obs.box, o.box) > 0.3 for o in observations):
                    continue
                observations.append(obs)
        for track, obs in self.tracker.update(index, observations):
            track_id, emb = self._verify_identity(track, index, t, rgb, obs)
            self._record(track_id, index, t, rgb, obs, emb)

    def _verify_identity(self, track: Track, index: int, t: float, rgb: np.ndarray,
                         obs: Observation) -> tuple[int, np.ndarray | None]:
        """Catch a person swap that the cut detector missed (a cut between similar shots).

        When the frame changed more than usual, or the face's shape jumped, or a periodic embedding is
        due, the face's embedding is compared with the track's; far apart, the track is split here.
        Returns the track id to record under and the embedding computed (if any).
        """
        rec = self.records.get(track.id)
        mesh = obs.payload
        assert isinstance(mesh, MeshResult)
        if rec is None or not rec.embeddings:
            return track.id, None
        shape = _shape(mesh.points)
        jump = rec.shape is not None and float(np.abs(shape - rec.shape).mean()) > self.s.shape_jump
        due = t - rec.last_embed_t >= self.s.embed_every_s * 2 ** (len(rec.embeddings) // 4)
        check = (self.cuts.suspicious or jump) and t - rec.last_verify_t >= 0.5
        if not (check or due) or not _usable(mesh.points, self.s):
            return track.id, None
        rec.last_verify_t = t
        emb = self.backend.embed(rgb, mesh.points)
        self.stats["embeddings"] += 1
        if emb is None or not np.isfinite(emb).all():
            return track.id, None
        d = float(np.linalg.norm(np.mean(rec.embeddings, axis=0) - emb))
        if d > self.s.split_factor * self.backend.same_person_distance:
            new = self.tracker.split(track, index)
            self.stats["splits"] += 1
            log.info("frame %d: track %d looks like another person (%.2f apart): new track %d",
                     index, track.id, d, new.id)
            return new.id, emb
        # a periodic embedding is kept; one taken only to check is not (embeddings stay sparse)
        return track.id, emb if due else None

    @staticmethod
    def _observation(mesh: MeshResult) -> Observation:
        return Observation(landmark_box(mesh.points), mesh.points[list(_TRACK_POINTS), :2].astype(np.float64),
                           mesh.score, mesh)

    @staticmethod
    def _dedupe(obs: list[Observation]) -> list[Observation]:
        # two tracks that converged on one face: keep the first (the older track, tracks are in age order)
        kept: list[Observation] = []
        for o in obs:
            if all(iou(o.box, k.box) <= 0.5 for k in kept):
                kept.append(o)
        return kept

    def _record(self, track_id: int, index: int, t: float, rgb: np.ndarray, obs: Observation,
                embedding: np.ndarray | None = None) -> None:
        mesh = obs.payload
        assert isinstance(mesh, MeshResult)
        rec = self.records.get(track_id)
        if rec is None:
            rec = self.records[track_id] = _TrackRecord(track_id, self.s, self._log)
        pts = mesh.points
        rec.points = pts
        iod = float(inter_ocular(pts))
        smooth = rec.filter(pts[:, :2], t, scale=max(iod, 1.0)).astype(np.float32)
        pose = pose_from_mesh(pts)
        flags = _flags(pts, mesh.score, pose, self.width, self.height, self.s)
        rec.frames.append(index)
        rec.boxes.append(obs.box.astype(np.float32))
        rec.add_landmarks(smooth, pts[:, :2])
        rec.conf.append(float(mesh.score))
        rec.pose.append(pose)
        rec.flags.append(flags)
        rec.shape = _shape(pts)
        if embedding is None and not rec.embeddings and t - rec.last_verify_t >= 0.5 and _usable(pts, self.s):
            # the track's first embedding (periodic ones come from _verify_identity)
            rec.last_verify_t = t
            embedding = self.backend.embed(rgb, pts)
            self.stats["embeddings"] += 1
        if embedding is not None and np.isfinite(embedding).all():
            rec.embeddings.append(embedding)
            rec.last_embed_t = t
        # thumbnail: the most frontal, most confident, biggest view
        score = mesh.score * float(np.cos(np.radians(min(89.0, abs(float(pose[0])))))) * min(iod, 200.0)
        if score > rec.thumb_score:
            rec.thumb_score = score
            rec.thumb = _thumbnail(rgb, obs.box)

    def finish(self, frame_times: np.ndarray) -> tuple[list[Identity], list[int]]:
        """Cluster the tracks into identities. Returns (identities, cut frame indices)."""
        from engine.faces.identity import cluster_tracks

        recs = [r for r in self.records.values() if len(r) >= self.s.min_track_frames]
        groups = cluster_tracks(
            [np.asarray(r.frames) for r in recs],
            [np.stack(r.embeddings) if r.embeddings else np.zeros((0, 0), np.float32) for r in recs],
            self.backend.same_person_distance)
        identities = [self._identity(k, [recs[i] for i in g], frame_times) for k, g in enumerate(groups)]
        return identities, list(self.cut_frames)

    @staticmethod
    def _identity(k: int, recs: list[_TrackRecord], frame_times: np.ndarray) -> Identity:
        frames = np.concatenate([np.asarray(r.frames, np.int32) for r in recs])
        order = np.argsort(frames, kind="stable")
        dest = np.empty(len(order), np.int64)
        dest[order] = np.arange(len(order))  # where each record's frame goes in the identity's arrays
        starts = np.cumsum([0] + [len(r) for r in recs])

        def cat(name: str, dtype: Any) -> np.ndarray:
            return np.concatenate([np.asarray(getattr(r, name), dtype) for r in recs])[order]

        n = len(order)
        in_file = 2 * n * 468 * 2 * 4 > LANDMARKS_IN_FILE_ABOVE_BYTES
        smooth: np.ndarray | RowFile
        raw: np.ndarray | RowFile
        if in_file:
            smooth = RowFile.blank((n, 468, 2), np.float32, cache_dir("tmp"))
            raw = RowFile.blank((n, 468, 2), np.float32, cache_dir("tmp"))
        else:
            smooth, raw = np.empty((n, 468, 2), np.float32), np.empty((n, 468, 2), np.float32)
        # Read from the log a block at a time and put in frame order; each record's rows are let go
        # as they are used (a record is turned into an identity once).
        for r, s0 in zip(recs, starts[:-1], strict=True):
            if len(r.rows) != len(r.frames):
                raise RuntimeError(f"track {r.id} was already turned into an identity (finish() runs once)")
            rows = np.asarray(r.rows, np.int64)
            for j in range(0, len(rows), 2048):
                block = r.log[rows[j : j + 2048]]
                where = dest[s0 + j : s0 + j + len(block)]
                for out, part in ((smooth, block[:, 0]), (raw, block[:, 1])):
                    if isinstance(out, RowFile):
                        out.write_at(where, part)
                    else:
                        out[where] = part
            r.rows = []

        best = max(recs, key=lambda r: r.thumb_score)
        embs = [e for r in recs for e in r.embeddings]
        ident = Identity(
            id=k, frames=frames[order], boxes=cat("boxes", np.float32), landmarks=smooth,
            landmarks_raw=raw, confidence=cat("conf", np.float32), pose=cat("pose", np.float32),
            flags=cat("flags", np.uint8), mouth_opening=np.zeros(len(order), np.float32),
            track_ids=np.concatenate([np.full(len(r), r.id, np.int32) for r in recs])[order],
            thumbnail=best.thumb if best.thumb is not None else np.zeros((96, 96, 3), np.uint8),
            embedding=np.mean(embs, axis=0).astype(np.float32) if embs else np.zeros(0, np.float32),
            frame_times=frame_times)
        for i in range(0, len(order), 2048):  # widened to float64 a block at a time
            ident.mouth_opening[i : i + 2048] = mouth_opening(ident.landmarks[i : i + 2048])
        return ident


# -- the job ------------------------------------------------------------------------------------------


def _backend_key(backend: FaceBackend) -> str:
    return f"{backend.name}-{backend.version}"


def cache_path_for(video_path: str | os.PathLike[str], backend: FaceBackend,
                   settings: AnalysisSettings | None = None) -> Path:
    """Where the analysis of this video with this backend is cached."""
    import hashlib

    from engine.media import content_hash

    key = "|".join([content_hash(video_path), _backend_key(backend), str(ANALYSIS_VERSION),
                    (settings or AnalysisSettings()).key()])
    return cache_dir("faces") / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".npz")


def analyse(video_path: str | os.PathLike[str], *, backend: FaceBackend | str | None = None,
            insightface_dir: str | os.PathLike[str] | None = None, progress: ProgressFn | None = None,
            cancel: CancelToken | None = None, use_cache: bool = True,
            settings: AnalysisSettings | None = None) -> FaceAnalysis:
    """Find, landmark, track and identify every face in a video (cached by content + backend + version).

    ``backend``: a :class:`FaceBackend`, a name ("builtin", "insightface") or None (builtin).
    A video with no faces gives a FaceAnalysis with no identities and a ``message`` saying so.
    Raises MediaError for unreadable videos, Cancelled when ``cancel`` is set.
    """
    from engine.media import VideoReader

    be = backend if backend is not None and not isinstance(backend, str) else get_backend(backend, insightface_dir)
    settings = settings or AnalysisSettings()
    cache = cache_path_for(video_path, be, settings)
    if use_cache and cache.is_file() and cache.with_suffix(".json").is_file():
        try:
            result = FaceAnalysis.load(cache)
            log.info("face analysis of %s from cache %s", video_path, cache)
            result.source = str(video_path)
            return result
        except BadInputError as exc:
            log.warning("ignoring unreadable face cache: %s", exc)
    with VideoReader(video_path) as reader:
        times = np.asarray(reader.frame_times, np.float64)
        n = len(reader)
        session = FaceTrackingSession(be, reader.fps, reader.info.width, reader.info.height, settings)
        report = ProgressReporter(progress, "faces", max(1, n))
        for index, rgb in reader.iter_frames():
            check_cancel(cancel)
            t = float(times[index]) if index < len(times) else index / session.fps
            session.process(index, t, rgb)
            report.update(index + 1, f"frame {index + 1} of {n}")
        identities, cuts = session.finish(times)
        report.finish(f"{len(identities)} face(s)")
        result = FaceAnalysis(str(video_path), _backend_key(be), reader.info.width, reader.info.height, n, times,
                              identities, cuts)
    if not identities:
        result.message = "no faces found in this video"
    log.info("faces in %s: %d identities, %s", video_path, len(identities), session.stats)
    if use_cache:
        try:
            result.save(cache)
        except OSError as exc:  # a full or read-only cache folder costs a re-analysis later, nothing more
            log.warning("could not write the face analysis cache %s: %s", cache, exc)
    return result
