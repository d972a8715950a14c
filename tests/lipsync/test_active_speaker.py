"""Who speaks when: one face alone on screen, and two faces whose mouths take turns with the audio."""

from __future__ import annotations

import numpy as np

from engine.pipeline.fit import active_speaker
from engine.pipeline.tracks import FaceTrack
from tests.lipsync.synthface import face_landmarks

FPS = 25.0


def _track(identity: str, openings: np.ndarray, frames: np.ndarray, cx: float) -> FaceTrack:
    lms = np.stack([face_landmarks(float(o), cx=cx) for o in openings[frames]])
    return FaceTrack(identity, frames, lms, np.zeros((len(frames), 3)), np.ones(len(frames), bool))


def _syllables(n: int, rng: np.random.Generator) -> np.ndarray:
    """A band-energy-like series: random syllable bursts about 4 per second (dB)."""
    e = np.convolve(rng.normal(size=n), np.hanning(5), mode="same")
    return 60.0 + 8.0 * e


def test_two_faces_taking_turns_are_told_apart_by_how_their_mouths_follow_the_audio() -> None:
    rng = np.random.default_rng(0)
    n = 300
    energy = _syllables(n, rng)
    follows = 0.03 + 0.1 * np.clip((energy - 52.0) / 16.0, 0, 1)  # a mouth that opens with the energy
    lag = round(0.07 * FPS)
    leading = np.r_[follows[lag:], np.full(lag, follows[-1])]  # ... and leads it by 70 ms, as lips do
    idle = 0.03 + 0.01 * np.abs(np.convolve(rng.normal(size=n), np.hanning(9), mode="same"))
    a_open = np.where(np.arange(n) < n // 2, leading, idle)  # A speaks in the first half
    b_open = np.where(np.arange(n) < n // 2, idle, leading)  # B in the second
    frames = np.arange(n)
    tracks = [_track("A", a_open, frames, 120.0), _track("B", b_open, frames, 320.0)]
    speech = np.ones(n, bool)
    out = active_speaker(tracks, energy, speech, FPS)
    first, second = np.arange(n) < n // 2, np.arange(n) >= n // 2
    # Away from the turn (the 3 s window straddles it there), each half goes to its speaker.
    core1, core2 = first & (np.arange(n) < n // 2 - 40), second & (np.arange(n) >= n // 2 + 40)
    assert out["A"][core1].mean() > 0.9 and out["B"][core1].mean() < 0.1
    assert out["B"][core2].mean() > 0.9 and out["A"][core2].mean() < 0.1
    assert not (out["A"] & out["B"]).any()  # never two speakers on one frame


def test_a_face_alone_on_screen_speaks_wherever_there_is_speech() -> None:
    rng = np.random.default_rng(1)
    n = 100
    energy = _syllables(n, rng)
    speech = np.zeros(n, bool)
    speech[10:60] = True
    openings = np.full(n, 0.05)
    # Present only on frames 0-79.
    out = active_speaker([_track("A", openings, np.arange(80), 160.0)], energy, speech, FPS)
    assert np.array_equal(out["A"], speech & (np.arange(n) < 80))
    assert active_speaker([], energy, speech, FPS) == {}
