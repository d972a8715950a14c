"""Frame-to-frame association of face observations into tracks, and shot-cut detection.

:class:`Tracker` is pure logic over boxes and a few key points, so it is tested with synthetic
detections. Each frame, observations are assigned to live tracks by the Hungarian method
(``scipy.optimize.linear_sum_assignment``) on a cost that mixes box overlap (IoU against the track's
constant-velocity prediction) and landmark continuity (key-point distance over face size). A track
survives ``max_missed`` frames without an observation (brief occlusion, a missed detection, a few black
frames); a shot cut ends every track.

:class:`CutDetector` compares grey-level histograms (and the mean absolute difference) of small grey
frames with the last non-blank frame. Blank frames (black or uniform) are reported separately and never
count as a cut, so black frames inserted into a shot do not split its tracks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from engine.faces.types import iou

_FORBIDDEN = 1e6


@dataclass
class Observation:
    """One face seen in one frame: box (x0, y0, x1, y1), key points (k, 2) in a fixed order, score."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float
    payload: object = None  # whatever the caller wants back with the assignment (e.g. the mesh result)


@dataclass
class Track:
    id: int
    box: np.ndarray
    keypoints: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float64))
    first_frame: int = 0
    last_frame: int = 0
    hits: int = 1
    missed: int = 0

    def predicted_box(self, frame: int) -> np.ndarray:
        # constant velocity, damped while unseen so a lost face is searched for near where it was
        gap = frame - self.last_frame
        steps = min(gap, 5)
        return self.box + self.velocity * steps

    @property
    def size(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1], 1.0))


class Tracker:
    """Hungarian association of observations to tracks with persistent ids."""

    def __init__(self, max_missed: int = 15, min_iou: float = 0.1, max_keypoint_dist: float = 0.6,
                 keypoint_weight: float = 1.0) -> None:
        self.max_missed = max_missed
        self.min_iou = min_iou
        self.max_keypoint_dist = max_keypoint_dist
        self.keypoint_weight = keypoint_weight
        self.tracks: list[Track] = []
        self.ended: list[Track] = []
        self._next_id = 0

    def end_all(self) -> list[Track]:
        """End every live track (a shot cut). Returns the ended tracks."""
        ended, self.tracks = self.tracks, []
        self.ended.extend(ended)
        return ended

    def cost_matrix(self, frame: int, observations: list[Observation]) -> np.ndarray:
        cost = np.full((len(self.tracks), len(observations)), _FORBIDDEN)
        for i, t in enumerate(self.tracks):
            pred = t.predicted_box(frame)
            shift = pred[:2] - t.box[:2]
            for j, o in enumerate(observations):
                ov = iou(pred, o.box)
                kd = np.inf
                if o.keypoints.shape == t.keypoints.shape and len(o.keypoints):
                    kd = float(np.nanmean(np.linalg.norm(o.keypoints - (t.keypoints + shift), axis=1))) / t.size
                if ov < self.min_iou and not kd <= self.max_keypoint_dist * 0.5:
                    continue
                if not kd <= self.max_keypoint_dist:
                    kd = self.max_keypoint_dist
                cost[i, j] = (1.0 - ov) + self.keypoint_weight * kd
        return cost

    def update(self, frame: int, observations: list[Observation]) -> list[tuple[Track, Observation]]:
        """Assign this frame's observations; new tracks for unmatched ones; age the unmatched tracks.

        Returns (track, observation) pairs for every observation kept.
        """
        pairs: list[tuple[Track, Observation]] = []
        matched_tracks: set[int] = set()
        matched_obs: set[int] = set()
        if self.tracks and observations:
            cost = self.cost_matrix(frame, observations)
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if cost[r, c] >= _FORBIDDEN:
                    continue
                t, o = self.tracks[r], observations[c]
                gap = max(1, frame - t.last_frame)
                new_vel = (np.asarray(o.box, np.float64) - t.box) / gap
                t.velocity = new_vel if t.hits == 1 else 0.5 * t.velocity + 0.5 * new_vel
                t.box = np.asarray(o.box, np.float64)
                t.keypoints = np.asarray(o.keypoints, np.float64)
                t.last_frame = frame
                t.hits += 1
                t.missed = 0
                matched_tracks.add(r)
                matched_obs.add(c)
                pairs.append((t, o))
        alive: list[Track] = []
        for i, t in enumerate(self.tracks):
            if i not in matched_tracks:
                t.missed += 1
                if t.missed > self.max_missed:
                    self.ended.append(t)
                    continue
            alive.append(t)
        for j, o in enumerate(observations):
            if j in matched_obs:
                continue
            t = Track(self._next_id, np.asarray(o.box, np.float64), np.asarray(o.keypoints, np.float64),
                      first_frame=frame, last_frame=frame)
            self._next_id += 1
            alive.append(t)
            pairs.append((t, o))
        self.tracks = alive
        return pairs

    def split(self, track: Track, frame: int) -> Track:
        """End ``track`` here and continue its face under a new id (it turned out to be someone else)."""
        new = Track(self._next_id, track.box.copy(), track.keypoints.copy(), first_frame=frame, last_frame=frame)
        self._next_id += 1
        self.tracks = [new if t is track else t for t in self.tracks]
        self.ended.append(track)
        return new

    def mark_missed(self, frame: int) -> None:
        """A frame with no usable picture (blank): every live track ages without an observation."""
        self.update(frame, [])


