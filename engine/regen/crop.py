"""The canonical lower-face crop the regeneration network works in, and everything drawn in it.

A crop is a similarity transform of the frame (rotation, uniform scale, translation) fixed by the eye
centres only: eyes do not move with speech, so the crop stays put while the mouth and jaw move inside
it. Canonical units put the eye midpoint at (0, 0), the eye line along +u and one inter-ocular
distance per unit; a :class:`CropGeometry` says which square of that plane the crop shows (per
speaker, measured from their landmarks, so a long chin or a three-quarter view still fits).

Also here: the mask of the region the network may change (under the nose, inside the jaw line,
feathered inwards so alpha is exactly 0 on and outside its edge), the rasterised map of the target
mouth and jaw, and a piecewise-affine warp that moves a reference face's mouth onto target landmarks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay

from engine.faces.landmarks import (
    CHIN,
    JAW,
    LEFT_EYE,
    MOUTH,
    MOUTH_INNER,
    MOUTH_OUTER,
    NOSE_BASE,
    NOSE_TIP,
    RIGHT_EYE,
)
from engine.lipsync.synth import piecewise_affine

#: Mesh points around the mouth that a reference warp should carry (cheeks, chin, under the nose),
#: besides the mouth contours and the jaw line.
_CHEEK_POINTS = (164, 18, 200, 199, 57, 287, 43, 273, 212, 432, 202, 422, 204, 424, 92, 322, 165, 391)
WARP_POINTS = tuple(dict.fromkeys(MOUTH + JAW + _CHEEK_POINTS + (NOSE_BASE, NOSE_TIP)))
_WARP_INDEX = np.asarray(WARP_POINTS, np.int64)
#: The points a reference frame is chosen by (what the target shape is made of).
SHAPE_POINTS = tuple(dict.fromkeys(MOUTH + JAW))
SHAPE_INDEX = np.asarray(SHAPE_POINTS, np.int64)


@dataclass(frozen=True)
class CropGeometry:
    """The square of the canonical plane the crop shows: centre (u, v) and side, in inter-ocular units."""

    centre_u: float = 0.0
    centre_v: float = 1.25
    side: float = 1.9

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def fit(cls, landmarks: np.ndarray, margin: float = 0.06) -> CropGeometry:
        """The square that holds the mask region (nose base to chin, jaw to jaw) of most frames."""
        lm = np.asarray(landmarks, np.float64).reshape(-1, 468, 2)
        ok = np.isfinite(lm[:, [*list(JAW), NOSE_BASE, *list(RIGHT_EYE + LEFT_EYE)]]).all(axis=(1, 2))
        lm = lm[ok]
        if len(lm) == 0:
            return cls()
        canon = np.stack([apply_affine(canonical_transform(x), x) for x in lm])
        region = np.concatenate([region_polygon(c) for c in canon] + [canon[:, [NOSE_BASE, CHIN]].reshape(-1, 2)])
        lo = np.percentile(region, 1, axis=0)
        hi = np.percentile(region, 99, axis=0)
        # The top of the region is the nose base; the crop starts a little above it for context.
        lo[1] = min(lo[1], float(np.median(canon[:, NOSE_BASE, 1])) - 0.15)
        side = float(max(hi - lo)) * (1.0 + 2 * margin)
        centre = (lo + hi) / 2
        return cls(float(centre[0]), float(centre[1]), float(np.clip(side, 1.0, 3.5)))


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lm = np.asarray(landmarks, np.float64)
    return lm[list(RIGHT_EYE)].mean(0), lm[list(LEFT_EYE)].mean(0)


def canonical_transform(landmarks: np.ndarray) -> np.ndarray:
    """2x3 similarity taking image pixels to canonical units (eye midpoint at 0, eyes 1 apart)."""
    right, left = eye_centres(landmarks)
    axis = left - right
    d = float(np.hypot(*axis))
    if not np.isfinite(d) or d < 1e-6:
        raise ValueError("eye landmarks missing or coincident")
    c, s = axis / d
    mid = (left + right) / 2
    rot = np.array([[c, s], [-s, c]]) / d  # rotate the eye line onto +u and scale to unit distance
    return np.concatenate([rot, (-rot @ mid)[:, None]], axis=1)


def crop_transform(landmarks: np.ndarray, geometry: CropGeometry, size: int, pad: int = 0) -> np.ndarray:
    """2x3 similarity taking image pixels to crop pixels of a ``size`` crop (plus ``pad`` on each side)."""
    canon = canonical_transform(landmarks)
    k = size / geometry.side
    u0 = geometry.centre_u - geometry.side / 2
    v0 = geometry.centre_v - geometry.side / 2
    m = canon * k
    m[0, 2] += -u0 * k + pad
    m[1, 2] += -v0 * k + pad
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    a = np.asarray(m, np.float64)
    inv = np.linalg.inv(a[:, :2])
    return np.concatenate([inv, -(inv @ a[:, 2:])], axis=1)


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts, np.float64) @ np.asarray(m)[:, :2].T + np.asarray(m)[:, 2]


def warp_crop(frame: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` x ``size`` crop of ``frame`` under the image-to-crop transform ``m``.

    Large faces are halved (pyrDown) before the warp until the remaining scale is at least 0.5, so a
    1080p face is low-passed rather than aliased into the crop."""
    m = np.asarray(m, np.float64).copy()
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    img = frame
    while scale < 0.5 and min(img.shape[:2]) > 16:
        img = cv2.pyrDown(img)
        m[:, :2] *= 2.0
        scale *= 2.0
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def region_polygon(crop_landmarks: np.ndarray, side_pull: float = 0.25, top_margin: float = 0.03) -> np.ndarray:
    """Polygon (in crop pixels) of the region the network may change: the jaw line closed under the nose.

    Jaw points above the nose base are lowered to it, and the sides are pulled ``side_pull`` of the way
    towards the mouth centre, away from the cheek silhouette (whose background is not skin)."""
    lm = np.asarray(crop_landmarks, np.float64)
    jaw = lm[list(JAW)].copy()
    centre = lm[list(MOUTH_OUTER)].mean(0)
    top = lm[NOSE_BASE, 1] + top_margin * float(np.ptp(jaw[:, 0]))
    jaw[:, 1] = np.maximum(jaw[:, 1], top)
    jaw[:, 0] = jaw[:, 0] - side_pull * (jaw[:, 0] - centre[0])
    return jaw


