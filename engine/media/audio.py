"""Audio decode of any container/codec to float32 PCM at a requested rate and channel layout.

pydub cannot read mp3/m4a without an ffprobe binary; PyAV carries FFmpeg's decoders, so this is what
the audio and engine stages use. Everything goes through :class:`av.AudioResampler`, which converts
the sample format, resamples, and up/down-mixes (5.1 to stereo or mono with FFmpeg's standard matrix).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import av.audio.stream
import numpy as np

from engine.errors import MediaError
from engine.media._open import media_error, open_input
from engine.runtime.paths import cache_dir
from engine.runtime.rowfile import FileRows, RowLog, map_rows

log = logging.getLogger("lipdub.media.audio")

# FFmpeg's default layout for a channel count.
DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def layout_for(channels: int) -> str:
    """The FFmpeg layout name used for ``channels`` channels."""
    try:
        return DEFAULT_LAYOUTS[channels]
    except KeyError:
        raise ValueError(f"unsupported channel count {channels} (1 to 8)") from None


@dataclass
class AudioData:
    """Decoded audio: ``samples`` float32, shape (n, channels), nominally in [-1, 1]; a long track
    decoded with ``file_above_bytes`` has them as rows in a temporary file (read by slices).

    ``start_time`` is the time (seconds, on the container's clock, the same clock as the video's
    frame-time table) of ``samples[0]``. The ``source_*`` fields describe the stream as stored.
    """

    samples: np.ndarray | FileRows
    sample_rate: int
    source_rate: int
    source_channels: int
    source_layout: str
    source_codec: str
    stream_index: int
    start_time: float = 0.0
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        return self.num_samples / float(self.sample_rate)

    def mono(self) -> np.ndarray | FileRows:
        """The samples averaged to one channel, shape (n,) (in a file when the samples are)."""
        x = self.samples
        if not isinstance(x, FileRows):
            return x.mean(axis=1, dtype=np.float32) if self.channels > 1 else x[:, 0]
        if self.channels == 1:
            return x.reshaped(())
        return map_rows(x, lambda b: b.mean(axis=1, dtype=np.float32), (), cache_dir("tmp"))


def _pick_audio_stream(path: Path, container: av.container.InputContainer, stream_index: int | None):
    audio = list(container.streams.audio)
    if stream_index is not None:
        matches = [s for s in container.streams if s.index == stream_index]
        if not matches:
            raise MediaError(f"has no stream #{stream_index}", path)
        if matches[0].type != "audio":
            raise MediaError(f"stream #{stream_index} is {matches[0].type}, not audio", path)
        return matches[0]
    if not audio:
        raise MediaError("has no audio stream", path, "choose a file with sound")
    # The default-disposition track if one is marked, else the first.
    for s in audio:
        if s.disposition & av.stream.Disposition.default:
            return s
    return audio[0]


# The first buffer of a decode holds at most this long at the output rate; a longer track grows it.
_FIRST_BUFFER_S = 1800.0


def _expected_samples(stream: Any, container: Any, rate: int) -> int:
    """Samples the stream should decode to at ``rate``, from its (or the container's) duration, with a
    little to spare; a minute when neither says."""
    seconds = 0.0
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = float(container.duration) / av.time_base
    if not 0 < seconds < 1e7:
        seconds = 60.0
    return int(min(seconds, _FIRST_BUFFER_S) * 1.01 * rate) + rate


class _Growing:
    """Rows appended to one float32 buffer that grows by half when full. Growing and the final trim
    resize the buffer in place (the C library moves a large block without copying it where it can)."""

    def __init__(self, capacity: int, channels: int) -> None:
        self.buf = np.empty((max(1, capacity), channels), np.float32)
        self.filled = 0

    def append(self, rows: np.ndarray) -> None:
        end = self.filled + len(rows)
        if end > len(self.buf):
            self.buf.resize((max(end, len(self.buf) * 3 // 2), self.buf.shape[1]), refcheck=False)
        self.buf[self.filled : end] = rows
        self.filled = end

    def result(self) -> np.ndarray:
        """The rows, in a buffer of exactly their size."""
        self.buf.resize((self.filled, self.buf.shape[1]), refcheck=False)
        return self.buf


class _InFile:
    """Rows appended to a temporary file (engine.runtime.rowfile.RowLog): a long track's samples."""

    def __init__(self, channels: int) -> None:
        self.rows = RowLog((channels,), np.float32, cache_dir("tmp"))

    @property
    def filled(self) -> int:
        return len(self.rows)

    def append(self, rows: np.ndarray) -> None:
        self.rows.extend(rows)

    def result(self) -> FileRows:
        return self.rows


def decode_audio(
    path: str | os.PathLike[str],
    sample_rate: int | None = None,
    channels: int | None = None,
    stream_index: int | None = None,
    file_above_bytes: int | None = None,
) -> AudioData:
    """Decode one audio stream of ``path`` to float32 PCM.

    ``sample_rate``/``channels``: resample / re-mix to these (None keeps the source's). ``stream_index``
    is the container's stream index (default: the default-disposition audio stream, else the first).
    Raises MediaError naming the file when it is missing, not media, has no audio, holds no samples, or
    is too damaged to decode anything. A truncated or partly corrupt stream decodes what is there and
    records a warning in ``AudioData.warnings`` (also logged). ``file_above_bytes``: a track whose
    decoded samples would take more than this (from its stated duration) is decoded into a temporary
    file instead of memory (``samples`` is then :class:`engine.runtime.rowfile.FileRows`).
    """
    p, container = open_input(path)
    try:
        stream = _pick_audio_stream(p, container, stream_index)
        assert isinstance(stream, av.audio.stream.AudioStream)
        ctx = stream.codec_context
        if ctx is None:
            raise MediaError(
                "the audio codec of this file is not supported (no decoder for it)",
                p,
                hint="convert it to WAV, FLAC, MP3 or AAC",
            )
        src_rate = int(ctx.sample_rate or stream.rate or 0)
        src_channels = int(ctx.channels or 0)
        src_layout = ctx.layout.name if ctx.layout is not None else ""
        codec = ctx.name or ctx.codec.name
        out_rate = int(sample_rate or src_rate)
        out_channels = int(channels or src_channels or 1)
        if out_rate <= 0:
            raise MediaError("audio stream has no sample rate", p)
        resampler = av.AudioResampler(format="flt", layout=layout_for(out_channels), rate=out_rate)

        # Decoded straight into one buffer sized from the stream's duration (grown if the estimate is
        # short): a list of chunks joined at the end would hold the whole track twice.
        expected = _expected_samples(stream, container, out_rate)
        out: _Growing | _InFile
        if file_above_bytes is not None and expected * out_channels * 4 > file_above_bytes:
            out = _InFile(out_channels)
        else:
            out = _Growing(expected, out_channels)
        warnings: list[str] = []
        errors = 0
        first_time: float | None = None

        def take(frames: list[av.AudioFrame]) -> None:
            for f in frames:
                out.append(f.to_ndarray().reshape(-1, out_channels))

        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    errors += 1
                    if errors <= 3:
                        log.warning("%s: skipping undecodable audio packet: %s", p, exc)
                    continue
                for frame in frames:
                    if first_time is None and frame.pts is not None and frame.time_base is not None:
                        first_time = float(frame.pts * frame.time_base)
                    take(resampler.resample(frame))
        except av.FFmpegError as exc:
            # A demux error part-way (truncated/corrupt container): keep what decoded.
            if not out.filled:
                raise media_error(p, exc, "decoding its audio") from exc
            warnings.append(f"audio stream is damaged or truncated after {out.filled / out_rate:.2f} s: {exc}")
        take(resampler.resample(None))
        if errors:
            warnings.append(f"{errors} audio packet(s) could not be decoded and were skipped")
        if out.filled == 0:
            if errors:
                raise MediaError("audio stream is corrupt: no packet could be decoded", p)
            raise MediaError("audio stream contains no samples (zero length)", p)
        samples = out.result()
        for w in warnings:
            log.warning("%s: %s", p, w)
        return AudioData(
            samples=samples,
            sample_rate=out_rate,
            source_rate=src_rate,
            source_channels=src_channels,
            source_layout=src_layout,
            source_codec=codec,
            stream_index=stream.index,
            start_time=first_time or 0.0,
            path=p,
            warnings=warnings,
        )
    finally:
        container.close()
