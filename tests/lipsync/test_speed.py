"""The target mouth's speed of articulation: measured like the tracker measures a real mouth, and
brought to the speaker's own without changing how much the mouth opens."""

from __future__ import annotations

import numpy as np
import pytest

from engine.pipeline.fit import (
    SpeakerFit,
    TrackSignals,
    match_speed,
    speaking_speed,
    target_codes,
    tracked_opening,
)
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
    # Across frame 11 -> 12 the opening does not change; every other step changes it by 0.1.
    opening = np.array([0.1, 0.2] * 6 + [0.2, 0.1] * 6)
    codes = _codes(fit, opening)
    op = fit.shape.code_opening(codes)
    frames = np.arange(len(opening))
    assert speaking_speed(fit.shape, codes, frames) == np.mean(np.abs(np.diff(op)))
    # A gap between two runs of speech is not a change of the mouth: that step is left out.
    gapped = np.concatenate([frames[:12], frames[12:] + 100])
    assert speaking_speed(fit.shape, codes, gapped) > speaking_speed(fit.shape, codes, frames)
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


def test_a_target_near_the_speakers_speed_is_left_alone() -> None:
    _, _, fit, _ = _speaker()
    codes = _codes(fit, _wave(2.0))
    fit.speech_speed = 1.05 * _speed(fit, codes)
    assert match_speed(fit, codes, np.ones(N, bool), FPS) is codes


def test_speed_is_measured_on_the_moving_frames_only() -> None:
    _, _, fit, _ = _speaker()
    opening = _wave(1.0)
    opening[150:] = _wave(3.0, 0.06)[150:]  # busy where the mouth is not speaking (rest ramps, silence)
    codes = _codes(fit, opening)
    moving = np.arange(N) < 150
    fit.speech_speed = _speed(fit, codes[:150])
    assert match_speed(fit, codes, moving, FPS) is codes
    assert match_speed(fit, codes, np.ones(N, bool), FPS) is not codes


def test_a_long_track_is_matched_on_runs_sampled_from_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.pipeline.fit as fit_module

    _, _, fit, _ = _speaker()
    n = 1000  # 40 s
    t = np.arange(n) / FPS
    fit.speech_speed = _speed(fit, _codes(fit, 0.12 + 0.08 * np.sin(2 * np.pi * 4.0 * t[:N])))
    slow = _codes(fit, 0.12 + 0.08 * np.sin(2 * np.pi * 1.2 * t) + 0.02 * np.sin(2 * np.pi * 4.0 * t))
    whole = fit_module.speed_gains(fit, slow, np.ones(n, bool), FPS)
    # A budget of 20 s: two 10 s runs, from the start and the end; the step between them is no pair.
    monkeypatch.setattr(fit_module, "SPEED_SAMPLE_S", 20.0)
    seen: list[int] = []
    real_filter = fit_module.tracked_opening

    def counting(shape: object, codes: np.ndarray, fps: float, times: np.ndarray | None = None) -> np.ndarray:
        seen.append(len(codes))
        return real_filter(shape, codes, fps, times)  # type: ignore[arg-type]

    monkeypatch.setattr(fit_module, "tracked_opening", counting)
    sampled = fit_module.speed_gains(fit, slow, np.ones(n, bool), FPS)
    assert set(seen) == {500}
    assert whole != (1.0, 1.0)
    assert sampled == whole


def test_frame_times_drive_the_filter() -> None:
    _, _, fit, _ = _speaker()
    codes = _codes(fit, _wave(3.0))
    even = np.arange(N) / FPS
    assert np.allclose(tracked_opening(fit.shape, codes, FPS, even), tracked_opening(fit.shape, codes, FPS))
    # The same rows at half the frame rate: each step lies twice as far apart in time, and the
    # filter keeps more of it.
    sparse = tracked_opening(fit.shape, codes, FPS, 2 * even)
    assert np.mean(np.abs(np.diff(sparse))) > 1.05 * np.mean(np.abs(np.diff(tracked_opening(fit.shape, codes, FPS))))


def _signals(n: int, energy: np.ndarray, speech: np.ndarray | None = None) -> TrackSignals:
    sp = np.ones(n, bool) if speech is None else speech
    return TrackSignals(np.zeros((n, 4), np.float32), sp, energy, FPS, np.arange(n) / FPS)


class _Predicting:
    """A speaker model whose prediction is fixed: these codes, whatever the audio."""

    kind = "speaker"

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = codes

    def predict(self, x: np.ndarray, energy_z: np.ndarray | None = None) -> np.ndarray:
        return self.codes[: len(x)]


def test_a_sped_up_target_still_rests_exactly_in_silences() -> None:
    _, _, fit, _ = _speaker()
    wave = _codes(fit, _wave(1.0))
    fit.model = _Predicting(wave)  # type: ignore[assignment]
    fit.speech_speed = 3 * _speed(fit, wave)
    speech = np.ones(N, bool)
    speech[180:] = False
    sig = _signals(N, np.zeros(N), speech)
    codes = target_codes(fit, sig, FPS)
    assert not np.allclose(codes[:150], target_codes(fit, sig, FPS, speed=False)[:150])
    assert np.array_equal(codes[190:], np.repeat(fit.shape.rest[None], N - 190, 0))


def test_speed_does_not_lift_the_mouth_over_the_loudness_ceiling() -> None:
    from engine.lipsync.metrics import sync_meter
    from engine.pipeline.fit import ARTICULATION_R_MARGIN

    _, _, fit, _ = _speaker()
    n = 300
    t = np.arange(n) / FPS
    energy = -30 + 12 * np.sin(2 * np.pi * 3.0 * t)
    # A slow mouth with a faint syllable-rate part that follows the loudness: speeding it up makes
    # it follow the loudness more and more.
    op = 0.12 + 0.06 * np.sin(2 * np.pi * 0.7 * t) + 0.012 * np.sin(2 * np.pi * 3.0 * t + 0.3)
    wave = _codes(fit, op)
    fit.model = _Predicting(wave)  # type: ignore[assignment]
    fit.speech_speed = 4 * _speed(fit, wave)
    sig = _signals(n, energy)

    def loudness_r(codes: np.ndarray) -> float:
        return float(sync_meter(fit.shape.code_opening(codes), energy, FPS).r)

    plain = loudness_r(target_codes(fit, sig, FPS, calibrate=False, speed=False))
    fit.own_sync = None  # no ceiling known: the speed alone decides
    free = loudness_r(target_codes(fit, sig, FPS, calibrate=False))
    fit.own_sync = (plain - ARTICULATION_R_MARGIN + 0.02, 3.0)
    capped = loudness_r(target_codes(fit, sig, FPS, calibrate=False))
    assert free > plain + 0.05
    assert capped <= plain + 0.02 + 1e-9