class CutDetector:
    """Shot cuts from small grey frames; blank (black / uniform) frames are recognised and skipped."""

    def __init__(self, hist_threshold: float = 0.3, diff_threshold: float = 0.12, hist_support: float = 0.15,
                 blank_std: float = 6.0, min_pixel_diff: float = 0.06) -> None:
        self.hist_threshold = hist_threshold
        self.min_pixel_diff = min_pixel_diff
        self.diff_threshold = diff_threshold
        self.hist_support = hist_support
        self.blank_std = blank_std
        self._ref_hist: np.ndarray | None = None
        self._ref_small: np.ndarray | None = None
        self.last_hist_diff = 0.0
        self.last_pixel_diff = 0.0
        #: the last frame changed more than usual within a shot, without being a cut (worth checking
        #: that every tracked face is still the same person)
        self.suspicious = False

    @staticmethod
    def small_grey(rgb: np.ndarray) -> np.ndarray:
        # a strided subsample first keeps this cheap on 4K frames
        h, w = rgb.shape[:2]
        step = max(1, min(h, w) // 144)
        sub = rgb[::step, ::step]
        grey = cv2.cvtColor(np.ascontiguousarray(sub), cv2.COLOR_RGB2GRAY)
        return cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)

    def is_blank(self, small: np.ndarray) -> bool:
        return float(small.std()) < self.blank_std

    def update(self, rgb: np.ndarray) -> tuple[bool, bool]:
        """Feed the next frame. Returns (is_cut, is_blank)."""
        small = self.small_grey(rgb)
        self.suspicious = False
        if self.is_blank(small):
            return False, True
        counts = cv2.calcHist([small], [0], None, [32], [0, 256]).ravel().astype(np.float64)
        hist = counts / max(1.0, float(counts.sum()))
        cut = False
        if self._ref_hist is not None and self._ref_small is not None:
            self.last_hist_diff = float(np.abs(hist - self._ref_hist).sum())  # 0 .. 2
            self.last_pixel_diff = float(np.abs(small.astype(np.float32) - self._ref_small).mean()) / 255.0
            # a cut changes both the picture and its grey-level distribution; a fade or an exposure
            # change shifts a narrow histogram a lot while the picture barely changes
            h_diff, p_diff = self.last_hist_diff, self.last_pixel_diff
            cut = (h_diff > self.hist_threshold and p_diff > self.min_pixel_diff) or (
                p_diff > self.diff_threshold and h_diff > self.hist_support)
            self.suspicious = not cut and (p_diff > 0.4 * self.diff_threshold or h_diff > 0.5 * self.hist_threshold)
        self._ref_hist = hist
        self._ref_small = small.astype(np.float32)
        return cut, False
