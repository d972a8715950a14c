"""Local shading match: the synthesised lower face takes the target frame's own light.

A source frame filmed at another head turn, or under other light, carries its own shading: a cheek
highlight in another place, a shadow where the target frame's cheek is lit. A global colour match
(:mod:`engine.compose.blend`) cannot move a highlight. Here the synthesised texture keeps its fine
detail (pores, beard, teeth, lip lines) but its low frequencies are made the target frame's own: a
smooth per-pixel gain, the ratio of the two images blurred over the skin they share.

What the original frame may not lend is what the dub changes: the lips and the mouth (of both the
original and the target shape, grown by a margin) and a band along both jaw lines (a dropped chin
moves the chin's outline and the shadow under it). There the gain is interpolated from the skin
around them (normalised convolution), so the lips get the same light as the cheeks next to them.
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.lipsync.geometry import JAW, LIPS_OUTER

# The blur's width, as a share of the inter-ocular distance: wide enough to pass only shading, not
# the shape of a lip or a fold.
SIGMA_IOD = 0.25
# Margins around the lips and along the jaw lines that the original frame may not lend its light to.
LIPS_MARGIN_IOD = 0.12
JAW_BAND_IOD = 0.1
MAX_GAIN = 1.4
_WORK_SIGMA_PX = 5.0  # the blur runs on a copy scaled so that the sigma is about this many pixels


def shading_weights(
    box: tuple[int, int, int, int], own: np.ndarray, target: np.ndarray, iod: float, scale: float = 1.0
) -> np.ndarray:
    """(h, w) float32 for the box (its size times ``scale``): 1 where the original frame's skin may set
    the synthesised shading, 0 on the lips of ``own`` and ``target`` (grown by a margin) and along
    both jaw lines."""
    x0, y0, x1, y1 = box
    h, w = max(2, round((y1 - y0) * scale)), max(2, round((x1 - x0) * scale))
    banned = np.zeros((h, w), np.uint8)
    grow = max(1, round(LIPS_MARGIN_IOD * iod * scale))
    band = max(1, round(JAW_BAND_IOD * iod * scale))
    for lm in (own, target):
        pts = (np.asarray(lm, np.float64) - [x0, y0]) * scale
        lips = np.round(pts[list(LIPS_OUTER)] * 4).astype(np.int32)
        cv2.fillPoly(banned, [lips], 255, lineType=cv2.LINE_8, shift=2)
        jaw = np.round(pts[list(JAW)] * 4).astype(np.int32)
        cv2.polylines(banned, [jaw], False, 255, thickness=2 * band, lineType=cv2.LINE_8, shift=2)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    return (cv2.dilate(banned, kernel) == 0).astype(np.float32)


def work_scale(sigma_px: float) -> float:
    """The scale the blur runs at: the sigma becomes about ``_WORK_SIGMA_PX`` pixels there."""
    return min(1.0, _WORK_SIGMA_PX / max(sigma_px, 1e-3))


def shading_gain(
    synth: np.ndarray, source: np.ndarray, weights: np.ndarray, sigma_px: float
) -> np.ndarray:
    """Per-pixel, per-channel gain (h, w, 3) that gives ``synth`` the low frequencies of ``source``
    over ``weights`` (given at :func:`work_scale` of the images' size); 1 where no weighted pixel is
    near."""
    h, w = synth.shape[:2]
    scale = work_scale(sigma_px)
    sh, sw = weights.shape

    def small(img: np.ndarray) -> np.ndarray:
        return cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)

    wt = weights.astype(np.float32)
    s = small(synth) * wt[..., None]
    o = small(source) * wt[..., None]
    sig = sigma_px * scale
    blur_w = cv2.GaussianBlur(wt, (0, 0), sig)
    blur_s = cv2.GaussianBlur(s, (0, 0), sig)
    blur_o = cv2.GaussianBlur(o, (0, 0), sig)
    ratio = (blur_o + 1.0) / (blur_s + 1.0)
    # Confidence: how much weighted skin the blur saw; far from any, the gain fades to 1.
    conf = (blur_w / (blur_w + 0.05))[..., None]
    gain = np.clip(1.0 + conf * (ratio - 1.0), 1.0 / MAX_GAIN, MAX_GAIN).astype(np.float32)
    return cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, 3)


def match_shading(
    synth: np.ndarray, source: np.ndarray, box: tuple[int, int, int, int], own: np.ndarray,
    target: np.ndarray, iod: float, usable: np.ndarray | None = None,
) -> np.ndarray:
    """``synth`` (the box crop, BGR uint8) with the shading of ``source`` (the same crop of the frame).

    ``usable``: (h, w) where the synthesised texture is real source face (the rest is ignored)."""
    sigma = SIGMA_IOD * iod
    weights = shading_weights(box, own, target, iod, work_scale(sigma))
    if usable is not None:
        sh, sw = weights.shape
        weights *= cv2.resize((np.asarray(usable) > 0).astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA) >= 0.99
    if float(weights.sum()) < 4:
        return synth
    gain = shading_gain(synth, source, weights, sigma)
    out = cv2.multiply(synth, gain, dtype=cv2.CV_32F)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
