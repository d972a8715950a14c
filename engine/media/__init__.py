"""Media I/O with PyAV: probe, frame-accurate video decode, encode + mux, audio decode.

- :func:`probe` -> :class:`MediaInfo` (streams, and per video a frame-time table of every frame's pts)
- :class:`VideoReader`: frame-accurate random access and streaming, rotation applied, RGB/BGR uint8
- :func:`decode_audio` -> :class:`AudioData`: any container/codec to float32 PCM at a chosen rate/layout
- :func:`content_hash`: a cheap identity of a file's content, for keying caches

Every failure to read a file raises :class:`engine.errors.MediaError`, naming the file and the problem.
"""

from engine.errors import MediaError, OutputError
from engine.media.audio import AudioData, decode_audio
from engine.media.color import ColorInfo
from engine.media.probe import AudioStreamInfo, MediaInfo, VideoInfo, content_hash, probe
from engine.media.reader import VideoReader, read_frame

__all__ = [
    "AudioData",
    "AudioStreamInfo",
    "ColorInfo",
    "MediaError",
    "MediaInfo",
    "OutputError",
    "VideoInfo",
    "VideoReader",
    "content_hash",
    "decode_audio",
    "probe",
    "read_frame",
]
