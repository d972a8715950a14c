"""An identity's per-frame arrays, joined from the tracks it was merged from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.faces import analysis as analysis_mod
from engine.faces.analysis import AnalysisSettings, FaceAnalysis, FaceTrackingSession, _TrackRecord
from engine.faces.landmarks import mouth_opening
from engine.pipeline.tracks import tracks_from_analysis
from engine.runtime.rowfile import FileRows, RowLog


def _record(track_id: int, frames: list[int], rng: np.random.Generator, log: RowLog | None = None,
            kept: dict[int, tuple[np.ndarray, np.ndarray]] | None = None) -> _TrackRecord:
    rec = _TrackRecord(track_id, AnalysisSettings(), log)
    for f in frames:
        pts = (rng.random((468, 2)) * 100 + f).astype(np.float32)
        rec.frames.append(f)
        rec.boxes.append(np.array([f, f, f + 10, f + 10], np.float32))
        rec.add_landmarks(pts, pts + 0.5)
        if kept is not None:
            kept[f] = (pts, pts + 0.5)
        rec.conf.append(0.9)
        rec.pose.append(np.array([f, 0, 0], np.float32))
        rec.flags.append(f % 2)
    return rec


def test_tracks_merged_into_an_identity_are_in_frame_order() -> None:
    rng = np.random.default_rng(0)
    # Two tracks of one person, the second one's frames between and after the first one's.
    expect: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    a, b = _record(1, [0, 1, 2, 10, 11], rng, kept=expect), _record(2, [5, 6, 12, 13], rng, kept=expect)
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
    rec = _record(1, [0, 1, 2], np.random.default_rng(1))
    FaceTrackingSession._identity(0, [rec], np.arange(5) / 25.0)
    with pytest.raises(RuntimeError, match="once"):
        FaceTrackingSession._identity(0, [rec], np.arange(5) / 25.0)


def test_a_long_presence_keeps_its_landmarks_in_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the size limit an identity's landmarks are rows in files with the values the arrays
    would hold; the analysis saves them as .npy files beside it and loads them as rows again; the
    engine's face track reads them where they are."""
    frames_a, frames_b = list(range(0, 3000, 2)), [*range(1, 3000, 2), 3000, 3001]
    log = RowLog((2, 468, 2), np.float32, tmp_path)  # one log shared by the tracks, as in a session
    expect: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    recs = [_record(1, frames_a, np.random.default_rng(2), log, expect),
            _record(2, frames_b, np.random.default_rng(3), log, expect)]
    held = FaceTrackingSession._identity(0, [_record(1, frames_a, np.random.default_rng(2)),
                                             _record(2, frames_b, np.random.default_rng(3))], np.arange(3002) / 25.0)
    assert isinstance(held.landmarks, np.ndarray)  # under the limit: arrays
    monkeypatch.setattr(analysis_mod, "LANDMARKS_IN_FILE_ABOVE_BYTES", 0)
    ident = FaceTrackingSession._identity(0, recs, np.arange(3002) / 25.0)
    assert isinstance(ident.landmarks, FileRows) and isinstance(ident.landmarks_raw, FileRows)
    order = sorted(expect)
    np.testing.assert_array_equal(np.asarray(ident.landmarks), np.stack([expect[f][0] for f in order]))
    np.testing.assert_array_equal(np.asarray(ident.landmarks_raw), np.stack([expect[f][1] for f in order]))
    np.testing.assert_array_equal(np.asarray(ident.landmarks), held.landmarks)
    np.testing.assert_array_equal(ident.mouth_opening, held.mouth_opening)
    result = FaceAnalysis("v.mp4", "builtin-x", 640, 480, 3002, np.arange(3002) / 25.0, [ident], [7])
    assert result.faces_at(3001)[0].landmarks.shape == (468, 2)
    np.testing.assert_array_equal(result.faces_at(11)[0].landmarks, expect[11][0])
    path = tmp_path / "a.npz"
    result.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.i0_landmarks.npy", "a.i0_landmarks_raw.npy",
                                                          "a.json", "a.npz"]
    back = FaceAnalysis.load(path)
    got = back.identities[0]
    assert isinstance(got.landmarks, FileRows) and isinstance(got.landmarks_raw, FileRows)
    np.testing.assert_array_equal(np.asarray(got.landmarks_raw), held.landmarks_raw)
    np.testing.assert_array_equal(got.frames, held.frames)
    (track,) = tracks_from_analysis(back)
    assert isinstance(track.landmarks, FileRows) and isinstance(track.raw, FileRows)
    assert track.spill(tmp_path).landmarks is track.landmarks  # already in a file: left there
    np.testing.assert_array_equal(track.landmarks_at(3001), held.landmarks[-1].astype(np.float64))
    np.testing.assert_array_equal(track.raw_at(np.array([5, 6])), held.landmarks_raw[[5, 6]].astype(np.float64))
    (in_memory,) = tracks_from_analysis(FaceAnalysis("v.mp4", "builtin-x", 640, 480, 3002, np.arange(3002) / 25.0,
                                                     [held], [7]))
    np.testing.assert_array_equal(track.usable, in_memory.usable)
    np.testing.assert_array_equal(track.openings(3002), in_memory.openings(3002))
    # A missing landmark file makes the saved analysis unreadable (re-analysed), not half loaded.
    (tmp_path / "a.i0_landmarks.npy").unlink()
    from engine.errors import BadInputError

    with pytest.raises(BadInputError):
        FaceAnalysis.load(path)
