"""A second opinion on a render's mouth: a landmarker that is not the engine's own.

The engine tracks faces and re-measures its renders with its own 468-point mesh. A mesh regresses the
whole face at once, so the rest of the face can pull its mouth points: on a render whose lips were
closed under a speaking upper face it reads a gap that is not in the pixels. A render tuned against
that one model may please only that model. So ``lipdub eval`` measures the opening a second time with
dlib's 68-point shape predictor (shipped in face-recognition-models, already installed for identity
embeddings), which finds its own face box with dlib's HOG detector: nothing of the engine's face
pipeline reaches the measurement but the rough region to search.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

SHAPE_68_FILE = "shape_predictor_68_face_landmarks.dat"
# The detector runs on the search region scaled to this width (the faces here are large; HOG's
# smallest face is about 80 px, and upsampling once halves that).
SEARCH_WIDTH = 200
# Inner lips: upper (61, 62, 63) over lower (67, 66, 65); eyes 36-41 and 42-47.
_INNER_PAIRS = ((61, 67), (62, 66), (63, 65))


def opening68(points: np.ndarray) -> np.ndarray:
    """Inner-lip gap over the inter-ocular distance (eye centres) of (..., 68, 2) points."""
    p = np.asarray(points, np.float64)
    gap = np.mean([np.linalg.norm(p[..., a, :] - p[..., b, :], axis=-1) for a, b in _INNER_PAIRS], axis=0)
    iod = np.linalg.norm(p[..., 36:42, :].mean(-2) - p[..., 42:48, :].mean(-2), axis=-1)
    return gap / np.maximum(iod, 1e-6)


class IndependentLandmarker:
    """dlib's HOG face detector and 68-point shape predictor, for measuring frames."""

    def __init__(self) -> None:
        import dlib

        from engine.faces.embedding import dlib_model_path

        self._dlib = dlib
        self._detect: Any = dlib.get_frontal_face_detector()
        self._shape: Any = dlib.shape_predictor(str(dlib_model_path(SHAPE_68_FILE)))

    def landmarks(self, bgr: np.ndarray, near: np.ndarray) -> np.ndarray | None:
        """(68, 2) image-pixel landmarks of the face found near the points ``near`` (any landmarks of
        the face, e.g. the source frame's track: they only choose where to search), or None."""
        pts = np.asarray(near, np.float64).reshape(-1, 2)
        if not np.isfinite(pts).all() or len(pts) == 0:
            return None
        h, w = bgr.shape[:2]
        lo, hi = pts.min(0), pts.max(0)
        centre, half = (lo + hi) / 2, 0.9 * float(max(hi - lo))
        x0, y0 = int(max(0, centre[0] - half)), int(max(0, centre[1] - half))
        x1, y1 = int(min(w, centre[0] + half)), int(min(h, centre[1] + half))
        if x1 - x0 < 16 or y1 - y0 < 16:
            return None
        gray = cv2.cvtColor(np.ascontiguousarray(bgr[y0:y1, x0:x1]), cv2.COLOR_BGR2GRAY)
        s = SEARCH_WIDTH / gray.shape[1]
        small = cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        found = list(self._detect(small, 1))
        if not found:
            return None
        # The detection whose centre is nearest the search region's centre (the face asked about).
        mid = np.array([small.shape[1], small.shape[0]]) / 2
        best = min(found, key=lambda r: float(np.hypot((r.left() + r.right()) / 2 - mid[0], (r.top() + r.bottom()) / 2 - mid[1])))
        rect = self._dlib.rectangle(int(best.left() / s), int(best.top() / s), int(best.right() / s), int(best.bottom() / s))
        shape = self._shape(gray, rect)
        out = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float64)
        return out + np.array([x0, y0], np.float64)

    def opening(self, bgr: np.ndarray, near: np.ndarray) -> float:
        """:func:`opening68` of the face near ``near``; NaN where none is found."""
        p = self.landmarks(bgr, near)
        return float("nan") if p is None else float(opening68(p))
