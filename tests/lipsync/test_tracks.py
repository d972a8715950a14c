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
