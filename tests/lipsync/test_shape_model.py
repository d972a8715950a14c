"""Shape codes, smoothing and the speaker model on synthetic faces and features."""

from __future__ import annotations

import numpy as np
import pytest

from engine.lipsync.geometry import mouth_opening, similarity, to_canonical
from engine.lipsync.model import energy_fallback, fit_ridge, fit_speaker_model, rest_weights
from engine.lipsync.shape import canonical_shapes, fit_shape_model, smooth_codes
from tests.lipsync.synthface import face_landmarks


def _faces(n: int = 80) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    opening = 0.02 + 0.25 * np.abs(np.sin(np.arange(n) / 3.0))
    width = 1.0 + 0.1 * rng.standard_normal(n)
    lms = np.stack([face_landmarks(o, w, cx=150 + 5 * np.sin(i), iod=70 + i % 5) for i, (o, w) in enumerate(zip(opening, width, strict=True))])
    return lms, opening


def test_similarity_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(0)
    src = rng.standard_normal((6, 2))
    ang, s, t = 0.3, 1.7, np.array([4.0, -2.0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = s * src @ rot.T + t
    m = similarity(src, dst)
    assert np.allclose(m[:, :2], s * rot, atol=1e-9)
    assert np.allclose(m[:, 2], t, atol=1e-9)


def test_canonical_frame_removes_position_scale_and_rotation() -> None:
    lm = face_landmarks(0.1)
    c = lm.mean(0)
    ang = 0.4
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    moved = (lm - c) @ rot.T * 1.8 + c + [30, -12]
    a, _ = to_canonical(lm)
    b, _ = to_canonical(moved)
    assert np.allclose(a, b, atol=1e-6)


def test_shape_codes_round_trip_and_first_code_is_opening() -> None:
    lms, opening = _faces()
    model = fit_shape_model(lms, n_components=6)
    shapes, _ = canonical_shapes(lms)
    codes = model.encode(shapes)
    assert codes.shape == (len(lms), 6)
    # The synthetic faces vary in two parameters plus noise-free geometry: 6 components reconstruct them.
    assert np.abs(model.decode(codes) - shapes).max() < 1e-6
    assert np.corrcoef(codes[:, 0], opening)[0, 1] > 0.9
    # The resting mouth is a closed one.
    assert model.rest_opening < np.quantile(mouth_opening(lms), 0.25)
    # The opening of codes is the inner-lip gap of their decoded shapes (computed from two points).
    from engine.lipsync.shape import LOWER_INNER_LIP, SHAPE_POINTS, UPPER_INNER_LIP

    decoded = model.decode(codes).reshape(len(codes), -1, 2)
    gap = decoded[:, SHAPE_POINTS.index(LOWER_INNER_LIP)] - decoded[:, SHAPE_POINTS.index(UPPER_INNER_LIP)]
    np.testing.assert_allclose(model.code_opening(codes), np.linalg.norm(gap, axis=-1), rtol=0, atol=1e-12)


def test_apply_to_frame_moves_only_the_mouth_and_is_a_no_op_for_its_own_code() -> None:
    lms, _ = _faces()
    model = fit_shape_model(lms, n_components=6)
    own = model.encode_landmarks(lms[5])[0]
    same = model.apply_to_frame(lms[5], own)
    assert np.allclose(same, lms[5], atol=1e-6)
    opened = model.apply_to_frame(lms[5], own + np.eye(6)[0] * 3 * model.scale[0])
    assert mouth_opening(opened) > mouth_opening(lms[5]) + 0.05
    from engine.lipsync.geometry import SHAPE_INDEX

    others = np.setdiff1d(np.arange(468), SHAPE_INDEX)
    assert np.array_equal(opened[others], lms[5][others])


def test_smoothing_has_no_lag_on_a_step() -> None:
    step = np.zeros((60, 2))
    step[30:] = 1.0
    sm = smooth_codes(step, 2.0)
    # Symmetric about the step: half-way exactly between frames 29 and 30, no delay.
    assert np.allclose(sm[29] + sm[30], 1.0, atol=1e-9)
    assert sm[29, 0] < 0.5 < sm[30, 0]
    assert np.allclose(sm[:20], 0.0, atol=1e-6) and np.allclose(sm[40:], 1.0, atol=1e-6)


def test_ridge_recovers_a_linear_map_and_picks_a_penalty() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 40))
    w = rng.standard_normal((40, 3))
    y = x @ w + 0.05 * rng.standard_normal((200, 3))
    model = fit_ridge(x[:150], y[:150])
    pred = model.predict(x[150:])
    for c in range(3):
        assert np.corrcoef(pred[:, c], y[150:, c])[0, 1] > 0.95
    # Pure noise: cross-validation should choose a strong penalty.
    noise = fit_ridge(x[:150], rng.standard_normal((150, 1)))
    assert noise.lam >= 10


def test_speaker_model_predicts_codes_from_features() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 30))
    codes = np.stack([x[:, 0] + 0.5 * x[:, 1], x[:, 2]], 1) * [2.0, 0.5]
    model = fit_speaker_model(x[:200], codes[:200], np.array([2.0, 0.5]))
    pred = model.predict(x[200:])
    assert model.kind == "speaker"
    assert np.corrcoef(pred[:, 0], codes[200:, 0])[0, 1] > 0.9


def test_energy_fallback_follows_energy_within_the_speakers_range() -> None:
    lms, _opening = _faces()
    shape = fit_shape_model(lms, n_components=4)
    codes = shape.encode_landmarks(lms)
    model = energy_fallback(codes, mouth_opening(lms), shape.scale, shape.rest)
    pred = model.predict(None, np.array([-1.0, 0.0, 1.0]))
    assert pred[0, 0] < pred[1, 0] < pred[2, 0]


