"""Dubbed tracks and audio: loading, timeline placement, speech detection, features, mixing.

Public API (everything the engine, the timeline and the export use):

Features for the lip-sync engine (16 kHz mono float32 in; see :mod:`engine.audio.features`):
    whisper_features(audio16k) -> WhisperFeatures        512-d Whisper-base encoder vectors at 50 Hz
    features_at_frames(feats, frame_times_s, offset_s=0.0, context_s=0.5) -> (n_frames, k, 512)
    log_mel_frames(audio16k) -> (n, 80) at 100 Hz;  logmel_at_frames(mel, frame_times_s, ...) -> (n, k, 80)
    band_energy_db(audio16k, frame_times_s, offset_s=0.0) -> (n_frames,)   1.8-4.5 kHz energy, dB

Speech detection (silero-vad ONNX via onnxruntime; see :mod:`engine.audio.vad`):
    detect_speech(audio16k, params=None) -> VadResult(segments=[(start_s, end_s)], probs, ...)
    speech_mask(segments, times_s, offset_s=0.0) -> bool array
"""

from engine.audio.features import (
    FEATURE_DIM,
    FEATURE_RATE_HZ,
    WhisperFeatures,
    band_energy_db,
    features_at_frames,
    frame_intervals,
    log_mel_frames,
    logmel_at_frames,
    num_feature_frames,
    sample_series,
    whisper_features,
    window_offsets,
)
from engine.audio.vad import VadParams, VadResult, detect_speech, speech_mask
from engine.audio.whisper_model import load_whisper, whisper_model_dir

ENGINE_SAMPLE_RATE = 16000

__all__ = [
    "ENGINE_SAMPLE_RATE",
    "FEATURE_DIM",
    "FEATURE_RATE_HZ",
    "VadParams",
    "VadResult",
    "WhisperFeatures",
    "band_energy_db",
    "detect_speech",
    "features_at_frames",
    "frame_intervals",
    "load_whisper",
    "log_mel_frames",
    "logmel_at_frames",
    "num_feature_frames",
    "sample_series",
    "speech_mask",
    "whisper_features",
    "whisper_model_dir",
    "window_offsets",
]
