"""Head pose (yaw, pitch, roll in degrees) from 3-d face-mesh landmarks.

The mesh gives x, y in pixels and a relative depth z on about the same scale (larger z = further from the
camera). A head frame is built from the eye line (x axis) and the forehead-to-chin line (y axis,
orthogonalised); its rotation gives the angles:

- yaw > 0: the nose points towards the image's right; |yaw| near 90 is a profile;
- pitch > 0: the face looks up;
- roll > 0: the eye line turns clockwise on screen.

Backends without depth (2-d points only) get yaw estimated from the nose tip's offset between the eyes
and roll from the eye line, pitch 0 (see :func:`pose_from_2d`).
"""

from __future__ import annotations

import math

import numpy as np

from engine.faces.landmarks import CHIN, FOREHEAD, LEFT_EYE, NOSE_TIP, RIGHT_EYE


def pose_from_mesh(points: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees from (468, 3) landmarks."""
    p = np.asarray(points, np.float64)
    if p.shape[1] < 3 or not np.isfinite(p[[RIGHT_EYE[0], LEFT_EYE[0], FOREHEAD, CHIN]]).all():
        return pose_from_2d(p)
    x = p[LEFT_EYE[0]] - p[RIGHT_EYE[0]]
    x /= max(np.linalg.norm(x), 1e-9)
    d = p[CHIN] - p[FOREHEAD]
    y = d - (d @ x) * x
    y /= max(np.linalg.norm(y), 1e-9)
    yaw = math.degrees(math.atan2(x[2], math.hypot(x[0], x[1])))
    pitch = math.degrees(math.atan2(-y[2], math.hypot(y[0], y[1])))
    roll = math.degrees(math.atan2(x[1], x[0]))
    return np.array([yaw, pitch, roll], np.float32)


def pose_from_2d(points: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees from 2-d landmarks only (pitch is unknown and reported as 0)."""
    p = np.asarray(points, np.float64)[:, :2]
    r = p[list(RIGHT_EYE)].mean(0)
    left = p[list(LEFT_EYE)].mean(0)
    nose = p[NOSE_TIP]
    if not np.isfinite(np.concatenate([r, left, nose])).all():
        return np.full(3, np.nan, np.float32)
    eye = left - r
    iod = max(float(np.linalg.norm(eye)), 1e-9)
    roll = math.degrees(math.atan2(eye[1], eye[0]))
    # nose offset from the eye midpoint along the eye line: about +-0.5 iod at a three-quarter view
    t = float((nose - (r + left) / 2) @ eye) / iod / iod
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, 1.6 * t))))
    return np.array([yaw, 0.0, roll], np.float32)
