"""Speech detection: real speech clips, silence, a pure tone, and the hysteresis segmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.audio import VadParams, detect_speech, speech_mask, vad
from engine.audio.vad import CHUNK_S, segments_from_probs
from engine.media import decode_audio
from tests.audio.signals import tone

SR = 16000


def test_silence_and_pure_tone_have_no_speech() -> None:
    assert detect_speech(np.zeros(3 * SR, np.float32)).segments == []
    assert detect_speech(tone(3.0, SR, 440.0, 0.5)).segments == []
    assert detect_speech(tone(3.0, SR, 1000.0, 0.9)).segments == []


def test_empty_track() -> None:
    r = detect_speech(np.zeros(0, np.float32))
    assert r.segments == [] and r.probs.shape == (0,)


def test_hysteresis_min_durations_and_padding() -> None:
    p = np.zeros(100, np.float32)
    p[10:30] = 0.9  # 0.64 s of speech
    p[30:32] = 0.4  # between off (0.35) and on (0.5): still speech
    p[32:40] = 0.9
    p[40:42] = 0.1  # 64 ms dip: shorter than min silence (100 ms), bridged
    p[42:50] = 0.9
    p[70:73] = 0.9  # 96 ms blip: shorter than min speech, dropped
    segs = segments_from_probs(p, 100 * CHUNK_S, VadParams(pad_s=0.0))
    assert segs == [(pytest.approx(10 * CHUNK_S), pytest.approx(50 * CHUNK_S))]
    padded = segments_from_probs(p, 100 * CHUNK_S, VadParams(pad_s=0.05))
    assert padded[0][0] == pytest.approx(10 * CHUNK_S - 0.05)
    # A long dip splits the speech in two.
    p[40:48] = 0.1
    p[48:56] = 0.9
    assert len(segments_from_probs(p, 100 * CHUNK_S, VadParams(pad_s=0.0))) == 2


def test_speech_mask_at_frame_times() -> None:
    m = speech_mask([(1.0, 2.0)], np.array([0.5, 1.0, 1.5, 2.0, 2.5]), offset_s=0.5)
    assert m.tolist() == [False, False, True, True, False]


@pytest.mark.media
def test_every_speech_clip_has_speech(shared_media: Path) -> None:
    clips = sorted((shared_media / "audio").glob("dub_*.*"))
    assert clips
    for clip in clips:
        audio = decode_audio(clip, sample_rate=SR, channels=1)
        result = detect_speech(audio.samples[:, 0])
        assert result.segments, clip.name
        # Speech clips are mostly speech; segments lie inside the clip.
        assert result.speech_seconds() > 0.4 * audio.duration, clip.name
        assert all(0 <= s < e <= audio.duration + 1e-6 for s, e in result.segments), clip.name
        # Adding 2 s of silence in front shifts every segment by 2 s (within one 32 ms chunk).
        if clip.name == "dub_german1.wav":
            shifted = detect_speech(np.concatenate([np.zeros(2 * SR, np.float32), audio.samples[:, 0]]))
            assert shifted.segments[0][0] == pytest.approx(result.segments[0][0] + 2.0, abs=0.07)


def test_each_model_step_sees_its_chunk_and_the_context_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # The model gets chunk i (samples i*512 ..) preceded by the previous chunk's last 64 samples,
    # zeros before the track and after it, and the state the step before returned.
    seen: list[np.ndarray] = []

    class Recorder:
        def run(self, _outputs: object, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            seen.append(np.array(feed["input"]))
            return np.full((1, 1), 0.25, np.float32), feed["state"] + 1

    monkeypatch.setattr(vad, "_get_session", lambda: Recorder())
    x = np.arange(1, 1301, dtype=np.float32)  # 2 full chunks and a partial one
    probs = vad.speech_probabilities(x)
    assert probs.shape == (3,) and np.all(probs == 0.25)
    assert [s.shape for s in seen] == [(1, 576)] * 3
    np.testing.assert_array_equal(seen[0][0], np.concatenate([np.zeros(64), x[:512]]))
    np.testing.assert_array_equal(seen[1][0], x[448:1024])
    np.testing.assert_array_equal(seen[2][0], np.concatenate([x[960:1300], np.zeros(236)]))
