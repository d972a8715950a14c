"""An identity's per-frame arrays, joined from the tracks it was merged from."""

from __future__ import annotations

import numpy as np

from engine.faces.analysis import AnalysisSettings, FaceTrackingSession, _TrackRecord
from engine.faces.landmarks import mouth_opening


def _record(track_id: int, frames: list[int], rng: np.random.Generator) -> _TrackRecord:
    rec = _TrackRecord(track_id, AnalysisSettings())
    for f in frames:
        pts = (rng.random((468, 2)) * 100 + f).astype(np.float32)
        rec.frames.append(f)
        rec.boxes.append(np.array([f, f, f + 10, f + 10], np.float32))
        rec.raw.append(pts + 0.5)
        rec.smooth.append(pts)
        rec.conf.append(0.9)
        rec.pose.append(np.array([f, 0, 0], np.float32))
        rec.flags.append(f % 2)
    return rec


def test_tracks_merged_into_an_identity_are_in_frame_order() -> None:
    rng = np.random.default_rng(0)
    # Two tracks of one person, the second one's frames between and after the first one's.
    a, b = _record(1, [0, 1, 2, 10, 11], rng), _record(2, [5, 6, 12, 13], rng)
    expect = {f: (s, r) for rec in (a, b) for f, s, r in zip(rec.frames, rec.smooth, rec.raw, strict=True)}
    ident = FaceTrackingSession._identity(0, [a, b], np.arange(20) / 25.0)
    np.testing.assert_array_equal(ident.frames, sorted(expect))
    for i, f in enumerate(ident.frames):
        np.testing.assert_array_equal(ident.landmarks[i], expect[int(f)][0])
        np.testing.assert_array_equal(ident.landmarks_raw[i], expect[int(f)][1])
        assert ident.boxes[i][0] == f and ident.pose[i][0] == f and ident.flags[i] == f % 2
    assert ident.landmarks.dtype == np.float32 and ident.landmarks.shape == (9, 468, 2)
    np.testing.assert_array_equal(ident.track_ids, [1, 1, 1, 2, 2, 1, 1, 2, 2])
    np.testing.assert_allclose(ident.mouth_opening, np.asarray(mouth_opening(ident.landmarks), np.float32))


def test_a_record_is_turned_into_an_identity_once() -> None:
    """The per-frame lists are handed over to the identity's arrays: a second pass would have
    nothing to fill its landmarks with, and says so instead of returning uninitialised ones."""
    import pytest

    rec = _record(1, [0, 1, 2], np.random.default_rng(1))
    FaceTrackingSession._identity(0, [rec], np.arange(5) / 25.0)
    with pytest.raises(RuntimeError, match="once"):
        FaceTrackingSession._identity(0, [rec], np.arange(5) / 25.0)
