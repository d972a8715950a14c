"""Long footage: the texture bank and the retrieval stay bounded, whatever the length."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.lipsync import synth
from engine.lipsync.synth import TextureBank, choose_bank_frames, match_features, plan_path
from engine.pipeline.fit import TrackSignals, fit_speaker
from engine.pipeline.tracks import FaceTrack
from tests.lipsync.synthface import face_landmarks, write_face_video


def _walk(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = np.cumsum(rng.normal(size=(n, 4)) * 0.05, axis=0)
    pose = np.cumsum(rng.normal(size=(n, 3)) * 0.2, axis=0)
    return codes, pose


def test_a_bank_within_its_budget_keeps_every_frame() -> None:
    codes, pose = _walk(300)
    keep = choose_bank_frames(np.arange(300), match_features(codes, pose, np.ones(4)), budget=300)
    assert np.array_equal(keep, np.arange(300))


def test_a_capped_bank_is_runs_of_consecutive_frames_spread_over_the_footage() -> None:
    n, budget, run = 6000, 600, 15
    frames = np.r_[np.arange(3000), np.arange(3100, 6100)]  # a gap: runs never bridge it
    codes, pose = _walk(n)
    keep = choose_bank_frames(frames, match_features(codes, pose, np.ones(4)), budget=budget, run=run)
    assert budget - run < len(keep) <= budget
    assert np.all(np.diff(keep) > 0)
    # Whole runs: both stretches of footage are multiples of ``run`` long, so every stretch of
    # consecutive kept frames is too.
    breaks = np.flatnonzero(np.diff(frames[keep]) != 1) + 1
    lengths = np.diff(np.r_[0, breaks, len(keep)])
    assert np.all(lengths % run == 0)
    # Spread: every tenth of the footage has some of the bank.
    assert len(np.unique(keep * 10 // n)) == 10


def test_a_capped_bank_keeps_the_rare_mouths_and_poses() -> None:
    n = 5000
    codes, pose = _walk(n, seed=3)
    codes -= codes.mean(0)
    pose -= pose.mean(0)
    wide, turned = 1234, 4321
    codes[wide : wide + 3, 0] += 25.0  # three frames of the widest mouth in the footage
    pose[turned : turned + 3, 0] += 60.0  # and three of a strongly turned head
    keep = choose_bank_frames(np.arange(n), match_features(codes, pose, np.ones(4)), budget=300)
    assert {wide, wide + 1, turned, turned + 1} <= set(keep.tolist())
    # A bank of evenly spread runs alone would most likely miss both.
    even = np.linspace(0, n - 15, 20).round().astype(int)
    assert not any(s <= wide < s + 15 or s <= turned < s + 15 for s in even)


def test_retrieval_candidates_built_in_blocks_give_the_same_path(monkeypatch: pytest.MonkeyPatch) -> None:
    n_bank, n = 400, 700
    codes, pose = _walk(n_bank, seed=5)
    bank = TextureBank(np.arange(n_bank), codes, pose, np.zeros((n_bank, 1, 2)), np.zeros((n_bank, 2), np.int64),
                       np.zeros((n_bank, 1, 1, 3), np.uint8), np.zeros((0, 3), np.int32))
    target, tpose = _walk(n, seed=6)
    valid = np.ones(n, bool)
    valid[300:310] = False
    args = (target, tpose, valid, bank, np.ones(4))
    kw = {"target_opening": target[:, 0], "bank_opening": codes[:, 0]}
    whole = plan_path(*args, **kw)  # type: ignore[arg-type]
    monkeypatch.setattr(synth, "CANDIDATE_BLOCK", 3 * n_bank * 6)  # three target rows per block
    blocks = plan_path(*args, **kw)  # type: ignore[arg-type]
    assert np.array_equal(whole, blocks)
    assert (whole[valid] >= 0).all() and (whole[~valid] == -1).all()


def test_fit_speaker_writes_no_more_than_the_budget(tmp_path: Path) -> None:
    n = 90
    opening = 0.02 + 0.25 * np.abs(np.sin(np.arange(n) / 4.0))
    lms = np.stack([face_landmarks(o, seed=i % 3) for i, o in enumerate(opening)])
    track = FaceTrack("0", np.arange(n), lms, np.zeros((n, 3)), np.ones(n, bool))
    video = write_face_video(tmp_path / "face.avi", lms)
    rng = np.random.default_rng(0)
    signals = TrackSignals(rng.normal(size=(n, 6)), np.ones(n, bool), rng.normal(size=n), 25.0)
    fit = fit_speaker(video, track, signals, np.ones(n, bool), bank_path=tmp_path / "bank.npy", bank_budget=30)
    assert 15 < len(fit.bank) <= 30
    assert np.load(tmp_path / "bank.npy", mmap_mode="r").shape[0] == len(fit.bank)
    # Each kept frame's texture is its own frame's: the bank's landmarks are those frames' landmarks.
    assert np.allclose(fit.bank.landmarks, lms[fit.bank.frames])
    assert len(fit.train_frames) == n  # the motion model still learns from every frame
    # ... and its pixels: each crop is cut from its own frame of a plain sequential decode (the bank
    # is filled by a sparse read that may seek).
    from engine.media import VideoReader

    h, w = fit.bank.crops.shape[1:3]
    with VideoReader(video, pixel_format="bgr24") as reader:
        decoded = {i: img for i, img in reader.iter_frames() if i in set(fit.bank.frames.tolist())}
    for k, f in enumerate(fit.bank.frames.tolist()):
        x0, y0 = fit.bank.origins[k]
        np.testing.assert_array_equal(fit.bank.crops[k], decoded[f][y0 : y0 + h, x0 : x0 + w], err_msg=f"frame {f}")


def test_a_capped_bank_keeps_the_resting_mouth_every_silence_asks_for() -> None:
    n = 5000
    codes, pose = _walk(n, seed=8)
    rest_code = codes.mean(0) + np.array([0.7, 0.0, 0.0, 0.0])
    closed = np.arange(2600, 2615)
    codes[closed] = rest_code  # the only frames with this mouth
    feats = match_features(codes, pose, np.ones(4))
    rest = match_features(rest_code[None], pose[closed[:1]], np.ones(4))[0]
    keep = choose_bank_frames(np.arange(n), feats, budget=300, rest=rest)
    assert set(closed.tolist()) <= set(keep.tolist())


@pytest.mark.parametrize("budget", [10, 14, 16, 100, 2400])
def test_a_capped_bank_never_exceeds_its_budget(budget: int) -> None:
    """Whatever the runs: shorter than the budget, or broken by flickering usable frames."""
    rng = np.random.default_rng(budget)
    frames = np.flatnonzero(rng.random(9000) < 0.8)  # gaps everywhere: runs of every length
    codes, pose = _walk(len(frames), seed=budget)
    feats = match_features(codes, pose, np.ones(4))
    for rest in (None, feats[17]):
        keep = choose_bank_frames(frames, feats, budget=budget, run=15, rest=rest)
        assert 0 < len(keep) <= budget
        assert len(keep) >= min(budget, len(frames)) * 0.9  # and it is used, not left half empty


def test_the_face_analysis_landmarks_are_shared_not_copied() -> None:
    from engine.faces.analysis import FaceAnalysis, Identity
    from engine.pipeline.tracks import tracks_from_analysis

    n = 50
    lm = np.random.default_rng(1).random((n, 468, 2)).astype(np.float32) * 100
    ident = Identity(id=3, frames=np.arange(n, dtype=np.int32), boxes=np.zeros((n, 4), np.float32), landmarks=lm,
                     landmarks_raw=lm + 1, confidence=np.ones(n, np.float32), pose=np.zeros((n, 3), np.float32),
                     flags=np.zeros(n, np.uint8), mouth_opening=np.zeros(n, np.float32),
                     track_ids=np.zeros(n, np.int32), thumbnail=np.zeros((96, 96, 3), np.uint8),
                     embedding=np.zeros(0, np.float32))
    analysis = FaceAnalysis("v.mp4", "builtin", 640, 480, n, np.arange(n) / 25.0, [ident], [])
    (track,) = tracks_from_analysis(analysis)
    assert np.shares_memory(track.landmarks, ident.landmarks)
    assert track.raw is not None and np.shares_memory(track.raw, ident.landmarks_raw)
    np.testing.assert_array_equal(track.raw_at(np.array([4, 9])), (lm + 1)[[4, 9]].astype(np.float64))
    with pytest.raises(IndexError):
        track.raw_at(np.array([n + 3]))
