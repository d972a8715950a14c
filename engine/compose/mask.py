"""The compose mask: the lower face under the nose inside the jaw line, and the mouths themselves with
a margin, feathered inwards.

The alpha is computed inside a tight region of interest (the polygons' bounding box plus a margin),
so its cost follows the face size, not the frame size. Feathering goes inwards from the polygon
edge (a distance transform), so alpha is exactly 0 on and outside the edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.lipsync.geometry import JAW, LEFT_EYE, LIPS_OUTER, NOSE_BASE, RIGHT_EYE, UNDER_NOSE, interocular

# Margin around the lips (times the inter-ocular distance) that the mask always covers at full
# strength: the mesh's lip contour can lie a little inside the visible lip edge.
LIPS_MARGIN = 0.05


@dataclass
class MaskROI:
    """Alpha in [0, 1] (float32, h x w) for the frame box ``(x0, y0, x1, y1)``."""

    alpha: np.ndarray
    box: tuple[int, int, int, int]

    @property
    def empty(self) -> bool:
        return self.alpha.size == 0 or not bool((self.alpha > 0).any())

    def full(self, height: int, width: int) -> np.ndarray:
        """The alpha over a whole frame (tests and visualisation; the renderer stays in the box)."""
        out = np.zeros((height, width), np.float32)
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1] = self.alpha
        return out


def face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of a face (468, 2): along its eye line (right eye to left) and down the face."""
    lm = np.asarray(landmarks, dtype=np.float64)
    right, left = lm[list(RIGHT_EYE)].mean(0), lm[list(LEFT_EYE)].mean(0)
    axis = (left - right) / max(float(np.linalg.norm(left - right)), 1e-6)
    return axis, np.array([-axis[1], axis[0]])  # image y grows downwards


def lower_face_polygon(landmarks: np.ndarray, side_margin: float = 0.2, chin_margin: float = 0.2) -> np.ndarray:
    """Polygon (K, 2) of the region that may change: under the nose, down to the jaw line.

    The sides are pulled ``side_margin`` of the way in towards the mouth (along the eye line), away
    from the cheek silhouette: on a turned head the silhouette's background is not skin, and the
    mouth and chin, which are what speech moves, stay fully inside. The jaw part is pushed
    ``chin_margin`` further down, so the feathered edge lies below the chin's outline: the outline of
    the original chin (which drops with the original speech) must not show through the blend."""
    lm = np.asarray(landmarks, dtype=np.float64)
    top = lm[list(UNDER_NOSE)]
    jaw = lm[list(JAW)]
    # UNDER_NOSE runs cheek -> nose -> cheek; JAW runs cheek -> chin -> cheek: walk one, then the other back.
    poly = np.concatenate([top, jaw[::-1]], axis=0)
    centre = lm[list(LIPS_OUTER)].mean(0)
    axis, down = face_axes(lm)
    along = (poly - centre) @ axis
    below = (poly - centre) @ down
    poly = poly - (side_margin * along)[:, None] * axis[None, :]
    is_jaw = np.arange(len(poly)) >= len(top)
    push = np.where(is_jaw & (below > 0), chin_margin * below, 0.0)
    return poly + push[:, None] * down[None, :]


def lips_polygon(landmarks: np.ndarray, pad: float) -> np.ndarray:
    """The outer lips' convex hull grown by ``pad`` px on every side (K, 2): the hull's corners each
    widened into a circle of that radius, and the hull of all of them."""
    lips = np.asarray(landmarks, dtype=np.float64)[list(LIPS_OUTER)]
    angles = np.linspace(0.0, 2.0 * np.pi, 16, endpoint=False)
    disc = max(float(pad), 0.0) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    grown = (lips[:, None, :] + disc[None]).reshape(-1, 2)
    return cv2.convexHull(grown.astype(np.float32)).reshape(-1, 2).astype(np.float64)


def lips_pad(landmarks: np.ndarray, feather_px: float) -> float:
    """How far beyond a face's lips (px) the mask reaches: the feather plus ``LIPS_MARGIN``, so the
    lips themselves are at full strength."""
    return float(feather_px) + LIPS_MARGIN * float(interocular(landmarks))


