"""Media I/O with PyAV: probe, frame-accurate video decode, encode + mux, audio decode."""

from engine.media.audio import AudioData, decode_audio

__all__ = ["AudioData", "decode_audio"]
