"""Named landmark index sets in the 468-point face-mesh numbering, and the mouth-opening measure.

Every backend delivers landmarks as a complete ``(468, 2)`` float32 array in image pixels, in this
numbering (a backend with fewer points places its own at the corresponding indices and fills the rest
by warping a mean face; see :func:`engine.faces.insight.map_68_to_468`). Downstream code indexes with
the sets below and never with raw numbers.

Left and right are the *person's*: ``RIGHT_EYE`` is on the image's left side for a face looking at the
camera. Contours are ordered so they can be drawn as polylines.
"""

from __future__ import annotations

import numpy as np

NUM_POINTS = 468

#: Outer lip contour, closed: from the right mouth corner along the upper lip to the left corner,
#: then back along the lower lip.
MOUTH_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
#: Inner lip contour (the mouth opening), closed, in the same direction as MOUTH_OUTER.
MOUTH_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
UPPER_LIP_OUTER = MOUTH_OUTER[:11]
LOWER_LIP_OUTER = (291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 61)
UPPER_LIP_INNER = MOUTH_INNER[:11]
LOWER_LIP_INNER = (308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78)
#: Middle of the inner edge of the upper / lower lip: their distance is the inner-lip gap.
UPPER_LIP_INNER_MID = 13
LOWER_LIP_INNER_MID = 14
UPPER_LIP_OUTER_MID = 0
LOWER_LIP_OUTER_MID = 17
#: Mouth corners (right, left): outer contour corners, then inner contour corners.
MOUTH_CORNERS = (61, 291)
MOUTH_INNER_CORNERS = (78, 308)
#: Every mouth point (outer and inner contours).
MOUTH = tuple(dict.fromkeys(MOUTH_OUTER + MOUTH_INNER))

#: Jaw line / lower face contour from the right ear, under the chin, to the left ear.
JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)
CHIN = 152
#: Whole face outline, closed, starting at the top of the forehead.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
             148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
FOREHEAD = 10
NOSE_TIP = 1
#: Under the nose (subnasale), the top of the region the mouth synthesis may change.
NOSE_BASE = 2
#: The nose bridge between the eyes: a stable point for normalisation.
NOSE_BRIDGE = 168
#: Eye corners (outer, inner).
RIGHT_EYE = (33, 133)
LEFT_EYE = (263, 362)
RIGHT_EYE_CONTOUR = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE_CONTOUR = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)

#: The points the engine relies on (mouth, jaw, eyes, nose).
ESSENTIAL = tuple(dict.fromkeys(MOUTH + JAW + RIGHT_EYE + LEFT_EYE + (NOSE_TIP, NOSE_BASE)))


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres (right, left) of the two eyes: the mean of each eye's two corners. Works on (..., 468, D)."""
    lm = np.asarray(landmarks)
    right = lm[..., RIGHT_EYE, :].mean(axis=-2)
    left = lm[..., LEFT_EYE, :].mean(axis=-2)
    return right, left


def inter_ocular(landmarks: np.ndarray) -> np.ndarray | float:
    """Distance between the eye centres, in the landmarks' units. Works on (468, D) or (n, 468, D)."""
    lm = np.asarray(landmarks)[..., :2]
    right, left = eye_centres(lm)
    d = np.linalg.norm(left - right, axis=-1)
    return float(d) if d.ndim == 0 else d


def mouth_opening(landmarks: np.ndarray) -> np.ndarray | float:
    """Inner-lip gap over the inter-ocular distance (the QUALITY.md opening measure).

    ``landmarks``: (468, D) for one face -> float, or (n, 468, D) for a series -> (n,) array.
    NaN where the landmarks are missing or the eyes coincide.
    """
    lm = np.asarray(landmarks, dtype=np.float64)[..., :2]
    gap = np.linalg.norm(lm[..., LOWER_LIP_INNER_MID, :] - lm[..., UPPER_LIP_INNER_MID, :], axis=-1)
    iod = np.asarray(inter_ocular(lm), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(iod > 1e-6, gap / np.where(iod > 1e-6, iod, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out.astype(np.float32)
