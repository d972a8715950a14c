"""Colour matching of the synthesised region to the surrounding skin, and the final blend."""

from __future__ import annotations

import cv2
import numpy as np

from engine.compose.mask import MaskROI, mask_ring


def _lab_stats(img: np.ndarray, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lab = cv2.cvtColor(img, cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float32)
    px = lab[sel.reshape(-1)]
    return px.mean(0), px.std(0) + 1.0


def colour_match(
    synth: np.ndarray, source: np.ndarray, mask: MaskROI
) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel Lab (gain, offset) that makes ``synth`` match ``source`` on the ring inside the mask
    edge (both are the mask's box crop, BGR uint8). ``None`` when the ring is too small to measure."""
    ring = mask_ring(mask)
    if int(ring.sum()) < 30:
        return None
    ms, ss = _lab_stats(synth, ring)
    mt, st = _lab_stats(source, ring)
    gain = np.clip(st / ss, 0.8, 1.25)
    offset = mt - gain * ms
    return gain.astype(np.float32), offset.astype(np.float32)


def apply_colour(synth: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(synth, cv2.COLOR_BGR2LAB).astype(np.float32)
    lab = lab * gain + offset
    return cv2.cvtColor(np.clip(lab + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


class ColourMatcher:
    """Colour transfer whose terms are smoothed over time (one per face; ``reset`` at cuts/seeks)."""

    def __init__(self, smoothing: float = 0.6) -> None:
        self.smoothing = smoothing
        self._state: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        self._state = None

    def __call__(self, synth: np.ndarray, source: np.ndarray, mask: MaskROI) -> np.ndarray:
        terms = colour_match(synth, source, mask)
        if terms is None:
            return synth
        if self._state is not None:
            k = self.smoothing
            terms = (k * self._state[0] + (1 - k) * terms[0], k * self._state[1] + (1 - k) * terms[1])
        self._state = terms
        return apply_colour(synth, *terms)


def blend_into(frame: np.ndarray, synth: np.ndarray, mask: MaskROI) -> np.ndarray:
    """A copy of ``frame`` with ``synth`` (the mask box crop) blended in by the mask's alpha.

    Pixels where alpha is 0 are copied from ``frame`` untouched (bit-identical)."""
    out = frame.copy()
    if mask.empty:
        return out
    x0, y0, x1, y1 = mask.box
    src = frame[y0:y1, x0:x1]
    a = mask.alpha[..., None]
    mixed = src.astype(np.float32) + a * (synth.astype(np.float32) - src.astype(np.float32))
    mixed_u8 = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
    out[y0:y1, x0:x1] = np.where(a > 0, mixed_u8, src)
    return out
