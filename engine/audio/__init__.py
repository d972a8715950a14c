"""Dubbed tracks and audio: loading, timeline placement, speech detection, features, language, mixing.

Public API (what the engine, the timeline and the export use). Engine-side audio is float32 mono at
16 kHz (``ENGINE_SAMPLE_RATE``); times are seconds.

Loading (:mod:`engine.audio.tracks`):
    load_track(path) -> LoadedTrack(audio16k, source_rate, source_channels, ..., key)
        any audio file or a video's audio stream; MediaError naming the file for bad input.
    LoadedTrack.at(rate, channels) -> (n, channels) float32, the original re-decoded for output.

Timeline (:mod:`engine.audio.timeline`), sample-exact, DubTrack semantics (file time trim_in_s plays
at video time offset_s):
    place_on_timeline(samples, rate, offset_s, gain_db, trim_in_s, trim_out_s, video_duration_s)
        -> (samples on the video timeline, warnings for the user)
    place_track(samples, rate, dub_track, video_duration_s) -> same, from a DubTrack
    track_time_offset(dub_track) -> video time of the file's first sample (for features_at_frames)
    trimmed_samples(audio16k, 16000, dub_track) -> (the part that plays, its video start time)

Features for the lip-sync engine (:mod:`engine.audio.features`):
    whisper_features(audio16k) -> WhisperFeatures(vectors (n, 512) at 50 Hz, silence (512,), positions):
        the mean of Whisper-base encoder blocks 2-4 (engine.audio.encoder, torch)
    WhisperFeatures.debiased() -> the same minus the encoder's output for silence at each vector's
        position in its 30 s window (removes a large position-only component; silence -> 0)
    features_at_frames(feats, frame_times_s, offset_s=0.0, context_s=0.5) -> (n_frames, k, 512)
    log_mel_frames(audio16k) -> (n, 80) at 100 Hz;  logmel_at_frames(mel, frame_times_s, ...) -> (n, k, 80)
    band_energy_db(audio16k, frame_times_s, offset_s=0.0) -> (n_frames,)  1.8-4.5 kHz energy in dB

Speech (:mod:`engine.audio.vad`, silero-vad ONNX through onnxruntime):
    detect_speech(audio16k) -> VadResult(segments=[(start_s, end_s)], probs, ...)
    speech_mask(segments, times_s, offset_s=0.0) -> bool array

Language (:mod:`engine.audio.language`):
    detect_language(audio16k) -> ("de", 0.98)
    transcribe(audio16k, language=None) -> [TranscriptSegment(start_s, end_s, text, words=[Word...])]

Timeline display (:mod:`engine.audio.peaks`):
    waveform_peaks(audio16k) -> WaveformPeaks(levels={256|1024|4096|16384: (n, 2) min/max})

Output (:mod:`engine.audio.mix`):
    mix_output([DubInput(track, dub_track)], video_duration_s, original=None, settings=MixSettings())
        -> MixResult(tracks=[OutputTrack(label, samples (n, 2) float32 at 48 kHz, ...)], warnings)
    (past about 6 minutes, ``samples`` is a :class:`engine.audio.pcm.PcmFile`: the mix in a temporary
    file, read in blocks; ``np.asarray`` reads it whole)
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
from engine.audio.language import TranscriptSegment, Word, detect_language, supported_languages, transcribe
from engine.audio.mix import DubInput, MixMode, MixResult, MixSettings, OutputTrack, mix_output
from engine.audio.peaks import WaveformPeaks, waveform_peaks
from engine.audio.timeline import (
    TrackPlacement,
    place_on_timeline,
    place_track,
    track_time_offset,
    trimmed_samples,
)
from engine.audio.tracks import ENGINE_RATE, LoadedTrack, downmix_to_mono, load_track, to_stereo
from engine.audio.vad import VadParams, VadResult, detect_speech, speech_mask
from engine.audio.whisper_model import load_whisper, whisper_model_dir

ENGINE_SAMPLE_RATE = ENGINE_RATE

__all__ = [
    "ENGINE_SAMPLE_RATE",
    "FEATURE_DIM",
    "FEATURE_RATE_HZ",
    "DubInput",
    "LoadedTrack",
    "MixMode",
    "MixResult",
    "MixSettings",
    "OutputTrack",
    "TrackPlacement",
    "TranscriptSegment",
    "VadParams",
    "VadResult",
    "WaveformPeaks",
    "WhisperFeatures",
    "Word",
    "band_energy_db",
    "detect_language",
    "detect_speech",
    "downmix_to_mono",
    "features_at_frames",
    "frame_intervals",
    "load_track",
    "load_whisper",
    "log_mel_frames",
    "logmel_at_frames",
    "mix_output",
    "num_feature_frames",
    "place_on_timeline",
    "place_track",
    "sample_series",
    "speech_mask",
    "supported_languages",
    "to_stereo",
    "track_time_offset",
    "transcribe",
    "trimmed_samples",
    "waveform_peaks",
    "whisper_features",
    "whisper_model_dir",
    "window_offsets",
]
