"""Features of a real clip's own audio, sampled at its real frame-time table (29.97 fps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.audio import (
    band_energy_db,
    detect_speech,
    features_at_frames,
    load_track,
    speech_mask,
    whisper_features,
)
from engine.media import probe

pytestmark = pytest.mark.media


def test_video_audio_features_at_its_frame_times(shared_media: Path) -> None:
    clip = shared_media / "video" / "radio_glasses.mp4"
    video = probe(clip).require_video()
    assert abs(float(np.median(np.diff(video.frame_times))) - 1001 / 30000) < 1e-4
    track = load_track(clip)
    feats = whisper_features(track.audio16k)
    times = video.frame_times
    at = features_at_frames(feats, times, offset_s=track.start_time)
    assert at.shape == (len(times), 25, 512) and np.isfinite(at).all()
    # The middle sample of each window is the 50 Hz vector at that frame's time, interpolated.
    pos = (times - track.start_time) * 50.0
    i = int(np.flatnonzero((pos > 1) & (pos < feats.num_frames - 2))[len(times) // 2])
    f0 = int(np.floor(pos[i]))
    w = pos[i] - f0
    expected = feats.vectors[f0] * (1 - w) + feats.vectors[f0 + 1] * w
    assert np.allclose(at[i, 12], expected, atol=1e-4)
    energy = band_energy_db(track.audio16k, times, offset_s=track.start_time)
    assert energy.shape == (len(times),) and energy.max() - energy.min() > 10.0
    speech = speech_mask(detect_speech(track.audio16k).segments, times, track.start_time)
    assert speech.any()
    # Speech frames are louder in the 1.8-4.5 kHz band than non-speech frames.
    if (~speech).sum() >= 3:
        assert np.median(energy[speech]) > np.median(energy[~speech])
