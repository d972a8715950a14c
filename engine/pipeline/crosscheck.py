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
# The opening is averaged over the face box and the box shifted by this share of its width each way.
BOX_SHIFT = 0.02
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

    def find_face(self, bgr: np.ndarray, near: np.ndarray) -> tuple[int, int, int, int] | None:
        """dlib's own box (x0, y0, x1, y1, image px) of the face around the points ``near``, or None.

        ``near`` are landmarks spanning the face (e.g. the tracker's 468 points): they only choose the
        region to search, about twice the face's size."""
        pts = np.asarray(near, np.float64).reshape(-1, 2)
        if len(pts) == 0 or not np.isfinite(pts).all():
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
        # The detection nearest the face asked about (the search region is cut at the frame's edge,
        # so that is the points' centre, not the region's).
        want = (centre - [x0, y0]) * s
        best = min(found, key=lambda r: float(np.hypot((r.left() + r.right()) / 2 - want[0],
                                                        (r.top() + r.bottom()) / 2 - want[1])))
        return (x0 + round(best.left() / s), y0 + round(best.top() / s),
                x0 + round(best.right() / s), y0 + round(best.bottom() / s))

    def landmarks(self, bgr: np.ndarray, near: np.ndarray,
                  box: tuple[int, int, int, int] | None = None) -> np.ndarray | None:
        """(68, 2) image-pixel landmarks of the face around ``near`` (:meth:`find_face`), or None.

        ``box``: a face box found before (:meth:`find_face`) to use instead of detecting again. The
        eval measures a render in the box found on its original frame: the shape predictor starts
        from the box, and a box a few pixels off moves the opening it reads by 0.02-0.03, so only
        the mouth's pixels should differ between the two readings."""
        if box is None:
            box = self.find_face(bgr, near)
        if box is None:
            return None
        h, w = bgr.shape[:2]
        bx0, by0, bx1, by1 = box
        # Work in a crop around the box (the predictor only reads pixels near its points).
        m = max(bx1 - bx0, by1 - by0) // 2
        x0, y0 = max(0, bx0 - m), max(0, by0 - m)
        x1, y1 = min(w, bx1 + m), min(h, by1 + m)
        if x1 - x0 < 16 or y1 - y0 < 16:
            return None
        gray = cv2.cvtColor(np.ascontiguousarray(bgr[y0:y1, x0:x1]), cv2.COLOR_BGR2GRAY)
        shape = self._shape(gray, self._dlib.rectangle(bx0 - x0, by0 - y0, bx1 - x0, by1 - y0))
        out = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float64)
        return out + np.array([x0, y0], np.float64)

    def opening(self, bgr: np.ndarray, near: np.ndarray, box: tuple[int, int, int, int] | None = None) -> float:
        """:func:`opening68` of the face around ``near`` (in ``box`` when given); NaN where none is found.

        The mean over the box and the box moved by 2% of its size left, right, up and down: the shape
        predictor starts from the box, and on a small face one pixel of box moves its reading by up to
        0.04 (vox_beard_full, a 145 px box). Averaged, its openings follow the tracker's at r 0.78
        there instead of 0.67, and the render and the original are read alike."""
        if box is None:
            box = self.find_face(bgr, near)
        if box is None:
            return float("nan")
        d = max(1, round(BOX_SHIFT * (box[2] - box[0])))
        readings = []
        for dx, dy in ((0, 0), (d, 0), (-d, 0), (0, d), (0, -d)):
            p = self.landmarks(bgr, near, (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy))
            if p is not None:
                readings.append(float(opening68(p)))
        return float(np.mean(readings)) if readings else float("nan")
