"""The lip-sync engine's view of one person over a video: where the face is and whether it may change."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.runtime.rowfile import FileRows, RowFile

BLOCK_FRAMES = 2048  # frames whose landmarks are widened to float64 at once


class LandmarkRows:
    """Some rows of a track's float32 landmarks, widened to float64 only when read (a slice at a time)."""

    def __init__(self, source: np.ndarray | FileRows, rows: np.ndarray) -> None:
        self._source = source
        self._rows = np.asarray(rows, np.int64)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice):
            raise TypeError("landmark rows are read by slices")
        return np.asarray(self._source[self._rows[key]], np.float64)

    def blocks(self, size: int = BLOCK_FRAMES) -> Iterator[np.ndarray]:
        for i in range(0, len(self), size):
            yield self[i : i + size]


@dataclass
class FaceTrack:
    """One identity: per present frame its 468 landmarks (image px), pose and whether it is usable.

    ``usable`` is False where a quality flag (too small, too far turned, mouth occluded) says the
    mouth must not be changed; such frames pass through untouched."""

    identity: str
    frames: np.ndarray  # (M,) increasing frame indices
    landmarks: np.ndarray | FileRows  # (M, 468, 2) float32, as the face analysis keeps them (or spilled to a file)
    pose: np.ndarray  # (M, 3) yaw, pitch, roll (degrees)
    usable: np.ndarray  # (M,) bool
    cuts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # frames that start a shot
    # The landmark model's unsmoothed output (M, 468, 2), or None: where the pixels of that very frame
    # are (``landmarks`` is smoothed over time and trails fast lip and head motion by a few pixels).
    raw: np.ndarray | FileRows | None = None
    _pos: dict[int, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames, np.int64)
        # float32, the analysis's own precision: no second, wider copy of a long video's landmarks.
        # (Landmarks moved to a file by spill() stay there.)
        if not isinstance(self.landmarks, FileRows):
            self.landmarks = np.asarray(self.landmarks, np.float32)[..., :2]
        self.pose = np.asarray(self.pose, np.float64).reshape(len(self.frames), -1)[:, :3]
        self.usable = np.asarray(self.usable, bool)
        if self.raw is not None and not isinstance(self.raw, FileRows):
            self.raw = np.asarray(self.raw, np.float32)[..., :2]
        self._pos = {int(f): i for i, f in enumerate(self.frames)}

    def __len__(self) -> int:
        return len(self.frames)

    def spill(self, directory: str | Path | None = None) -> FaceTrack:
        """This track with its landmarks (smoothed and raw) in temporary files, read a frame or a
        block of frames at a time (engine.runtime.rowfile): for a long video, whose landmarks are
        7.5 kB per frame for the whole render. The values read are the same. Landmarks already in
        files (a long analysis keeps them there) stay where they are."""

        def filed(a: np.ndarray | FileRows) -> FileRows:
            return a if isinstance(a, FileRows) else RowFile(np.asarray(a), directory)

        return FaceTrack(self.identity, self.frames, filed(self.landmarks), self.pose, self.usable, self.cuts,
                         None if self.raw is None else filed(self.raw))

    @property
    def landmark_bytes(self) -> int:
        """Memory the track's landmarks take when held as arrays."""
        per = 0 if self.raw is None else 1
        return int(len(self.frames) * 468 * 2 * 4 * (1 + per))

    def index_of(self, frame: int) -> int | None:
        return self._pos.get(int(frame))

    def subset(self, keep: np.ndarray) -> FaceTrack:
        k = np.asarray(keep, bool)
        raw = None if self.raw is None else self.raw[k]
        return FaceTrack(self.identity, self.frames[k], self.landmarks[k], self.pose[k], self.usable[k], self.cuts, raw)

    def rows_of(self, frames: np.ndarray) -> np.ndarray:
        """Positions in this track of video ``frames`` (each must be a frame of the track)."""
        f = np.asarray(frames, np.int64)
        pos = np.searchsorted(self.frames, f)
        if len(f) and (pos.max() >= len(self.frames) or not np.array_equal(self.frames[pos], f)):
            raise IndexError(f"face {self.identity} is not present on every frame asked for")
        return pos

    def raw_at(self, frames: np.ndarray) -> np.ndarray:
        """The unsmoothed landmarks (the smoothed ones where the track has none) of ``frames``, float64:
        only those frames are widened, not the whole video."""
        src = self.landmarks if self.raw is None else self.raw
        return np.asarray(src[self.rows_of(frames)], np.float64)

    def dense(self, n_frames: int, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per video frame: (present & usable mask, landmarks (n, 468, 2) NaN where absent, pose).
        ``dtype``: the landmarks' (float32 halves the memory of an array kept for a whole render)."""
        ok, pose = self.usable_at(n_frames)
        return ok, self._spread(self.landmarks, n_frames, dtype), pose

    def usable_at(self, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Per video frame: (present & usable mask, pose): :meth:`dense` without the landmarks."""
        ok = np.zeros(n_frames, bool)
        pose = np.zeros((n_frames, 3))
        inside = self.frames < n_frames
        f = self.frames[inside]
        ok[f] = self.usable[inside]
        pose[f] = self.pose[inside]
        return ok, pose

    def landmarks_at(self, frame: int) -> np.ndarray | None:
        """The (smoothed) landmarks of one video frame, float64 (468, 2); None where the face is absent."""
        i = self.index_of(frame)
        return None if i is None else np.asarray(self.landmarks[i], np.float64)

    def landmark_rows(self, frames: np.ndarray, raw: bool = False) -> LandmarkRows:
        """The landmarks of video ``frames`` (each a frame of the track), read a block at a time:
        ``rows[i:j]`` is float64 (j - i, 468, 2). ``raw``: the unsmoothed ones (as :meth:`raw_at`)."""
        src = self.raw if raw and self.raw is not None else self.landmarks
        return LandmarkRows(src, self.rows_of(frames))

    def openings(self, n_frames: int) -> np.ndarray:
        """Mouth opening per video frame from the smoothed landmarks, NaN where the face is absent or
        not usable; computed a block of frames at a time (no float64 copy of the whole track)."""
        from engine.lipsync.geometry import mouth_opening

        out = np.full(n_frames, np.nan)
        for i in range(0, len(self.frames), BLOCK_FRAMES):
            f = self.frames[i : i + BLOCK_FRAMES]
            keep = (f < n_frames) & self.usable[i : i + BLOCK_FRAMES]
            if keep.any():
                out[f[keep]] = mouth_opening(self.landmarks[i : i + BLOCK_FRAMES][keep])
        return out

    def dense_raw(self, n_frames: int) -> np.ndarray:
        """Per video frame the unsmoothed landmarks (n, 468, 2), NaN where absent; the smoothed ones
        where the track has no raw ones."""
        return self._spread(self.landmarks if self.raw is None else self.raw, n_frames)

    def _spread(self, landmarks: np.ndarray | FileRows, n_frames: int, dtype: type = np.float64) -> np.ndarray:
        lm: np.ndarray = np.full((n_frames, 468, 2), np.nan, dtype=dtype)
        inside = self.frames < n_frames
        lm[self.frames[inside]] = landmarks[inside]
        return lm


def tracks_from_analysis(analysis: object) -> list[FaceTrack]:
    """Convert the face analysis (engine.faces) into one :class:`FaceTrack` per identity."""
    from engine.pipeline._faces_adapter import convert

    return convert(analysis)
