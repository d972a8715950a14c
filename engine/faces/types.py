"""Small value types shared by the face backends, the tracker and the analysis."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Roi:
    """A rotated square region of an image: centre (pixels), side (pixels), rotation (radians).

    ``angle`` is the direction of the face's eye line in image coordinates (y down), so cropping with
    it makes the face upright.
    """

    cx: float
    cy: float
    size: float
    angle: float = 0.0

    def crop_matrix(self, out_size: int) -> np.ndarray:
        """2x3 affine map from crop pixels (out_size x out_size) to image pixels."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        k = self.size / out_size
        # crop (u, v) -> image: centre + k * R @ (u - out/2, v - out/2)
        m = np.array([[c * k, -s * k, 0.0], [s * k, c * k, 0.0]], dtype=np.float64)
        half = out_size / 2.0
        m[0, 2] = self.cx - (m[0, 0] * half + m[0, 1] * half)
        m[1, 2] = self.cy - (m[1, 0] * half + m[1, 1] * half)
        return m


@dataclass
class Detection:
    """A face found by a detector: box (x0, y0, x1, y1) in pixels, keypoints (k, 2), score in 0..1.

    Builtin keypoints (BlazeFace): right eye, left eye, nose tip, mouth centre, right ear, left ear.
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float


@dataclass
class MeshResult:
    """Landmarks of one face: (468, 3) pixels (x, y, relative depth z in pixels), presence score 0..1."""

    points: np.ndarray
    score: float

    @property
    def box(self) -> np.ndarray:
        return landmark_box(self.points)


def landmark_box(points: np.ndarray) -> np.ndarray:
    """Bounding box (x0, y0, x1, y1) of the finite landmarks."""
    p = np.asarray(points)[:, :2]
    p = p[np.isfinite(p).all(axis=1)]
    if len(p) == 0:
        return np.full(4, np.nan, dtype=np.float32)
    return np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()], dtype=np.float32)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes (x0, y0, x1, y1)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / ua) if ua > 0 else 0.0
