"""Compose mask, colour match, blend, retrieval path and warp, and pass-through of face-less frames."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from engine.compose import ColourMatcher, blend_into, build_mask, compose_polygons, lower_face_polygon
from engine.lipsync import synth
from engine.lipsync.geometry import INNER_LIP_PAIRS, JAW, LIPS_OUTER, UNDER_NOSE, mouth_opening
from engine.lipsync.model import SpeakerModel
from engine.lipsync.shape import fit_shape_model
from engine.lipsync.synth import BankWriter, control_points, feather_px, plan_path, warp_to_box
from engine.pipeline.fit import SpeakerFit, TrackSignals, target_codes
from engine.pipeline.session import (
    MAX_OPENING_STRETCH,
    FrameComposer,
    FrameResult,
    plan_face,
    within_bank,
    within_bank_opening,
)
from engine.pipeline.tracks import FaceTrack
from tests.lipsync.synthface import face_frame, face_landmarks

N = 60


def _speaker_from(lms: np.ndarray, opening: np.ndarray, n_components: int = 5
                  ) -> tuple[np.ndarray, list[np.ndarray], SpeakerFit, FaceTrack]:
    """A speaker filmed with these landmarks (n, 468, 2): frames, fit (every frame in the bank), track."""
    n = len(lms)
    frames = [face_frame(lm, seed=i) for i, lm in enumerate(lms)]
    shape = fit_shape_model(lms, n_components)
    codes = shape.encode_landmarks(lms)
    writer = BankWriter(np.arange(n), codes, np.zeros((n, 3)), lms, frames[0].shape[:2])
    for i in range(n):
        writer.add(i, frames[i])
    bank = writer.finish()
    model = SpeakerModel(shape.scale, None, None, None, None, "speaker")
    fit = SpeakerFit("0", shape, model, bank, opening, np.arange(n), np.arange(n))
    track = FaceTrack("0", np.arange(n), lms, np.zeros((n, 3)), np.ones(n, bool))
    return lms, frames, fit, track


def _speaker() -> tuple[np.ndarray, list[np.ndarray], SpeakerFit, FaceTrack]:
    opening = 0.02 + 0.25 * np.abs(np.sin(np.arange(N) / 4.0))
    return _speaker_from(np.stack([face_landmarks(o, seed=i % 3) for i, o in enumerate(opening)]), opening)


def test_mask_is_zero_outside_the_polygon_and_feathered_inside() -> None:
    lm = face_landmarks(0.1)
    mask = build_mask([lower_face_polygon(lm)], (320, 320), feather_px=6.0)
    full = mask.full(320, 320)
    assert full.max() == 1.0 and full.min() == 0.0
    assert ((full > 0) & (full < 1)).any()  # a soft edge
    # The mouth centre is fully inside; a far corner is fully outside.
    c = lm[[61, 291]].mean(0).round().astype(int)
    assert full[c[1], c[0]] == 1.0 and full[0, 0] == 0.0


def test_blend_leaves_every_pixel_outside_the_mask_bit_identical() -> None:
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    lm = face_landmarks(0.15, cx=150, cy=100, iod=70)
    mask = build_mask([lower_face_polygon(lm)], frame.shape[:2], feather_px=5.0)
    x0, y0, x1, y1 = mask.box
    synth = rng.integers(0, 256, (y1 - y0, x1 - x0, 3), dtype=np.uint8)
    synth = ColourMatcher()(synth, frame[y0:y1, x0:x1], mask)
    out = blend_into(frame, synth, mask)
    full = mask.full(*frame.shape[:2])
    assert np.array_equal(out[full == 0], frame[full == 0])
    assert not np.array_equal(out[full == 1], frame[full == 1])


def test_mask_near_the_frame_edge_stays_inside_the_frame() -> None:
    lm = face_landmarks(0.1, cx=20, cy=260, iod=80)  # jaw runs off the bottom-left corner
    mask = build_mask([lower_face_polygon(lm)], (300, 300), feather_px=5.0)
    x0, y0, x1, y1 = mask.box
    assert 0 <= x0 < x1 <= 300 and 0 <= y0 < y1 <= 300
    assert mask.alpha.shape == (y1 - y0, x1 - x0)


def _turned_face(opening: float = 0.1) -> np.ndarray:
    """A face turned so its far cheek outline runs just beside the far lip corner (as on a head turned
    about 40 degrees): the jaw and under-nose points left of the mouth pulled in towards it."""
    lm = face_landmarks(opening)
    corner = lm[list(LIPS_OUTER), 0].min()
    for idx in (JAW, UNDER_NOSE):
        pts = lm[list(idx)]
        far = pts[:, 0] < corner
        pts[far, 0] = corner - 0.1 * (corner - pts[far, 0])  # the outline 0-10 px past the corner
        lm[list(idx)] = pts
    return lm


def _lip_contour(lm: np.ndarray) -> np.ndarray:
    pts = lm[list(LIPS_OUTER)]
    t = np.linspace(0, 1, 4, endpoint=False)[:, None]
    return np.concatenate([a + t * (b - a) for a, b in zip(pts, np.roll(pts, -1, 0), strict=True)])


def _alpha_at(full: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.round(pts).astype(int)
    return full[p[:, 1], p[:, 0]]


def test_mask_replaces_both_mouths_fully_on_a_turned_head() -> None:
    own = _turned_face(0.05)
    target = _turned_face(0.2)
    target[:, 0] -= 3.0  # the new mouth reaches a little further out
    feather = feather_px(own)
    # The lower-face polygons alone, their sides pulled in towards the mouth, leave the far lip
    # corners in the feather or outside: the original lips would show through beside the new ones.
    lower = build_mask([lower_face_polygon(own), lower_face_polygon(target)], (320, 320), feather).full(320, 320)
    assert _alpha_at(lower, _lip_contour(own)).min() < 0.5
    full = build_mask(compose_polygons(own, target, feather), (320, 320), feather).full(320, 320)
    assert _alpha_at(full, _lip_contour(own)).min() == 1.0
    assert _alpha_at(full, _lip_contour(target)).min() == 1.0


def test_mouth_margin_stays_below_the_nose() -> None:
    # A head pitched down: the nose base only 0.05 of the eye distance above the upper lip, less
    # than the margin the mask gives a mouth.
    own = face_landmarks(0.05)
    lip_top = own[list(LIPS_OUTER), 1].min()
    own[list(UNDER_NOSE), 1] = lip_top - 0.05 * 80.0
    full = build_mask(compose_polygons(own, own, feather_px(own)), (320, 320), feather_px(own)).full(320, 320)
    lower = build_mask([lower_face_polygon(own)], (320, 320), feather_px(own)).full(320, 320)
    # Above the nose line the mouths add nothing to the lower face's own polygon.
    nose_line = int(np.floor(own[list(UNDER_NOSE), 1].min()))
    assert (full[:nose_line] > 0).sum() == (lower[:nose_line] > 0).sum()


def test_non_finite_landmarks_are_refused() -> None:
    own = face_landmarks(0.05)
    bad = own.copy()
    bad[list(LIPS_OUTER)[3]] = np.nan
    with pytest.raises(ValueError, match="finite"):
        compose_polygons(own, bad, feather_px(own))


def test_a_turned_source_lends_its_whole_mouth() -> None:
    from engine.lipsync.synth import warp_with_validity

    opening = np.array([0.05, 0.1, 0.15])
    lms, _, fit, _ = _speaker_from(np.stack([_turned_face(o) for o in opening]), opening, 2)
    bank = fit.bank
    own = lms[1]
    # The source's face polygon (its sides pulled in) cuts through its own far lip corner ...
    poly = lower_face_polygon(own, side_margin=0.1, chin_margin=0.35)
    inside = np.zeros((320, 320), np.uint8)
    cv2.fillPoly(inside, [np.round(poly).astype(np.int32)], 1)
    assert _alpha_at(inside.astype(np.float32), _lip_contour(own)).min() == 0
    # ... but every pixel of its lips is its own face, so the warp marks them valid.
    mask = build_mask(compose_polygons(own, own, feather_px(own)), (320, 320), feather_px(own))
    _, valid = warp_with_validity(bank, 1, control_points(own, own), mask.box)
    full = np.zeros((320, 320), np.float32)
    x0, y0, x1, y1 = mask.box
    full[y0:y1, x0:x1] = valid
    assert _alpha_at(full, _lip_contour(own)).min() == 1.0


def test_composer_replaces_the_whole_mouth_of_a_turned_head() -> None:
    n = 30
    opening = 0.02 + 0.25 * np.abs(np.sin(np.arange(n) / 4.0))
    lms, frames, fit, track = _speaker_from(np.stack([_turned_face(o) for o in opening]), opening, 4)
    plan = plan_face(track, fit, fit.bank.codes[::-1].copy())  # every frame gets another frame's mouth
    composer = FrameComposer([plan])
    for i in range(n):
        details: list[FrameResult] = []
        out = composer(i, frames[i], details)
        alpha = details[0].mask.full(*frames[i].shape[:2])
        # The mask the frame was composed with (after the validity trim) holds the frame's own and
        # the new lips at full strength, and nothing outside it changed.
        assert _alpha_at(alpha, _lip_contour(lms[i])).min() == 1.0
        assert _alpha_at(alpha, _lip_contour(details[0].target_landmarks)).min() == 1.0
        assert np.array_equal(out[alpha == 0], frames[i][alpha == 0])


def test_a_more_open_source_has_its_lips_drawn_together_for_a_rest() -> None:
    from engine.lipsync.geometry import LIPS_INNER
    from engine.lipsync.synth import close_inner_lips

    rest = face_landmarks(0.04)
    wide = face_landmarks(0.16)
    drawn = close_inner_lips(rest, wide)
    # The gap kept is the target's times target / source: 0.04 * 0.25 of the eye distance.
    assert mouth_opening(drawn) == pytest.approx(0.04 * 0.04 / 0.16, rel=1e-6)
    # Only the inner lips move: every facing pair (the same place along the mouth) keeps a quarter
    # of its gap, about its own midpoint; the corners stay.
    moved = np.flatnonzero(np.abs(drawn - rest).sum(1) > 1e-9)
    assert set(moved) <= set(LIPS_INNER)
    lo, up = np.asarray(INNER_LIP_PAIRS).T
    assert set(moved) == set(lo) | set(up) == set(LIPS_INNER) - {LIPS_INNER[0], LIPS_INNER[10]}
    assert np.allclose(rest[lo, 0], rest[up, 0], atol=1e-6)  # pairs face each other
    assert np.allclose(drawn[lo] - drawn[up], 0.25 * (rest[lo] - rest[up]))
    assert np.allclose(drawn[lo] + drawn[up], rest[lo] + rest[up])
    # A source no more open than the target is warped onto the target as it is.
    assert np.array_equal(close_inner_lips(wide, rest), wide)
    assert np.array_equal(close_inner_lips(rest, rest), rest)


def test_plan_marks_the_resting_frames() -> None:
    _, _, fit, track = _speaker()
    codes = np.repeat(fit.bank.codes[np.argmax(fit.bank.codes[:, 0])][None], N, 0)
    codes[10:20] = fit.shape.rest
    plan = plan_face(track, fit, codes)
    assert plan.resting is not None
    assert plan.resting[10:20].all() and not plan.resting[:10].any() and not plan.resting[20:].any()


def test_composer_draws_the_lips_together_only_at_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.pipeline.session as session
    from engine.lipsync.synth import WARP_POINTS

    lms, frames, fit, track = _speaker()
    wide = int(np.argmax(mouth_opening(lms)))
    closed = int(np.argmin(mouth_opening(lms)))
    plan = plan_face(track, fit, np.repeat(fit.shape.rest[None], N, 0))
    plan.path[:] = wide  # the only source near the pose is a wide open mouth
    plan.second = None  # and no second texture to blend in
    plan.ok[:] = True
    seen: list[np.ndarray] = []
    real_warp = session.warp_with_validity

    def spy(bank: object, j: int, dst: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        seen.append(np.asarray(dst))
        return real_warp(bank, j, dst, box)  # type: ignore[arg-type]

    monkeypatch.setattr(session, "warp_with_validity", spy)
    up, low = WARP_POINTS.index(13), WARP_POINTS.index(14)
    gaps = []
    for resting in (False, True):
        plan.resting = np.full(N, resting)
        details: list[FrameResult] = []
        FrameComposer([plan])(closed, frames[closed].copy(), details)
        target_gap = float(np.linalg.norm(details[0].target_landmarks[13] - details[0].target_landmarks[14]))
        gaps.append((float(np.linalg.norm(seen[-1][up] - seen[-1][low])), target_gap))
    (speaking, target_gap), (at_rest, _) = gaps
    assert speaking == pytest.approx(target_gap)
    # At rest the gap is the target's times target / source opening (here about a tenth).
    ratio = float(mouth_opening(details[0].target_landmarks) / mouth_opening(fit.bank.landmarks[wide]))
    assert ratio < 0.2
    assert at_rest == pytest.approx(target_gap * ratio, rel=1e-6)


def test_path_prefers_consecutive_source_frames() -> None:
    _, _, fit, _ = _speaker()
    target = fit.bank.codes[10:40]
    path = plan_path(target, np.zeros((30, 3)), np.ones(30, bool), fit.bank, fit.shape.scale)
    assert (np.diff(path) == 1).mean() > 0.8


def test_path_holds_rather_than_swinging_between_neighbouring_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, fit, _ = _speaker()
    # A still target halfway between two consecutive source frames, with jumps as cheap as a hold:
    # stepping forward is free, so swinging 20, 21, 20, 21... would be the cheapest path if a short
    # step back cost only a jump.
    target = np.repeat(((fit.bank.codes[20] + fit.bank.codes[21]) / 2)[None], 30, 0)
    args = (target, np.zeros((30, 3)), np.ones(30, bool), fit.bank, fit.shape.scale)
    monkeypatch.setattr(synth, "BACK_STEP_FRAMES", 0)
    swinging = np.diff(plan_path(*args, jump_cost=0.1, hold_cost=0.1))
    assert ((swinging < 0) & (swinging >= -4)).sum() > 5
    monkeypatch.undo()
    steps = np.diff(plan_path(*args, jump_cost=0.1, hold_cost=0.1))
    assert not ((steps < 0) & (steps >= -synth.BACK_STEP_FRAMES)).any()


def test_path_avoids_sources_turned_far_from_the_target() -> None:
    _, _, fit, _ = _speaker()
    pose = np.zeros((N, 3))
    pose[5:16, 0] = 25.0  # the best-matching mouths were filmed with the head turned 25 degrees
    bank = dataclasses.replace(fit.bank, pose=pose)
    target = np.repeat(fit.bank.codes[10][None], 20, 0)
    args = (target, np.zeros((20, 3)), np.ones(20, bool), bank, fit.shape.scale)
    unlimited = plan_path(*args, pose_weight=0.0, max_pose_gap=np.inf)
    assert (pose[unlimited, 0] > 10).mean() > 0.5
    limited = plan_path(*args, pose_weight=0.0)
    assert (pose[limited, 0] == 0).all()


def test_path_matches_the_lip_gap_before_the_width() -> None:
    # Two sources near the target: one of exactly the asked-for shape code but a lip gap a tenth of
    # the bank's spread too wide, one of exactly the asked-for gap but half a scale too wide a mouth.
    # The gap decides (the warp cannot change what shows between the lips); the rest of the bank is
    # far off and only spreads the gaps.
    far = 20
    codes = np.zeros((far + 2, 4))
    codes[:far] = 10.0
    codes[far + 1, 1] = 0.5  # width
    opening = np.r_[np.linspace(0.0, 1.0, far), 0.0, 0.0]
    spread = float(np.std(opening))
    opening[far] = 0.5 + 0.1 * spread
    opening[far + 1] = 0.5
    bank = synth.TextureBank(np.arange(far + 2) * 10, codes, np.zeros((far + 2, 3)), np.zeros((far + 2, 1, 2)),
                             np.zeros((far + 2, 2), np.int64), np.zeros((far + 2, 1, 1, 3), np.uint8),
                             np.zeros((0, 3), np.int32))
    args = (np.zeros((1, 4)), np.zeros((1, 3)), np.ones(1, bool), bank, np.ones(4))
    kw = {"target_opening": np.array([0.5]), "bank_opening": opening}
    assert plan_path(*args, **kw)[0] == far + 1  # type: ignore[arg-type]
    # Without the gap the code alone would choose the other.
    assert plan_path(*args)[0] == far  # type: ignore[arg-type]


def test_second_path_keeps_away_from_the_first_ones_sources() -> None:
    _, _, fit, _ = _speaker()
    target = fit.bank.codes[10:40]
    args = (target, np.zeros((30, 3)), np.ones(30, bool), fit.bank, fit.shape.scale)
    first = plan_path(*args)
    second = plan_path(*args, avoid=first)
    # Other material at every frame: never within AVOID_FRAMES source frames of the first's source.
    assert (np.abs(fit.bank.frames[second] - fit.bank.frames[first]) > synth.AVOID_FRAMES).all()
    # Still a path: it plays its material forward rather than jumping every frame.
    assert (np.diff(second) == 1).mean() > 0.5
    # Frames where the first path has nothing to avoid (-1) leave the second free to choose it.
    none = np.full(30, -1)
    assert np.array_equal(plan_path(*args, avoid=none), first)


def test_plan_blends_a_second_texture_of_other_material() -> None:
    _, frames, fit, track = _speaker()
    plan = plan_face(track, fit, fit.bank.codes[::-1].copy())
    assert plan.second is not None
    both = plan.second >= 0
    assert both.mean() > 0.9
    assert (np.abs(fit.bank.frames[plan.second[both]] - fit.bank.frames[plan.path[both]]) > synth.AVOID_FRAMES).all()
    assert plan_face(track, fit, fit.bank.codes[::-1].copy(), second=False).second is None
    # The composed mouth is the two warped textures' blend: it differs from the first's alone inside
    # the mask, and nothing outside the mask changes either way.
    i = int(np.flatnonzero(both)[5])
    one = dataclasses.replace(plan, second=None)
    out_two, out_one = [], []
    for p, out in ((plan, out_two), (one, out_one)):
        details: list[FrameResult] = []
        out.append(FrameComposer([p])(i, frames[i].copy(), details))
        out.append(details[0].mask.full(*frames[i].shape[:2]))
    alpha = out_two[1]
    assert np.array_equal(alpha, out_one[1])  # the mask follows the first texture's validity only
    assert np.array_equal(out_two[0][alpha == 0], frames[i][alpha == 0])
    assert np.abs(out_two[0].astype(int) - out_one[0].astype(int))[alpha == 1].mean() > 0.5


def test_blend_textures_averages_where_the_second_is_valid_and_not_elsewhere() -> None:
    from engine.pipeline.session import blend_textures

    first = np.full((40, 60, 3), 100, np.uint8)
    second = np.full((40, 60, 3), 200, np.uint8)
    valid = np.zeros((40, 60), np.float32)
    valid[:, :30] = 1.0
    out = blend_textures(first, second, valid, 0.5, feather=4.0)
    assert (out[:, :20] == 150).all()  # well inside: half and half
    assert (out[:, 30:] == 100).all()  # where the second texture is not its source's face: the first alone
    edge = out[20, 20:30, 0].astype(int)
    assert (np.diff(edge) <= 0).all() and edge[-1] < 150  # feathered towards the edge, no step
    assert np.array_equal(blend_textures(first, second, np.zeros((40, 60)), 0.5, 4.0), first)


def test_path_jumps_only_where_jumping_is_cheap() -> None:
    _, _, fit, _ = _speaker()
    rng = np.random.default_rng(2)
    # A target that asks for a different source frame every few frames.
    target = fit.bank.codes[rng.integers(0, N, 40)]
    pose = np.zeros((40, 3))
    scalar = plan_path(target, pose, np.ones(40, bool), fit.bank, fit.shape.scale, jump_cost=0.4)
    same = plan_path(target, pose, np.ones(40, bool), fit.bank, fit.shape.scale, jump_cost=np.full(40, 0.4))
    assert np.array_equal(scalar, same)
    cheap = np.zeros(40, bool)
    cheap[::8] = True
    path = plan_path(target, pose, np.ones(40, bool), fit.bank, fit.shape.scale, jump_cost=np.where(cheap, 0.0, 1e6))
    steps = np.diff(path)
    jumps_at = np.flatnonzero((steps != 1) & (steps != 0)) + 1
    assert len(jumps_at) > 0 and cheap[jumps_at].all()


def test_warp_onto_own_points_reproduces_the_source() -> None:
    lms, frames, fit, _ = _speaker()
    j = 7
    mask = build_mask([lower_face_polygon(lms[j])], frames[j].shape[:2], feather_px(lms[j]))
    out = warp_to_box(fit.bank, j, control_points(lms[j], lms[j]), mask.box)
    x0, y0, x1, y1 = mask.box
    inside = mask.alpha > 0.5
    diff = np.abs(out.astype(int) - frames[j][y0:y1, x0:x1].astype(int))[inside]
    assert np.median(diff) <= 1


def test_a_turned_over_triangle_paints_no_mirror_image() -> None:
    # The same triangle with two corners swapped in the destination: its affine would be a mirror.
    src = np.array([[0.0, 0.0], [40.0, 0.0], [20.0, 30.0]])
    dst = src[[1, 0, 2]]
    tri = np.array([[0, 1, 2]])
    map_x, map_y = synth.piecewise_affine_maps(src, dst, tri, (40, 48))
    # Left to the pixels no triangle covers (here the identity), not read from the mirrored side.
    assert map_x[10, 10] == pytest.approx(10.0) and map_y[10, 10] == pytest.approx(10.0)
    # A triangle that keeps its orientation is still mapped by its own affine.
    moved = src + np.array([4.0, 0.0])
    map_x, _ = synth.piecewise_affine_maps(src, moved, tri, (40, 48))
    assert map_x[10, 20] == pytest.approx(16.0, abs=0.01)



def test_every_triangle_of_a_mesh_follows_its_own_affine() -> None:
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(3)
    src = np.concatenate([rng.uniform(5, 75, (30, 2)), [[0, 0], [80, 0], [0, 60], [80, 60]]])
    tri = Delaunay(src).simplices
    # A smooth distortion that is not affine: every triangle gets an affine of its own, and all keep
    # their corner order. Its last triangle is added again, turned over: it must paint nothing.
    dst = src + np.stack([2 + 0.004 * src[:, 0] ** 2, -1 + 0.003 * src[:, 0] * src[:, 1] / 10], axis=1)
    # One more triangle, drawn last over the middle of the mesh, mirrored between src and dst.
    over_src = np.array([[30.0, 20.0], [50.0, 20.0], [40.0, 40.0]])
    over_dst = over_src[:, ::-1] + [10.0, -5.0]  # x and y swapped: the corner order turns over
    pts_src, pts_dst = np.concatenate([src, over_src]), np.concatenate([dst, over_dst])
    mesh = np.concatenate([tri, [[len(src), len(src) + 1, len(src) + 2]]])
    map_x, map_y = synth.piecewise_affine_maps(pts_src, pts_dst, mesh, (70, 110))
    checked = 0
    for t in tri:
        d, sv = dst[t].astype(np.float32), src[t].astype(np.float32)
        m = cv2.getAffineTransform(d, sv)
        # Pixels well inside the triangle (away from the edges a neighbour may claim).
        x0, y0 = np.floor(d.min(0)).astype(int)
        x1, y1 = np.ceil(d.max(0)).astype(int)
        for y in range(max(y0, 0), min(y1 + 1, 70)):
            for x in range(max(x0, 0), min(x1 + 1, 110)):
                if cv2.pointPolygonTest(d.reshape(-1, 1, 2), (float(x), float(y)), True) < 1.5:
                    continue
                want = m @ np.array([x, y, 1.0])
                assert map_x[y, x] == pytest.approx(want[0], abs=1e-3)
                assert map_y[y, x] == pytest.approx(want[1], abs=1e-3)
                checked += 1
    assert checked > 500
    # No triangles at all: every pixel is uncovered (here the identity).
    map_x, map_y = synth.piecewise_affine_maps(src, dst, [], (4, 5))
    assert map_x[2, 3] == 3.0 and map_y[2, 3] == 2.0


def test_render_changes_the_mouth_and_passes_faceless_frames_through() -> None:
    lms, frames, fit, _track = _speaker()
    # Track absent on frames 20-29 (no face there) and flagged unusable on frame 35.
    keep = np.ones(N, bool)
    keep[20:30] = False
    usable = np.ones(N, bool)
    usable[35] = False
    t = FaceTrack("0", np.flatnonzero(keep), lms[keep], np.zeros((keep.sum(), 3)), usable[keep])
    codes = np.repeat(fit.bank.codes[np.argmax(mouth_opening(lms))][None], N, 0)  # wide open everywhere
    plan = plan_face(t, fit, codes)
    composer = FrameComposer([plan])
    for i in range(N):
        out = composer(i, frames[i])
        if 20 <= i < 30 or i == 35:
            assert np.array_equal(out, frames[i])
        elif mouth_opening(lms[i]) < 0.1:
            assert not np.array_equal(out, frames[i])


def test_silence_rests_the_mouth_closed() -> None:
    _, _, fit, _ = _speaker()
    # A model that always asks for an open mouth; the track is silent from frame 20 on.
    open_code = fit.shape.rest + 4 * fit.shape.scale * np.eye(len(fit.shape.rest))[0]

    class Loud:
        kind = "speaker"

        def predict(self, x: np.ndarray, energy_z: np.ndarray | None = None) -> np.ndarray:
            return np.repeat(open_code[None], len(x), 0)

    fit.model = Loud()  # type: ignore[assignment]
    speech = np.zeros(N, bool)
    speech[:20] = True
    sig = TrackSignals(np.zeros((N, 4), np.float32), speech, np.zeros(N))
    codes = target_codes(fit, sig, fps=25.0)
    assert np.allclose(codes[30:], fit.shape.rest)
    assert np.allclose(codes[:10], open_code, atol=1e-6)


def _syllables(n: int, fps: float = 25.0) -> np.ndarray:
    """Band energy (dB) of speech at about 4 syllables a second, with some irregularity."""
    t = np.arange(n) / fps
    rng = np.random.default_rng(7)
    return -30 + 12 * np.sin(2 * np.pi * 4.1 * t + 0.8 * np.sin(2 * np.pi * 0.7 * t)) + rng.normal(0, 2, n)


def test_articulation_follows_the_track_as_closely_as_the_real_mouth_did() -> None:
    from engine.lipsync.metrics import sync_meter
    from engine.pipeline.fit import ARTICULATION_R_MARGIN

    _, _, fit, _ = _speaker()
    n = 300
    fps = 25.0

    class Damped:
        """A speaker model that hears nothing useful in this voice: its mouth moves, but not with it."""

        kind = "speaker"

        def predict(self, x: np.ndarray, energy_z: np.ndarray | None = None) -> np.ndarray:
            rng = np.random.default_rng(11)
            wander = np.convolve(rng.normal(size=len(x) + 6), np.ones(7) / 7, mode="valid")[: len(x)]
            return np.outer(wander, fit.opening_dir) * 0.05  # around the speaker's average mouth

    fit.model = Damped()  # type: ignore[assignment]
    fit.opening_dir = np.linalg.lstsq(np.stack([fit.speech_opening, np.ones(N)], 1),
                                      fit.shape.encode_landmarks(np.stack([face_landmarks(o) for o in fit.speech_opening])),
                                      rcond=None)[0][0]
    fit.own_sync = (0.4, 3.0)  # the real mouth followed its own audio at r 0.4, z 3
    energy = _syllables(n, fps)
    sig = TrackSignals(np.zeros((n, 4), np.float32), np.ones(n, bool), energy, fps)
    plain = sync_meter(fit.shape.code_opening(target_codes(fit, sig, fps, calibrate=False)), energy, fps)
    tuned = sync_meter(fit.shape.code_opening(target_codes(fit, sig, fps)), energy, fps)
    assert plain.z < 2.0
    assert tuned.z >= 3.0  # as close as the real mouth was
    assert tuned.r <= 0.4 + ARTICULATION_R_MARGIN + 1e-9  # and not a loudness meter

    # A speaker whose real mouth barely followed the energy gets only what the ceiling allows.
    fit.own_sync = (0.05, 0.5)
    capped = sync_meter(fit.shape.code_opening(target_codes(fit, sig, fps)), energy, fps)
    assert capped.r <= 0.05 + ARTICULATION_R_MARGIN + 1e-9


def test_articulation_leaves_silence_at_rest() -> None:
    _, _, fit, _ = _speaker()
    n = 200
    fit.opening_dir = np.eye(len(fit.shape.rest))[0] * 10.0
    fit.own_sync = (0.5, 4.0)
    speech = np.ones(n, bool)
    speech[120:] = False
    sig = TrackSignals(np.zeros((n, 4), np.float32), speech, _syllables(n), 25.0)
    codes = target_codes(fit, sig, fps=25.0)
    assert np.allclose(codes[130:], fit.shape.rest)


def test_articulation_carries_syllables_not_phrase_loudness() -> None:
    from engine.pipeline.fit import articulation_push

    n, fps = 250, 25.0
    t = np.arange(n) / fps
    syllables = 6 * np.sin(2 * np.pi * 4.1 * t)
    # The voice grows 24 dB louder over the phrase: no reason for the mouth to open wider and wider.
    ramp = -40 + 24 * t / t[-1]
    push = articulation_push(ramp + syllables, np.ones(n, bool), fps)
    first, last = push[25:75], push[175:225]
    assert abs(float(last.mean() - first.mean())) < 0.2
    assert np.std(first) > 0.5 and np.std(last) > 0.5  # the syllables themselves are all there
    # Silence gets no push at all.
    speech = np.ones(n, bool)
    speech[100:150] = False
    assert np.all(articulation_push(ramp + syllables, speech, fps)[100:150] == 0)


def test_articulation_push_does_not_open_the_mouth_at_phrase_edges() -> None:
    """Phrases separated by silences at the energy floor: the first and last syllables of a phrase
    get no more push than the ones in its middle."""
    from engine.pipeline.fit import articulation_push

    n, fps = 400, 25.0
    t = np.arange(n) / fps
    speech = (t % 4.0) < 2.5  # 2.5 s phrases, 1.5 s pauses
    energy = np.where(speech, -30 + 6 * np.sin(2 * np.pi * 4.1 * t), -70.0)
    push = articulation_push(energy, speech, fps)
    starts = np.flatnonzero(speech[1:] & ~speech[:-1]) + 1
    edges = np.zeros(n, bool)
    for s in np.concatenate([[0], starts]):
        edges[s : s + 5] = True
    ends = np.flatnonzero(speech[:-1] & ~speech[1:])
    for e in ends:
        edges[e - 4 : e + 1] = True
    middle = speech & ~edges
    assert abs(float(push[edges & speech].mean()) - float(push[middle].mean())) < 0.4
    assert float(np.mean(np.abs(push[edges & speech]) >= 2.5)) < 0.1  # not pinned at the clip
    assert 0.7 < float(np.std(push[middle])) < 1.3  # the syllables keep their full scale
    # A track with no rhythm at all gets (almost) no push.
    flat = articulation_push(np.full(n, -30.0) + 1e-9 * np.arange(n), np.ones(n, bool), fps)
    assert np.abs(flat).max() < 0.1


def test_articulation_does_not_pass_the_energy_flicker_on_at_high_frame_rates() -> None:
    """The push is smoothed over a fixed time (not a fixed number of frames): at 60 fps a noisy
    track's frame-to-frame flicker must not reach the mouth, while its syllables do."""
    _, _, fit, _ = _speaker()
    n, fps = 600, 60.0
    fit.opening_dir = np.linalg.lstsq(np.stack([fit.speech_opening, np.ones(N)], 1),
                                      fit.shape.encode_landmarks(np.stack([face_landmarks(o) for o in fit.speech_opening])),
                                      rcond=None)[0][0]

    class Wander:
        kind = "speaker"

        def predict(self, x: np.ndarray, energy_z: np.ndarray | None = None) -> np.ndarray:
            rng = np.random.default_rng(11)
            slow = np.convolve(rng.normal(size=len(x) + 6), np.ones(7) / 7, mode="valid")[: len(x)]
            return np.outer(slow, fit.opening_dir) * 0.05

    fit.model = Wander()  # type: ignore[assignment]
    fit.own_sync = (0.6, 5.0)
    energy = _syllables(n, fps) + np.random.default_rng(3).normal(0, 4, n)
    sig = TrackSignals(np.zeros((n, 4), np.float32), np.ones(n, bool), energy, fps)
    opening = fit.shape.code_opening(target_codes(fit, sig, fps))
    power = np.abs(np.fft.rfft(opening - opening.mean())) ** 2
    freq = np.fft.rfftfreq(n, 1 / fps)
    assert power[freq > 10].sum() < 0.008 * power[freq > 0.5].sum()
    assert power[(freq > 3) & (freq < 5)].sum() > 0.2 * power[freq > 0.5].sum()  # the syllables