def region_alpha(crop_landmarks: list[np.ndarray], size: int, feather: float | None = None) -> np.ndarray:
    """Alpha (size x size float32 in [0, 1]) of the union of the regions of several landmark sets,
    feathered ``feather`` pixels inwards: exactly 0 on and outside the union's edge."""
    hard = np.zeros((size + 2, size + 2), np.uint8)
    for lm in crop_landmarks:
        poly = region_polygon(lm) + 1.0
        cv2.fillPoly(hard, [np.round(poly * 4).astype(np.int32)], 255, lineType=cv2.LINE_8, shift=2)
    dist = cv2.distanceTransform(hard, cv2.DIST_L2, 3)[1:-1, 1:-1]
    f = max(1.0, size / 16 if feather is None else feather)
    return np.clip(dist / f, 0.0, 1.0).astype(np.float32)


def landmark_map(crop_landmarks: np.ndarray, size: int) -> np.ndarray:
    """(3, size, size) float32 in [0, 1]: outer lip contour, the filled mouth opening, jaw + nose base."""
    lm = np.asarray(crop_landmarks, np.float64)
    t = max(1, round(size / 64))
    out = np.zeros((3, size, size), np.uint8)

    def poly(idx: tuple[int, ...]) -> np.ndarray:
        return np.round(lm[list(idx)] * 4).astype(np.int32)

    cv2.polylines(out[0], [poly(MOUTH_OUTER)], True, 255, t, cv2.LINE_AA, shift=2)
    cv2.fillPoly(out[1], [poly(MOUTH_INNER)], 255, cv2.LINE_AA, shift=2)
    cv2.polylines(out[1], [poly(MOUTH_INNER)], True, 255, t, cv2.LINE_AA, shift=2)
    cv2.polylines(out[2], [poly(JAW)], False, 255, t, cv2.LINE_AA, shift=2)
    cv2.circle(out[2], tuple(int(v) for v in np.round(lm[NOSE_BASE] * 4)), 2 * t * 4, 255, -1, cv2.LINE_AA, shift=2)
    return out.astype(np.float32) / 255.0


def warp_points(crop_landmarks: np.ndarray, size: int) -> np.ndarray:
    """Control points of the reference warp: lower-face mesh points plus the crop's border (fixed)."""
    lm = np.asarray(crop_landmarks, np.float64)[_WARP_INDEX]
    e = float(size - 1)
    border = np.array([[x, y] for x in (0.0, e / 2, e) for y in (0.0, e / 2, e) if not (x == e / 2 and y == e / 2)])
    return np.concatenate([lm, border], axis=0)


def warp_to_landmarks(image: np.ndarray, src_landmarks: np.ndarray, dst_landmarks: np.ndarray) -> np.ndarray:
    """Piecewise-affine warp of a crop so its lower-face points move from ``src_landmarks`` to
    ``dst_landmarks`` (both in this crop's pixels); the crop's border stays fixed."""
    size = image.shape[0]
    src = warp_points(src_landmarks, size)
    dst = warp_points(dst_landmarks, size)
    ok = np.isfinite(src).all(1) & np.isfinite(dst).all(1)
    src, dst = src[ok], dst[ok]
    return piecewise_affine(image, src, dst, Delaunay(dst).simplices, (image.shape[0], image.shape[1]))

def speaker_region(crop_landmarks: np.ndarray, size: int, max_faces: int = 400) -> np.ndarray:
    """The union of the region over (a sample of) a speaker's frames, as a hard 0/1 float32 mask.

    The network is shown this fixed region, not the frame's own: a region that follows the frame's own
    jaw would tell it the original mouth's shape, which it would then copy instead of the target's
    (the original speech leaking into the dub)."""
    lm = np.asarray(crop_landmarks, np.float64).reshape(-1, 468, 2)
    pick: list[int] = np.linspace(0, len(lm) - 1, min(max_faces, len(lm))).round().astype(int).tolist() if len(lm) else []
    hard = np.zeros((size, size), np.uint8)
    for i in pick:
        cv2.fillPoly(hard, [np.round(region_polygon(lm[i]) * 4).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=2)
    return hard.astype(np.float32)


def with_region(alpha: np.ndarray, region: np.ndarray | None, feather: float | None = None) -> np.ndarray:
    """``alpha`` widened to the speaker's fixed region (feathered inwards the same way)."""
    if region is None:
        return alpha
    size = alpha.shape[0]
    hard = np.zeros((size + 2, size + 2), np.uint8)
    hard[1:-1, 1:-1] = ((alpha > 0) | (region > 0)).astype(np.uint8) * 255
    dist = cv2.distanceTransform(hard, cv2.DIST_L2, 3)[1:-1, 1:-1]
    f = max(1.0, size / 16 if feather is None else feather)
    return np.clip(dist / f, 0.0, 1.0).astype(np.float32)
