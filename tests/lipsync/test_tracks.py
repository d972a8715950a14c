"""FaceTrack's raw landmarks and the texture bank that is placed by them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.pipeline.fit import TrackSignals, fit_speaker
from engine.pipeline.tracks import FaceTrack
from tests.lipsync.synthface import face_landmarks, write_face_video


def _track(n: int, raw_shift: float | None) -> tuple[FaceTrack, np.ndarray]:
    opening = 0.02 + 0.25 * np.abs(np.sin(np.arange(n) / 4.0))
    lms = np.stack([face_landmarks(o, seed=i % 3) for i, o in enumerate(opening)])
    raw = None if raw_shift is None else lms + raw_shift
    return FaceTrack("0", np.arange(n), lms, np.zeros((n, 3)), np.ones(n, bool), raw=raw), lms


def test_dense_raw_gives_the_raw_landmarks_and_falls_back_to_the_smoothed_ones() -> None:
    track, lms = _track(12, 2.0)
    raw = track.dense_raw(15)
    assert np.allclose(raw[:12], lms + 2.0)
    assert np.isnan(raw[12:]).all()
    sub = track.subset(np.arange(12) % 2 == 0)
    assert sub.raw is not None and np.allclose(sub.dense_raw(12)[::2], lms[::2] + 2.0)
    plain, lms = _track(12, None)
    assert np.allclose(plain.dense_raw(12), lms)


def test_bank_texture_is_placed_by_the_raw_landmarks_of_its_own_frame(tmp_path: Path) -> None:
    n = 40
    track, lms = _track(n, 3.0)
    video = write_face_video(tmp_path / "face.avi", lms + 3.0)
    rng = np.random.default_rng(0)
    signals = TrackSignals(rng.normal(size=(n, 6)), np.ones(n, bool), rng.normal(size=n), 25.0)
    fit = fit_speaker(video, track, signals, np.ones(n, bool))
    assert np.allclose(fit.bank.landmarks, lms + 3.0)
    # The bank's codes describe the raw shapes: the model's own codes are of the smoothed ones.
    assert np.allclose(fit.bank.codes, fit.shape.encode_landmarks((lms + 3.0).astype(np.float32)))  # kept at float32


def test_fit_motion_reads_no_pixels_and_gives_fit_speakers_targets(tmp_path: Path) -> None:
    from engine.pipeline.fit import fit_motion, target_codes

    n = 40
    track, lms = _track(n, 1.0)
    video = write_face_video(tmp_path / "face.avi", lms + 1.0)
    rng = np.random.default_rng(1)
    signals = TrackSignals(rng.normal(size=(n, 6)), np.ones(n, bool), rng.normal(size=n), 25.0)
    motion = fit_motion(track, signals, np.ones(n, bool))
    assert len(motion.bank) == 0
    full = fit_speaker(video, track, signals, np.ones(n, bool))
    assert len(full.bank) == n
    assert np.allclose(target_codes(motion, signals, 25.0), target_codes(full, signals, 25.0))


def test_block_readers_give_what_the_dense_arrays_give(monkeypatch) -> None:
    """usable_at, openings, landmark_rows and landmarks_at read the track a block at a time; they
    give what the whole-video dense arrays give (absent frames, unusable ones, frames past the end)."""
    import engine.lipsync.shape as shape_mod
    import engine.pipeline.tracks as tracks_mod
    from engine.lipsync.geometry import mouth_opening
    from engine.lipsync.shape import fit_shape_model

    monkeypatch.setattr(tracks_mod, "BLOCK_FRAMES", 7)
    monkeypatch.setattr(shape_mod, "FIT_BLOCK", 6)
    _, lms = _track(40, 1.5)
    present = np.ones(40, bool)
    present[[3, 4, 20]] = False
    usable = np.ones(40, bool)
    usable[[9, 30]] = False
    track = FaceTrack("0", np.flatnonzero(present), lms[present], np.arange(37 * 3.0).reshape(37, 3),
                      usable[present], raw=(lms + 1.5)[present])
    n = 36  # the video ends before the track's last frames
    ok, lm, pose = track.dense(n)
    ok2, pose2 = track.usable_at(n)
    np.testing.assert_array_equal(ok, ok2)
    np.testing.assert_array_equal(pose, pose2)
    expect = np.where(ok, mouth_opening(np.nan_to_num(lm)), np.nan)
    np.testing.assert_array_equal(track.openings(n), expect)
    frames = np.flatnonzero(ok)
    rows = track.landmark_rows(frames)
    assert len(rows) == len(frames)
    np.testing.assert_array_equal(np.concatenate(list(rows.blocks(5))), lm[frames])
    np.testing.assert_array_equal(track.landmark_rows(frames, raw=True)[2:9], track.raw_at(frames)[2:9])
    assert track.landmarks_at(3) is None
    np.testing.assert_array_equal(track.landmarks_at(5), lm[5])
    # The shape model fitted from rows read in blocks is the one fitted from the whole array.
    a, b = fit_shape_model(rows, 4), fit_shape_model(lm[frames], 4)
    np.testing.assert_array_equal(a.components, b.components)
    np.testing.assert_array_equal(a.rest, b.rest)
