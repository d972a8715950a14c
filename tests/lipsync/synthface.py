"""A synthetic 468-point face (the mesh's index sets placed on simple curves) and a frame to draw it on."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine.lipsync import geometry as g


def _ellipse(n: int, cx: float, cy: float, rx: float, ry: float, start: float = np.pi) -> np.ndarray:
    t = start + np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def face_landmarks(opening: float = 0.1, width: float = 1.0, cx: float = 160.0, cy: float = 140.0,
                   iod: float = 80.0, seed: int = 0) -> np.ndarray:
    """468 points (image px) of a frontal face; ``opening`` is the inner-lip gap over the IOD."""
    rng = np.random.default_rng(seed)
    lm = np.zeros((468, 2))
    # Everything not in a named set: scattered over the upper face.
    lm[:] = np.stack([cx + rng.uniform(-0.7, 0.7, 468) * iod, cy + rng.uniform(-0.6, 0.1, 468) * iod], 1)
    lm[list(g.RIGHT_EYE)] = _ellipse(len(g.RIGHT_EYE), cx - iod / 2, cy - 0.3 * iod, 0.2 * iod, 0.08 * iod)
    lm[list(g.LEFT_EYE)] = _ellipse(len(g.LEFT_EYE), cx + iod / 2, cy - 0.3 * iod, 0.2 * iod, 0.08 * iod)
    for k, idx in enumerate(g.NOSE_BRIDGE):
        lm[idx] = (cx, cy - 0.28 * iod + k * 0.15 * iod)
    my = cy + 0.55 * iod
    mw = 0.45 * iod * width
    gap = opening * iod
    lm[list(g.LIPS_OUTER)] = _ellipse(len(g.LIPS_OUTER), cx, my, mw, 0.12 * iod + gap / 2)
    lm[list(g.LIPS_INNER)] = _ellipse(len(g.LIPS_INNER), cx, my, 0.8 * mw, gap / 2 + 1e-3)
    lm[g.UPPER_INNER_LIP] = (cx, my - gap / 2)
    lm[g.LOWER_INNER_LIP] = (cx, my + gap / 2)
    t = np.linspace(np.pi, 0, len(g.JAW))
    lm[list(g.JAW)] = np.stack([cx + 0.95 * iod * np.cos(t), cy + 0.1 * iod + (0.95 * iod + gap * 0.6) * np.sin(t)], 1)
    lm[list(g.UNDER_NOSE)] = np.stack([np.linspace(cx - 0.95 * iod, cx + 0.95 * iod, len(g.UNDER_NOSE)),
                                      np.full(len(g.UNDER_NOSE), cy + 0.15 * iod)], 1)
    ang = rng.uniform(0, 2 * np.pi, len(g.LOWER_FACE_INNER))
    rad = rng.uniform(0.6, 0.85, len(g.LOWER_FACE_INNER))
    lm[list(g.LOWER_FACE_INNER)] = np.stack([cx + np.cos(ang) * rad * mw * 1.3, my + np.sin(ang) * rad * 0.5 * iod], 1)
    for i in (1, 4, 5, 195):
        lm[i] = (cx, cy + 0.05 * iod)
    return lm


def face_frame(landmarks: np.ndarray, hw: tuple[int, int] = (320, 320), seed: int = 0) -> np.ndarray:
    """A textured frame with a skin-coloured face and a dark mouth drawn at ``landmarks``."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (*hw, 3), dtype=np.uint8)
    jaw = landmarks[list(g.JAW)]
    top = landmarks[list(g.UNDER_NOSE)]
    cx = landmarks[:, 0].mean()
    cv2.ellipse(img, (int(cx), int(top[:, 1].mean())), (int(np.ptp(jaw[:, 0]) / 2 + 4), int(jaw[:, 1].max() - top[:, 1].mean() + 4)),
                0, 0, 360, (120, 150, 200), -1)
    cv2.fillPoly(img, [np.round(landmarks[list(g.LIPS_OUTER)]).astype(np.int32)], (60, 60, 160))
    cv2.fillPoly(img, [np.round(landmarks[list(g.LIPS_INNER)]).astype(np.int32)], (30, 20, 40))
    return img


def write_face_video(path: Path, landmarks: np.ndarray, fps: float = 25.0) -> Path:
    """An MJPEG .avi with one synthetic face per frame, drawn at ``landmarks`` (N, 468, 2)."""
    frames = [face_frame(lm, seed=i) for i, lm in enumerate(landmarks)]
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        out.write(f)
    out.release()
    return path