def test_articulation_gain_stops_where_the_sync_score_stops_rising(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the gain where the score peaks, more gain only replaces the predicted mouth with the
    loudness: the calibration stops there even when its aim is out of reach."""
    from engine.lipsync.metrics import SyncScore
    from engine.pipeline import fit as fit_mod

    _, _, fit, _ = _speaker()
    n, fps = 300, 25.0
    fit.opening_dir = np.eye(len(fit.shape.rest))[0] * fit.shape.scale[0] * 10
    fit.own_sync = (0.9, 50.0)  # an aim no gain reaches, and no ceiling in the way
    sig = TrackSignals(np.zeros((n, 4), np.float32), np.ones(n, bool), _syllables(n, fps), fps)

    def articulation(codes: np.ndarray) -> float:
        return float(np.std(fit.shape.code_opening(codes)))

    # With a score that only rises, the calibration goes to its largest gain.
    monkeypatch.setattr(fit_mod, "sync_meter", lambda op, *_a, **_k: SyncScore(float(np.std(op)), 0.1, 70.0, 100.0))
    most = articulation(target_codes(fit, sig, fps))
    assert most > 0
    peak = 0.4 * most

    def peaked(opening: np.ndarray, *_a: object, **_k: object) -> SyncScore:
        # The score rises with the articulation up to ``peak`` and falls beyond it.
        return SyncScore(5.0 - ((float(np.std(opening)) - peak) / most) ** 2, 0.1, 70.0, 100.0)

    monkeypatch.setattr(fit_mod, "sync_meter", peaked)
    assert abs(articulation(target_codes(fit, sig, fps)) - peak) < 0.15 * peak


def test_texture_from_outside_the_source_face_is_not_composited() -> None:
    from engine.lipsync.synth import warp_with_validity
    from engine.pipeline.session import trim_mask

    lms, _, fit, _ = _speaker()
    own = lms[0]
    mask = build_mask([lower_face_polygon(own)], (320, 320), feather_px(own))
    # The source's own geometry: every changed pixel reads the source's face.
    _, valid = warp_with_validity(fit.bank, 0, control_points(own, own), mask.box)
    assert valid[mask.alpha > 0].mean() > 0.99
    assert trim_mask(mask, valid, feather_px(own)).alpha.sum() >= 0.99 * mask.alpha.sum()
    # A source whose texture does not reach down to the chin (a crop cut short, as where the warp
    # of a very different head turn reads beyond what was stored): those pixels are dropped.
    import dataclasses

    short = [np.asarray(c) for c in fit.bank.crops]
    short[0] = short[0][: short[0].shape[0] // 2]
    bank = dataclasses.replace(fit.bank, crops=short)
    _, valid = warp_with_validity(bank, 0, control_points(own, own), mask.box)
    outside = (mask.alpha > 0) & (valid == 0)
    assert outside.any()
    trimmed = trim_mask(mask, valid, feather_px(own))
    assert np.all(trimmed.alpha[outside] == 0)
    assert np.all(trimmed.alpha <= mask.alpha)
    assert trimmed.alpha.sum() > 0  # the upper part still changes


def test_two_faces_in_one_frame_each_get_their_own_mouth_and_nothing_else_changes() -> None:
    hw = (320, 640)
    opening = 0.02 + 0.25 * np.abs(np.sin(np.arange(N) / 4.0))
    left = np.stack([face_landmarks(o, cx=160.0, seed=i % 3) for i, o in enumerate(opening)])
    right = np.stack([face_landmarks(o, cx=480.0, seed=i % 3) for i, o in enumerate(opening[::-1])])
    frames = []
    for i in range(N):
        a, b = face_frame(left[i], hw, seed=i), face_frame(right[i], hw, seed=1000 + i)
        frames.append(np.concatenate([a[:, :320], b[:, 320:]], 1))
    plans = []
    for name, lms in (("left", left), ("right", right)):
        shape = fit_shape_model(lms, 5)
        codes = shape.encode_landmarks(lms)
        writer = BankWriter(np.arange(N), codes, np.zeros((N, 3)), lms, hw)
        for i in range(N):
            writer.add(i, frames[i])
        fit = SpeakerFit(name, shape, SpeakerModel(shape.scale, None, None, None, None, "speaker"), writer.finish(),
                         opening, np.arange(N), np.arange(N))
        track = FaceTrack(name, np.arange(N), lms, np.zeros((N, 3)), np.ones(N, bool))
        wide = np.repeat(codes[np.argmax(mouth_opening(lms))][None], N, 0)
        plans.append(plan_face(track, fit, wide))
    composer = FrameComposer(plans)
    for i in (0, 12, 25):  # frames where at least one original mouth is nearly closed
        details: list[FrameResult] = []
        out = composer(i, frames[i], details)
        assert sorted(d.identity for d in details) == ["left", "right"]
        inside = np.zeros(hw, bool)
        for d in details:
            inside |= d.mask.full(*hw) > 0
        assert np.array_equal(out[~inside], frames[i][~inside])
        for d, lms in zip(sorted(details, key=lambda d: d.identity), (left, right), strict=True):
            x0, y0, x1, y1 = d.mask.box
            if mouth_opening(lms[i]) < 0.1:
                assert not np.array_equal(out[y0:y1, x0:x1], frames[i][y0:y1, x0:x1])


def test_plan_never_asks_the_warp_for_a_mouth_beyond_the_bank() -> None:
    lms, frames, fit, track = _speaker()
    lo, hi = fit.bank.codes.min(0), fit.bank.codes.max(0)
    widest = fit.bank.codes[np.argmax(mouth_opening(lms))]
    # Twice as far from the mean as the widest filmed mouth, and one inside the range.
    beyond = np.repeat((2.0 * widest)[None], N, 0)
    inside = np.repeat(((lo + hi) / 2)[None], N, 0)
    plan = plan_face(track, fit, np.where((np.arange(N) < N // 2)[:, None], beyond, inside))
    assert np.all(plan.codes >= lo - 1e-9) and np.all(plan.codes <= hi + 1e-9)
    np.testing.assert_allclose(plan.codes[N // 2 :], inside[N // 2 :])
    asked = fit.shape.code_opening(plan.codes[:1])[0]
    filmed = fit.shape.code_opening(fit.bank.codes).max()
    assert asked <= 1.2 * filmed, f"asked for an opening of {asked:.3f}, the bank's widest is {filmed:.3f}"
    out = FrameComposer([plan])(0, frames[0])
    assert out.shape == frames[0].shape


def test_plan_lets_the_warp_stretch_a_mouth_a_little_and_no_further() -> None:
    _, _, fit, track = _speaker()
    gap = fit.shape.code_opening
    filmed = gap(fit.bank.codes).max()
    widest = fit.bank.codes[np.argmax(gap(fit.bank.codes))]
    rest = fit.shape.rest
    # From the rest to three times as far as the widest filmed mouth along the same direction.
    asks = rest + np.linspace(0.0, 3.0, N)[:, None] * (widest - rest)[None]
    inside = within_bank(asks, fit.bank.codes)
    # This fixture's mouths vary along one direction, so the bank's range alone keeps the gap
    # within 2% of the widest: the limit is exercised below it.
    stretch = 0.8
    limit = stretch * filmed
    small = gap(inside) <= limit
    assert small.any() and (~small).any(), "the fixture must ask for both"
    kept = within_bank_opening(asks, fit.shape, fit.bank.codes, stretch=stretch)
    got = gap(kept)
    assert got.max() <= limit * 1.001, f"asked the warp for {got.max() / filmed:.2f}x the widest filmed mouth"
    assert got[~small].min() >= 0.97 * limit  # brought to the limit, not closed further
    np.testing.assert_allclose(kept[small], inside[small])  # within the limit: as asked
    assert np.all(kept >= fit.bank.codes.min(0) - 1e-9) and np.all(kept <= fit.bank.codes.max(0) + 1e-9)
    # The plan applies it at MAX_OPENING_STRETCH.
    plan = plan_face(track, fit, asks)
    np.testing.assert_allclose(plan.codes, within_bank_opening(asks, fit.shape, fit.bank.codes))
    assert gap(plan.codes).max() <= MAX_OPENING_STRETCH * filmed * 1.001


def test_a_bank_on_disk_reads_back_the_crops_a_bank_in_memory_holds(tmp_path) -> None:
    opening = 0.02 + 0.25 * np.abs(np.sin(np.arange(N) / 4.0))
    lms = np.stack([face_landmarks(o, seed=i % 3) for i, o in enumerate(opening)])
    frames = [face_frame(lm, seed=i) for i, lm in enumerate(lms)]
    codes = fit_shape_model(lms, 5).encode_landmarks(lms)
    banks = []
    for path in (None, tmp_path / "bank.npy"):
        writer = BankWriter(np.arange(N), codes, np.zeros((N, 3)), lms, frames[0].shape[:2], path)
        for i in range(N):
            writer.add(i, frames[i])
        banks.append(writer.finish())
    mem, disk = banks
    assert isinstance(disk.crops, synth.CropFile) and not list(tmp_path.glob("*.tmp.npy"))
    assert disk.crops.shape == mem.crops.shape and len(disk.crops) == N
    assert mem.crops[5].any()  # the crops hold the face, not the file's zero fill
    np.testing.assert_array_equal(disk.crops[5], mem.crops[5])
    np.testing.assert_array_equal(disk.crops[-1], mem.crops[-1])
    np.testing.assert_array_equal(disk.crops[[3, 7]], mem.crops[[3, 7]])
    np.testing.assert_array_equal(disk.crops[2:9:3, 4:10], mem.crops[2:9:3, 4:10])
    np.testing.assert_array_equal(np.asarray(disk.crops), mem.crops)
    np.testing.assert_array_equal(np.load(tmp_path / "bank.npy"), mem.crops)  # a plain .npy file
    np.testing.assert_array_equal(disk.crops[5, 4:10, :, 0], mem.crops[5, 4:10, :, 0])
    np.testing.assert_array_equal(disk.crops[np.arange(N) % 7 == 0], mem.crops[np.arange(N) % 7 == 0])
    with pytest.raises(IndexError):
        disk.crops[N]
    for unsupported in ((Ellipsis, 0), ([0, 1], [2, 3]), True, np.array([[0, 1], [2, 3]])):
        with pytest.raises(TypeError):  # refused, never read with other semantics than numpy's
            disk.crops[unsupported]
    # A bank file cut short reads as an error naming the file, not as black texture.
    data = (tmp_path / "bank.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(data[: len(data) - 10])
    with pytest.raises(OSError, match=r"short\.npy"):
        synth.CropFile(tmp_path / "short.npy")[N - 1]


def test_dub_trace_reports_the_targets_and_the_sources_readings() -> None:
    from engine.pipeline.evaluate import closure_level, dub_trace

    lms, frames, fit, track = _speaker()
    codes = fit.bank.codes[::-1].copy()
    plan = plan_face(track, fit, codes)
    real = mouth_opening(lms)
    render = real + 0.01
    speech = np.ones(N, bool)
    speech[10:25] = False  # one silence of 0.6 s at 25 fps
    i = 30
    # The target opening as the eval collects it: from the landmarks the frame was composed to.
    details: list[FrameResult] = []
    FrameComposer([plan])(i, frames[i].copy(), details)
    op_target = np.full(N, np.nan)
    op_target[i] = float(mouth_opening(details[0].target_landmarks))
    tr = dub_trace(plan, op_target, render, real, np.ones(N, bool), speech, 25.0, np.ones(N, bool))
    asked = mouth_opening(fit.shape.apply_to_frame(lms[i], plan.codes[i]))
    assert tr["target"][i] == pytest.approx(float(asked))
    assert tr["first"][i] == pytest.approx(float(mouth_opening(fit.bank.landmarks[plan.path[i]])))
    has_second = plan.second is not None and plan.second[i] >= 0
    assert np.isfinite(tr["second"][i]) == has_second
    assert tr["silence"][10:25].all() and not tr["silence"][25:].any()
    assert tr["level"] == pytest.approx(closure_level(real, np.ones(N, bool)))
    np.testing.assert_array_equal(tr["render"], render)
