"""A synthetic talking face: 468 landmarks with the mesh's named sets on simple curves, frames drawn
from them (skin, lips, a dark mouth with teeth when open), and a short video of it speaking."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np

from engine.faces import landmarks as L
from engine.regen.crop import _CHEEK_POINTS


def _ring(n: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    t = np.pi + np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def face_landmarks(opening: float, cx: float = 48.0, cy: float = 40.0, iod: float = 36.0, seed: int = 0) -> np.ndarray:
    """(468, 2) image pixels of a frontal face; ``opening`` is the inner-lip gap over the IOD."""
    rng = np.random.default_rng(seed)
    lm = np.stack([cx + rng.uniform(-0.6, 0.6, 468) * iod, cy + rng.uniform(-0.5, 0.0, 468) * iod], 1)
    lm[list(L.RIGHT_EYE)] = [(cx - 0.62 * iod, cy), (cx - 0.38 * iod, cy)]
    lm[list(L.LEFT_EYE)] = [(cx + 0.62 * iod, cy), (cx + 0.38 * iod, cy)]
    lm[L.NOSE_TIP] = (cx, cy + 0.5 * iod)
    lm[L.NOSE_BASE] = (cx, cy + 0.65 * iod)
    my, gap, mw = cy + 1.0 * iod, opening * iod, 0.42 * iod
    lm[list(L.MOUTH_OUTER)] = _ring(len(L.MOUTH_OUTER), cx, my, mw, 0.14 * iod + gap / 2)
    lm[list(L.MOUTH_INNER)] = _ring(len(L.MOUTH_INNER), cx, my, 0.8 * mw, gap / 2 + 0.01)
    t = np.linspace(np.pi, 0, len(L.JAW))
    lm[list(L.JAW)] = np.stack([cx + 0.95 * iod * np.cos(t), cy + 0.45 * iod + (1.2 * iod + 0.5 * gap) * np.sin(t)], 1)
    ang = np.linspace(0, 2 * np.pi, len(_CHEEK_POINTS), endpoint=False)
    lm[list(_CHEEK_POINTS)] = np.stack([cx + 0.7 * iod * np.cos(ang), my + 0.35 * iod * np.sin(ang)], 1)
    return lm.astype(np.float32)


def face_frame(lm: np.ndarray, hw: tuple[int, int] = (112, 96)) -> np.ndarray:
    """A BGR frame: a fixed textured background, a skin face, lips and a dark mouth with teeth."""
    bg = np.random.default_rng(7).integers(40, 200, (*hw, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(bg, (0, 0), 1.5)
    jaw = lm[list(L.JAW)]
    cx, top = float(lm[L.NOSE_BASE, 0]), float(lm[list(L.RIGHT_EYE + L.LEFT_EYE), 1].mean()) - 20
    axes = (int(np.ptp(jaw[:, 0]) / 2 + 2), int((jaw[:, 1].max() - top) / 2))
    cv2.ellipse(img, (int(cx), int(top + axes[1])), axes, 0, 0, 360, (110, 140, 190), -1, cv2.LINE_AA)
    for eye in (L.RIGHT_EYE, L.LEFT_EYE):
        c = lm[list(eye)].mean(0)
        cv2.circle(img, (int(c[0]), int(c[1])), 3, (40, 30, 30), -1, cv2.LINE_AA)
    q = 4
    cv2.fillPoly(img, [np.round(lm[list(L.MOUTH_OUTER)] * q).astype(np.int32)], (70, 70, 170), cv2.LINE_AA, shift=2)
    inner = np.round(lm[list(L.MOUTH_INNER)] * q).astype(np.int32)
    cv2.fillPoly(img, [inner], (30, 20, 40), cv2.LINE_AA, shift=2)
    gap = float(lm[L.LOWER_LIP_INNER_MID, 1] - lm[L.UPPER_LIP_INNER_MID, 1])
    if gap > 3:
        y = float(lm[L.UPPER_LIP_INNER_MID, 1])
        x0, x1 = lm[list(L.MOUTH_INNER_CORNERS), 0]
        cv2.rectangle(img, (int(x0 + 4), int(y)), (int(x1 - 4), int(y + gap * 0.3)), (225, 230, 235), -1)
    return img


def openings(n: int) -> np.ndarray:
    """A speech-like opening curve: 0 .. 0.35 IOD."""
    t = np.arange(n)
    return (0.17 + 0.17 * np.sin(t * 0.45) * np.sin(t * 0.11 + 0.5)).astype(np.float32)


def make_talking_video(path: Path, n: int = 48, hw: tuple[int, int] = (112, 96)) -> SimpleNamespace:
    """Write the video (H.264, 25 fps) and return a face analysis stand-in with one identity (id 0)."""
    import av

    lms = np.stack([face_landmarks(o) for o in openings(n)])
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height = hw[1], hw[0]
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": "4", "preset": "ultrafast"}
        for lm in lms:
            frame = av.VideoFrame.from_ndarray(face_frame(lm, hw), format="bgr24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    ident = SimpleNamespace(id=0, frames=np.arange(n, dtype=np.int32), landmarks=lms,
                            flags=np.zeros(n, np.uint8))
    return SimpleNamespace(identities=[ident], frame_count=n)
