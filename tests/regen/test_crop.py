"""The canonical crop: transform and inverse, the region's alpha, the landmark map, the reference warp."""

from __future__ import annotations

import numpy as np

from engine.faces import landmarks as L
from engine.regen.crop import (
    CropGeometry,
    apply_affine,
    crop_transform,
    invert_affine,
    landmark_map,
    region_alpha,
    warp_crop,
    warp_to_landmarks,
)
from tests.regen.synth_face import face_frame, face_landmarks


def _rotated(lm: np.ndarray, deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.radians(deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * scale
    return (lm - lm.mean(0)) @ r.T + lm.mean(0) + shift


def test_crop_is_pose_invariant_and_inverts() -> None:
    lm = face_landmarks(0.2)
    geo = CropGeometry.fit(lm[None])
    base = apply_affine(crop_transform(lm, geo, 64), lm)
    moved = _rotated(lm, 17.0, 1.6, (30.0, -12.0))
    m = crop_transform(moved, geo, 64)
    # A rotated, scaled, shifted face lands on the same crop pixels.
    np.testing.assert_allclose(apply_affine(m, moved), base, atol=1e-4)
    np.testing.assert_allclose(apply_affine(invert_affine(m), apply_affine(m, moved)), moved, atol=1e-4)


def test_geometry_holds_the_region() -> None:
    lms = np.stack([face_landmarks(o) for o in (0.0, 0.2, 0.4)])
    geo = CropGeometry.fit(lms)
    for lm in lms:
        c = apply_affine(crop_transform(lm, geo, 64), lm)
        pts = c[[*L.MOUTH, L.CHIN, L.NOSE_BASE]]
        assert (pts >= 0).all() and (pts <= 63).all()


def test_region_alpha_is_zero_outside_and_one_in_the_mouth() -> None:
    lm = face_landmarks(0.3)
    geo = CropGeometry.fit(lm[None])
    c = apply_affine(crop_transform(lm, geo, 64), lm)
    alpha = region_alpha([c], 64)
    mouth = np.round(c[list(L.MOUTH_OUTER)].mean(0)).astype(int)
    assert alpha[mouth[1], mouth[0]] == 1.0
    nose = int(np.floor(c[L.NOSE_BASE, 1]))
    assert 0 < nose < 64 and alpha[: nose + 1].max() == 0.0  # nothing at or above the nose base changes
    assert alpha[:, 0].max() == 0.0 and alpha[:, -1].max() == 0.0
    # The union with a more open target is a superset.
    wide = region_alpha([c, apply_affine(crop_transform(lm, geo, 64), face_landmarks(0.6))], 64)
    assert ((wide > 0) >= (alpha > 0)).all() and (wide > 0).sum() > (alpha > 0).sum()


def test_landmark_map_follows_the_opening() -> None:
    closed = landmark_map(face_landmarks(0.02) - [16, 8], 64)
    wide = landmark_map(face_landmarks(0.4) - [16, 8], 64)
    assert closed.shape == (3, 64, 64) and closed.max() <= 1.0
    assert wide[1].sum() > 4 * closed[1].sum()


def test_warp_moves_the_mouth_onto_the_target() -> None:
    geo = CropGeometry.fit(face_landmarks(0.2)[None])
    src_lm, dst_lm = face_landmarks(0.05), face_landmarks(0.35)
    m = crop_transform(src_lm, geo, 64)
    crop = warp_crop(face_frame(src_lm), m, 64)
    src_c, dst_c = apply_affine(m, src_lm), apply_affine(m, dst_lm)
    same = warp_to_landmarks(crop, src_c, src_c)
    assert np.abs(same.astype(int) - crop).mean() < 1.0
    warped = warp_to_landmarks(crop, src_c, dst_c)
    target = warp_crop(face_frame(dst_lm), m, 64)
    dark = (target.sum(-1) < 150) & (region_alpha([dst_c], 64) > 0)
    # The dark mouth opening of the target is mostly dark in the warped closed mouth's texture.
    assert dark.sum() > 10
    assert (warped[dark].sum(-1) < 300).mean() > 0.6
    assert (crop[dark].sum(-1) < 300).mean() < (warped[dark].sum(-1) < 300).mean()