def below_nose(polygon: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The part of a convex ``polygon`` below the line through the face's nose base along its eye
    line (empty (0, 2) when none): a mouth's margin must not reach into the nostrils, as it could
    on a head pitched down."""
    lm = np.asarray(landmarks, dtype=np.float64)
    axis, down = face_axes(lm)
    base = lm[NOSE_BASE]
    poly = np.asarray(polygon, dtype=np.float64)
    reach = 4.0 * float(np.max(np.linalg.norm(poly - base, axis=1))) + 1.0
    half = np.array([base - reach * axis, base + reach * axis, base + reach * axis + reach * down,
                     base - reach * axis + reach * down])
    area, inter = cv2.intersectConvexConvex(poly.astype(np.float32), half.astype(np.float32))
    if inter is None or area <= 0:
        return np.zeros((0, 2))
    return inter.reshape(-1, 2).astype(np.float64)


def compose_polygons(own: np.ndarray, target: np.ndarray, feather_px: float) -> list[np.ndarray]:
    """The region one face's mouth replacement may change: the lower face of the frame's own and of
    the target landmarks, and both mouths with a margin (never above the nose base), so that with a
    ``feather_px`` feather every pixel of either mouth is replaced at full strength.

    The lower-face polygon alone is not enough on a turned head: its sides are pulled in towards the
    mouth, and on the far side that edge can pass through the lip corner; the original's lips then
    showed through the feather beside the new ones (a doubled, dark mouth corner). The margin is not
    cut at the cheek outline: near profile, a few pixels of background beside the far lip corner can
    be taken from the source frame (the warp's validity map lets a source's own lips through with
    the same margin).

    Raises ValueError on non-finite landmarks (the renderer then leaves the face as it is)."""
    own = np.asarray(own, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if not (np.isfinite(own).all() and np.isfinite(target).all()):
        raise ValueError("the face's landmarks are not all finite")
    pad = lips_pad(own, feather_px)
    mouths = [below_nose(lips_polygon(lm, pad), own) for lm in (own, target)]
    return [lower_face_polygon(own), lower_face_polygon(target)] + [m for m in mouths if len(m) >= 3]


def build_mask(
    polygons: list[np.ndarray], frame_hw: tuple[int, int], feather_px: float, shrink_px: float = 0.0
) -> MaskROI:
    """Union of filled polygons, feathered ``feather_px`` inwards, optionally shrunk first."""
    h, w = frame_hw
    pts = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in polygons], axis=0)
    margin = 2
    x0 = int(max(0, np.floor(pts[:, 0].min()) - margin))
    y0 = int(max(0, np.floor(pts[:, 1].min()) - margin))
    x1 = int(min(w, np.ceil(pts[:, 0].max()) + margin + 1))
    y1 = int(min(h, np.ceil(pts[:, 1].max()) + margin + 1))
    if x1 <= x0 or y1 <= y0:
        return MaskROI(np.zeros((0, 0), np.float32), (0, 0, 0, 0))
    # Pad by one pixel so the box border counts as outside (the frame edge is an edge of the mask too).
    hard = np.zeros((y1 - y0 + 2, x1 - x0 + 2), np.uint8)
    for p in polygons:
        q = np.round((np.asarray(p, np.float64).reshape(-1, 2) - [x0 - 1, y0 - 1]) * 4).astype(np.int32)
        cv2.fillPoly(hard, [q], 255, lineType=cv2.LINE_8, shift=2)
    dist = cv2.distanceTransform(hard, cv2.DIST_L2, 3)[1:-1, 1:-1]
    alpha = np.clip((dist - shrink_px) / max(feather_px, 1e-3), 0.0, 1.0).astype(np.float32)
    # Pixels beyond the frame were never in the box; the padding only shaped the distance.
    return MaskROI(alpha, (x0, y0, x1, y1))


def mask_ring(mask: MaskROI, lo: float = 0.05, hi: float = 0.6) -> np.ndarray:
    """Boolean ring just inside the mask edge (alpha between ``lo`` and ``hi``)."""
    return (mask.alpha > lo) & (mask.alpha <= hi)
