"""The target mouth's speed of articulation: measured like the tracker measures a real mouth, and
brought to the speaker's own without changing how much the mouth opens."""

from __future__ import annotations

import numpy as np

from engine.pipeline.fit import SpeakerFit, match_speed, speaking_speed, tracked_opening
from tests.lipsync.synthface import face_landmarks
from tests.lipsync.test_compose_synth import _speaker

FPS = 25.0
N = 250


def _codes(fit: SpeakerFit, opening: np.ndarray) -> np.ndarray:
    return fit.shape.encode_landmarks(np.stack([face_landmarks(float(o)) for o in opening]))


def _wave(hz: float, amplitude: float = 0.08) -> np.ndarray:
    t = np.arange(N) / FPS
    return 0.12 + amplitude * np.sin(2 * np.pi * hz * t)


def _speed(fit: SpeakerFit, codes: np.ndarray) -> float:
    op = tracked_opening(fit.shape, codes, FPS)
    return float(np.mean(np.abs(np.diff(op))))


def _spread(fit: SpeakerFit, codes: np.ndarray) -> float:
    return float(np.std(fit.shape.code_opening(codes)))


def test_speaking_speed_counts_consecutive_speaking_frames_only() -> None:
    _, _, fit, _ = _speaker()
    opening = np.array([0.1, 0.2, 0.1, 0.2, 0.1, 0.2] * 4)
    codes = _codes(fit, opening)
    op = fit.shape.code_opening(codes)
    frames = np.arange(len(opening))
    assert speaking_speed(fit.shape, codes, frames) == np.mean(np.abs(np.diff(op)))
    # A gap between two runs of speech is not a change of the mouth.
    gapped = np.concatenate([frames[:12], frames[12:] + 100])
    pairs = np.flatnonzero(np.diff(gapped) == 1)
    assert np.isclose(speaking_speed(fit.shape, codes, gapped), np.mean(np.abs(op[pairs + 1] - op[pairs])))
    assert speaking_speed(fit.shape, codes[:8], frames[:8]) is None


def test_tracked_opening_lags_and_damps_fast_motion_like_the_tracker() -> None:
    _, _, fit, _ = _speaker()
    codes = _codes(fit, _wave(5.0))
    plain = fit.shape.code_opening(codes)
    tracked = tracked_opening(fit.shape, codes, FPS)
    assert np.mean(np.abs(np.diff(tracked))) < 0.9 * np.mean(np.abs(np.diff(plain)))
    # A still mouth reads the same through the filter.
    still = _codes(fit, np.full(N, 0.1))
    assert np.allclose(tracked_opening(fit.shape, still, FPS), fit.shape.code_opening(still))


def test_a_slow_target_is_sped_up_towards_the_speaker_keeping_its_spread() -> None:
    _, _, fit, _ = _speaker()
    fit.speech_speed = _speed(fit, _codes(fit, _wave(4.0)))
    slow = _codes(fit, _wave(1.2) + 0.02 * _wave(4.0, 1.0))
    moving = np.ones(N, bool)
    out = match_speed(fit, slow, moving, FPS)
    before, after = _speed(fit, slow), _speed(fit, out)
    assert before < 0.6 * fit.speech_speed
    assert after > 1.1 * before
    assert abs(np.log(_spread(fit, out) / _spread(fit, slow))) <= np.log(1.1) + 1e-9


def test_a_busy_target_is_slowed_down_towards_the_speaker_keeping_its_spread() -> None:
    _, _, fit, _ = _speaker()
    fit.speech_speed = _speed(fit, _codes(fit, _wave(1.0)))
    # As wide a mouth as the speaker's, but moving at three syllables a second on top.
    busy = _codes(fit, _wave(1.0, 0.05) + _wave(3.0, 0.06) - 0.12)
    out = match_speed(fit, busy, np.ones(N, bool), FPS)
    before, after = _speed(fit, busy), _speed(fit, out)
    assert before > 1.5 * fit.speech_speed
    assert abs(np.log(after / fit.speech_speed)) < 0.5 * abs(np.log(before / fit.speech_speed))
    assert abs(np.log(_spread(fit, out) / _spread(fit, busy))) <= np.log(1.1) + 1e-9


def test_speed_is_left_alone_without_the_speakers_own() -> None:
    _, _, fit, _ = _speaker()
    codes = _codes(fit, _wave(1.2))
    fit.speech_speed = None
    assert match_speed(fit, codes, np.ones(N, bool), FPS) is codes
    # Nor with too little speech to measure it on.
    fit.speech_speed = 0.01
    few = np.zeros(N, bool)
    few[:8] = True
    assert match_speed(fit, codes, few, FPS) is codes
