"""Media I/O with PyAV: probe, frame-accurate video decode, encode + mux, audio decode.

- :func:`probe` -> :class:`MediaInfo` (streams, and per video a frame-time table of every frame's pts)
- :class:`VideoReader`: frame-accurate random access and streaming, rotation applied, RGB/BGR uint8
- :class:`VideoWriter` (+ :class:`AudioTrack`): H.264/H.265 with each frame's own pts, AAC tracks with
  languages, written to a temp file and renamed into place (:func:`atomic_output`)
- :func:`decode_audio` -> :class:`AudioData`: any container/codec to float32 PCM at a chosen rate/layout
- :func:`content_hash`: a cheap identity of a file's content, for keying caches

Every failure to read a file raises :class:`engine.errors.MediaError`, naming the file and the problem.
"""

from engine.errors import MediaError, OutputError
from engine.media.audio import AudioData, decode_audio
from engine.media.color import ColorInfo
from engine.media.probe import AudioStreamInfo, MediaInfo, VideoInfo, content_hash, probe
from engine.media.reader import VideoReader, read_frame
from engine.media.writer import (
    AudioTrack,
    VideoWriter,
    atomic_output,
    cleanup_stale_partials,
    iso639_2,
    write_audio,
)

__all__ = [
    "AudioData",
    "AudioStreamInfo",
    "AudioTrack",
    "ColorInfo",
    "MediaError",
    "MediaInfo",
    "OutputError",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "atomic_output",
    "cleanup_stale_partials",
    "content_hash",
    "decode_audio",
    "iso639_2",
    "probe",
    "read_frame",
    "write_audio",
]