def test_rest_weights_close_the_mouth_in_silences_only() -> None:
    fps = 25.0
    speech = np.ones(100, bool)
    speech[40:60] = False  # 0.8 s of silence
    speech[80:83] = False  # 0.12 s: a pause inside speech, not a rest
    w = rest_weights(speech, fps)
    assert np.all(w[40:60] == 1.0)
    assert np.all(w[82:83] < 1.0)
    assert w[10] == 0.0


def test_rest_is_a_closed_mouth_even_when_the_speaker_pauses_with_lips_apart() -> None:
    lms, opening = _faces(200)
    # The frames marked silent are all half open (a speaker who breathes through the mouth in pauses).
    silent = (opening > 0.12) & (opening < 0.16)
    assert silent.sum() >= 5
    model = fit_shape_model(lms, 5, silent=silent)
    assert model.rest_opening <= np.quantile(mouth_opening(lms), 0.1) + 1e-9
    # A speaker who does close their lips in pauses rests at that closed mouth.
    closed = opening < 0.05
    model = fit_shape_model(lms, 5, silent=closed)
    assert model.rest_opening <= 0.05


def test_ridge_primal_and_dual_forms_agree() -> None:
    """Long footage fits in the primal form (D x D), short in the dual (rows x rows): same model."""
    rng = np.random.default_rng(5)
    for n, d in [(120, 30), (30, 120)]:
        x = rng.standard_normal((n, d)) + 2.0
        y = x[:, :2] @ np.array([[1.0, -0.5], [0.3, 2.0]]) + 0.5 * rng.standard_normal((n, 2))
        dual = fit_ridge(x, y, form="dual")
        primal = fit_ridge(x, y, form="primal")
        assert dual.lam == primal.lam
        assert np.allclose(dual.weights, primal.weights, atol=1e-8)
        xc = x - x.mean(0)
        scale = np.mean(np.sum(xc**2, axis=1))
        closed = np.linalg.solve(xc.T @ xc + dual.lam * scale * np.eye(d), xc.T @ (y - y.mean(0)))
        assert np.allclose(primal.weights, closed, atol=1e-8)


def test_symmetric_updates_work_in_place_on_the_lower_triangle(monkeypatch: pytest.MonkeyPatch) -> None:
    import scipy.linalg.blas as blas

    from engine.lipsync.model import _sym_update

    outputs: list[np.ndarray] = []
    for name in ("dsyrk", "dsyr"):
        original = getattr(blas, name)

        def spy(*args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            out = _original(*args, **kwargs)
            outputs.append(out)
            return out

        monkeypatch.setattr(blas, name, spy)
    rng = np.random.default_rng(3)
    rows, vec = rng.standard_normal((50, 7)), rng.standard_normal(7)
    g = np.zeros((7, 7))
    _sym_update(g, 1.0, rows)
    _sym_update(g, -0.5, vec=vec)
    assert len(outputs) == 2 and all(np.shares_memory(out, g) for out in outputs)  # BLAS wrote into g itself
    want = rows.T @ rows - 0.5 * np.outer(vec, vec)
    low = np.tril_indices(7)
    assert np.allclose(g[low], want[low], atol=1e-12)


def test_primal_ridge_holds_no_extra_feature_by_feature_matrices() -> None:
    """At D features the primal fit holds the Gram totals, one fold's Gram matrix (which becomes its
    eigenvectors) and the eigen-solver's workspace (about two more): under 5.5 D x D matrices at its
    peak with one block of rows, where a copy for the solver and the temporaries of every update
    made it 6 (at 2560 features each is 52 MB)."""
    import tracemalloc

    rng = np.random.default_rng(2)
    n, d = 2500, 1000
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = x[:, :2].astype(np.float64) + rng.standard_normal((n, 2))
    tracemalloc.start()
    try:
        fit_ridge(x, y, form="primal")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5.5 * d * d * 8, f"peak {peak / (d * d * 8):.2f} D x D matrices"


def test_ridge_on_long_footage_reads_its_rows_a_block_at_a_time() -> None:
    """The primal form never holds a float64 copy of all the rows (an hour of speech at 30 fps is
    108000 rows of 2560 features): its peak allocation stays near one cross-validation block."""
    import tracemalloc

    rng = np.random.default_rng(9)
    n, d = 20000, 40
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = x[:, :3].astype(np.float64) @ np.array([[1.0], [0.5], [-2.0]]) + rng.standard_normal((n, 1))
    tracemalloc.start()
    try:
        model = fit_ridge(x, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full_copy = n * d * 8
    assert peak < 0.5 * full_copy, f"peak {peak / 1e6:.1f} MB against {full_copy / 1e6:.1f} MB for a full copy"
    assert np.allclose(model.weights[:3, 0], [1.0, 0.5, -2.0], atol=0.05)


def test_rest_is_the_touching_lips_not_a_low_percentile_of_speech() -> None:
    """A speaker who closes the lips on only a few frames (4%) and otherwise keeps them at least a
    little apart: the rest is those closed frames, not the slightly parted tenth percentile."""
    rng = np.random.default_rng(11)
    n = 250
    opening = rng.uniform(0.06, 0.3, n)
    opening[rng.choice(n, 10, replace=False)] = rng.uniform(0.0, 0.01, 10)
    lms = np.stack([face_landmarks(o, seed=i % 4) for i, o in enumerate(opening)])
    model = fit_shape_model(lms, 5)
    assert np.quantile(mouth_opening(lms), 0.1) > 0.06
    assert model.rest_opening < 0.02
