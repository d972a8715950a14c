"""Local shading match: the synthesised texture takes the target frame's light, keeps its detail."""

from __future__ import annotations

import cv2
import numpy as np

from engine.compose.shading import match_shading, shading_weights
from engine.lipsync import geometry as g
from tests.lipsync.synthface import face_landmarks

H = W = 320


def _skin(light: np.ndarray, seed: int) -> np.ndarray:
    """Skin-coloured texture (fine noise) under a smooth light field (h, w)."""
    rng = np.random.default_rng(seed)
    base = np.array([120.0, 150.0, 200.0]) + rng.normal(0, 6, (H, W, 3))
    return base * light[..., None]


def test_shading_follows_the_frame_and_keeps_the_texture_and_the_lips() -> None:
    own = face_landmarks(opening=0.05)
    target = face_landmarks(opening=0.15)
    xs = np.linspace(0, 1, W)[None, :].repeat(H, 0)
    frame_light = 0.75 + 0.4 * xs  # lit from the right
    synth_light = 1.15 - 0.4 * xs  # the source was lit from the left
    frame = np.clip(_skin(frame_light, 1), 0, 255).astype(np.uint8)
    synth_f = _skin(synth_light, 2)
    mask = np.zeros((H, W), np.uint8)
    cv2.fillPoly(mask, [np.round(target[list(g.LIPS_OUTER)]).astype(np.int32)], 1)
    lips = mask > 0
    synth_f[lips] = synth_f[lips] * [0.35, 0.3, 0.8]  # dark red lips in the texture
    synth = np.clip(synth_f, 0, 255).astype(np.uint8)
    box = (0, 0, W, H)
    out = match_shading(synth, frame, box, own, target, float(g.interocular(own)))
    cheeks = (np.abs(np.arange(H)[:, None] - 170) < 25) & ((np.abs(np.arange(W)[None, :] - 60) < 20)
                                                           | (np.abs(np.arange(W)[None, :] - 260) < 20))
    # On the cheeks the light is now the frame's: the left/right brightness ratio as in the frame.
    def lr(img: np.ndarray) -> float:
        grey = img.astype(float).mean(-1)
        left = grey[cheeks & (np.arange(W)[None, :] < W // 2)].mean()
        right = grey[cheeks & (np.arange(W)[None, :] >= W // 2)].mean()
        return float(right / left)

    assert lr(synth) < 0.8 and lr(frame) > 1.3
    assert abs(lr(out) - lr(frame)) < 0.12
    # Fine texture survives: the high frequencies of the result are the synthesised ones.
    def detail(img: np.ndarray) -> np.ndarray:
        f = img.astype(np.float32)
        return (f - cv2.GaussianBlur(f, (0, 0), 3))[cheeks]

    assert np.corrcoef(detail(out).ravel(), detail(synth).ravel())[0, 1] > 0.9
    assert abs(np.corrcoef(detail(out).ravel(), detail(frame).ravel())[0, 1]) < 0.2
    # The lips keep their own colour against the skin next to them (not lit away into skin).
    ring = cv2.dilate(mask, np.ones((9, 9), np.uint8)).astype(bool) & ~lips
    for img in (synth, out):
        assert img[lips].astype(float).mean(0)[1] < 0.6 * img[ring].astype(float).mean(0)[1]


def test_the_lips_and_the_jaw_lines_do_not_lend_their_light() -> None:
    own = face_landmarks(opening=0.05)
    target = face_landmarks(opening=0.2)
    wts = shading_weights((0, 0, W, H), own, target, float(g.interocular(own)))
    for lm in (own, target):
        for i in g.LIPS_OUTER + g.JAW[3:-3]:
            x, y = np.round(lm[i]).astype(int)
            if 0 <= x < W and 0 <= y < H:
                assert wts[y, x] == 0
    assert wts.mean() > 0.4  # most of the face still does
