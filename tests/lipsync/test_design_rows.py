"""Model rows computed when read (DesignRows) against the same rows computed up front."""

from __future__ import annotations

import numpy as np
import pytest

from engine.audio.features import WhisperFeatures, features_at_frames
from engine.lipsync.model import TrackNorm, fit_ridge, pool_window
from engine.pipeline.fit import CONTEXT_S, DesignRows, select_rows


def _track(seed: int = 0, seconds: float = 12.0, fps: float = 25.0, offset: float = -0.3):
    rng = np.random.default_rng(seed)
    n_vec = int(seconds * 50)
    # A slow random walk: neighbouring vectors alike, as real encoder output is.
    vectors = np.cumsum(rng.normal(size=(n_vec, 16)), axis=0).astype(np.float32) * 0.1
    feats = WhisperFeatures(vectors, rng.normal(size=16).astype(np.float32), seconds)
    speech = rng.random(n_vec) > 0.3
    norm = TrackNorm.from_vectors(vectors, speech)
    times = np.arange(int((seconds + 1.0) * fps)) / fps  # the video runs past the track's end
    return feats, norm, times, offset


def _eager(feats, norm, times, offset) -> np.ndarray:
    """All rows at once, float32 as the engine keeps them."""
    return pool_window(features_at_frames(feats, times, offset, CONTEXT_S), norm).astype(np.float32)


def test_rows_read_as_the_rows_computed_up_front() -> None:
    feats, norm, times, offset = _track()
    eager = _eager(feats, norm, times, offset)
    lazy = DesignRows(feats, norm, times, offset)
    assert lazy.shape == eager.shape and len(lazy) == len(eager) and lazy.ndim == 2
    np.testing.assert_array_equal(np.asarray(lazy), eager)
    np.testing.assert_array_equal(lazy[17:203:3], eager[17:203:3])
    np.testing.assert_array_equal(lazy[-5:], eager[-5:])
    np.testing.assert_array_equal(lazy[5], eager[5])
    np.testing.assert_array_equal(lazy[-1], eager[-1])
    idx = np.array([0, 40, -2, 40, 7])
    np.testing.assert_array_equal(lazy[idx], eager[idx])
    mask = np.arange(len(eager)) % 7 == 0
    np.testing.assert_array_equal(lazy[mask], eager[mask])
    assert lazy[np.zeros(0, np.int64)].shape == (0, eager.shape[1])
    assert np.asarray(lazy, np.float64).dtype == np.float64


def test_a_view_of_some_rows_reads_those_rows() -> None:
    feats, norm, times, offset = _track(1)
    eager = _eager(feats, norm, times, offset)
    lazy = DesignRows(feats, norm, times, offset)
    rows = np.clip(np.arange(10, 300, 2) + 3, 0, len(eager) - 1)
    view = select_rows(lazy, rows)
    assert isinstance(view, DesignRows) and len(view) == len(rows)
    np.testing.assert_array_equal(np.asarray(view), eager[rows])
    np.testing.assert_array_equal(view[4:9], eager[rows][4:9])
    np.testing.assert_array_equal(view.take(np.array([1, 3]))[:], eager[rows][[1, 3]])
    np.testing.assert_array_equal(select_rows(eager, rows), eager[rows])


def test_bad_indices_are_refused() -> None:
    lazy = DesignRows(*_track(2))
    n = len(lazy)
    with pytest.raises(IndexError):
        lazy[np.array([n])]
    with pytest.raises(IndexError):
        lazy[np.ones(n - 1, bool)]
    with pytest.raises(TypeError):
        lazy[0, 1]
    with pytest.raises(TypeError):
        lazy[np.array([0.5])]


def test_norm_matches_the_whole_array_statistics() -> None:
    rng = np.random.default_rng(3)
    v = (rng.normal(size=(10000, 8)) * 3 + 5).astype(np.float32)
    speech = rng.random(10000) > 0.5
    norm = TrackNorm.from_vectors(v, speech, block=999)
    np.testing.assert_allclose(norm.mean, v[speech].astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(norm.std, v[speech].astype(np.float64).std(0) + 1e-3, rtol=1e-6)
    few = np.zeros(10000, bool)
    few[:10] = True  # under 50 speech vectors: all of them
    np.testing.assert_allclose(TrackNorm.from_vectors(v, few).mean, v.astype(np.float64).mean(0), rtol=1e-6)


def test_primal_ridge_on_rows_computed_when_read_equals_the_array_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.lipsync.model as model

    monkeypatch.setattr(model, "ROW_BLOCK", 64)  # folds of ~200 rows read in several blocks each
    feats, norm, times, offset = _track(4, seconds=40.0)
    lazy = DesignRows(feats, norm, times, offset)
    eager = np.asarray(lazy)
    rng = np.random.default_rng(5)
    y = eager @ rng.normal(size=(eager.shape[1], 3)) + 0.1 * rng.normal(size=(len(eager), 3))
    a = fit_ridge(lazy, y, form="primal")
    b = fit_ridge(eager, y, form="dual")
    assert a.lam == b.lam
    np.testing.assert_allclose(a.predict(lazy), b.predict(eager), atol=1e-8)
