"""Face-mesh geometry the lip-sync engine works in: index sets, canonical frame, mouth opening.

Landmarks are the 468 points of the MediaPipe face mesh in image pixels. The index sets below are
positions in that (public, fixed) mesh topology.
"""

from __future__ import annotations

import numpy as np

# Outer and inner lip contours, each going round the mouth.
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
# Lower half of the face oval, from one cheek over the chin to the other.
JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)
# Under the nose, from one cheek to the other (the top edge of the region that may change).
UNDER_NOSE = (234, 227, 116, 117, 118, 101, 36, 203, 98, 97, 2, 326, 327, 423, 266, 330, 347, 346, 345, 447, 454)
# Cheek and chin points between the lips and the jaw line (carried by the warp, not by the shape).
LOWER_FACE_INNER = (
    57, 43, 106, 182, 83, 18, 313, 406, 335, 273, 287, 216, 206, 207, 187, 214, 212, 202, 204, 194, 201,
    200, 421, 418, 424, 422, 432, 434, 411, 427, 426, 436, 92, 165, 167, 164, 393, 391, 322, 186, 410,
)
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398)
NOSE_BRIDGE = (168, 6, 197)
NOSE_BASE = 2  # under the nose tip, where the upper lip's philtrum starts (on UNDER_NOSE)
UPPER_INNER_LIP = 13
LOWER_INNER_LIP = 14
# Facing points of the lower and upper inner lip, corner to corner.
INNER_LIP_PAIRS = ((95, 191), (88, 80), (178, 81), (87, 82), (14, 13), (317, 312), (402, 311), (318, 310), (324, 415))
MOUTH_CORNERS = (61, 291)

# The points whose motion the speaker model predicts: mouth, jaw, and the cheek and chin points
# between them (moving these with the lips keeps the warp's triangles from folding over).
SHAPE_POINTS = tuple(dict.fromkeys(LIPS_OUTER + LIPS_INNER + JAW + LOWER_FACE_INNER))
SHAPE_INDEX = np.asarray(SHAPE_POINTS, dtype=np.int64)


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right, left) eye centres of one face (468, 2) or of many (N, 468, 2)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return lm[..., RIGHT_EYE, :].mean(axis=-2), lm[..., LEFT_EYE, :].mean(axis=-2)


def interocular(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres (per face)."""
    r, left = eye_centres(landmarks)
    return np.linalg.norm(left - r, axis=-1)


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap over the inter-ocular distance (QUALITY.md's opening), per face."""
    lm = np.asarray(landmarks, dtype=np.float64)
    gap = np.linalg.norm(lm[..., LOWER_INNER_LIP, :] - lm[..., UPPER_INNER_LIP, :], axis=-1)
    return gap / np.maximum(interocular(lm), 1e-6)


def stable_points(landmarks: np.ndarray) -> np.ndarray:
    """Points that do not move with speech: the eye centres and the nose bridge, (..., 5, 2)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    r, left = eye_centres(lm)
    return np.concatenate([r[..., None, :], left[..., None, :], lm[..., NOSE_BRIDGE, :]], axis=-2)


# Canonical positions of the stable points: eye centres 1 apart, nose bridge below their midpoint.
CANONICAL_STABLE = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, 0.02], [0.0, 0.17], [0.0, 0.3]])


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking src points to dst, 2x3."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    # Complex-number form of the 2-D Procrustes problem.
    zs = s[:, 0] + 1j * s[:, 1]
    zd = d[:, 0] + 1j * d[:, 1]
    a = np.vdot(zs, zd) / max(float(np.vdot(zs, zs).real), 1e-12)
    m = np.array([[a.real, -a.imag, 0.0], [a.imag, a.real, 0.0]])
    m[:, 2] = md - m[:, :2] @ ms
    return m


def to_canonical(landmarks: np.ndarray, template: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Map each face (N, 468, 2) into the canonical frame; returns (canonical points, 2x3 transforms)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    single = lm.ndim == 2
    if single:
        lm = lm[None]
    tmpl = CANONICAL_STABLE if template is None else template
    stab = stable_points(lm)
    mats = np.stack([similarity(stab[i], tmpl) for i in range(len(lm))])
    out = np.einsum("nij,nkj->nki", mats[:, :, :2], lm) + mats[:, None, :, 2]
    if single:
        return out[0], mats[0]
    return out, mats


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine transform."""
    a = np.asarray(m, dtype=np.float64)[:, :2]
    inv = np.linalg.inv(a)
    return np.concatenate([inv, -(inv @ np.asarray(m, dtype=np.float64)[:, 2:])], axis=1)


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 2x3 transform to points (..., 2)."""
    return np.asarray(pts, dtype=np.float64) @ m[:, :2].T + m[:, 2]
