"""Loading a dubbed track: any audio file or the audio stream of a video, in any format and rate.

The engine works on float32 mono 16 kHz (VAD, Whisper features, sync meter); the output mix decodes
the original again at 48 kHz stereo from the file, so the full-rate original is never held twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.audio.cache import content_key
from engine.errors import MediaError
from engine.media.audio import AudioData, decode_audio, layout_for
from engine.runtime.jobs import CancelToken, check_cancel
from engine.runtime.paths import cache_dir
from engine.runtime.rowfile import FileRows, map_rows

ENGINE_RATE = 16000


@dataclass
class LoadedTrack:
    """A decoded track: ``audio16k`` (float32 mono, 16 kHz) for the engine, the source's description
    for output and display, and a content key that names the audio in caches."""

    path: Path
    audio16k: np.ndarray
    source_rate: int
    source_channels: int
    source_layout: str
    source_codec: str
    stream_index: int
    start_time: float = 0.0
    warnings: list[str] = field(default_factory=list)
    key: str = ""

    @property
    def duration_s(self) -> float:
        return len(self.audio16k) / float(ENGINE_RATE)

    @property
    def sample_rate(self) -> int:
        return ENGINE_RATE

    def original(self) -> AudioData:
        """The stream decoded again at its own rate and channel layout (for export / playback)."""
        return decode_audio(self.path, stream_index=self.stream_index)

    def at(self, sample_rate: int, channels: int, file_above_bytes: int | None = None) -> np.ndarray | FileRows:
        """The stream decoded at ``sample_rate`` with ``channels`` channels: float32 (n, channels)
        (in a temporary file when larger than ``file_above_bytes``: see :func:`decode_for_output`)."""
        if sample_rate == ENGINE_RATE and channels == 1:
            return self.audio16k[:, None]
        return decode_for_output(self.path, sample_rate, channels, self.stream_index, self.source_channels,
                                 file_above_bytes)


def decode_for_output(
    path: str | os.PathLike[str],
    sample_rate: int,
    channels: int,
    stream_index: int | None = None,
    source_channels: int | None = None,
    file_above_bytes: int | None = None,
) -> np.ndarray | FileRows:
    """Decode an audio stream at ``sample_rate`` with ``channels`` channels: float32 (n, channels).

    Mono sources play at full level on both sides of stereo (FFmpeg's own up-mix lowers them by
    3 dB); sources with more channels than asked for use FFmpeg's down-mix matrix, so all source
    channels are never held at the output rate. ``file_above_bytes``: a track larger than this is
    decoded into a temporary file and converted a block at a time into another (a 10-minute track
    is 230 MB at 48 kHz stereo); the result is then rows in a file, read by slices.
    """
    if source_channels is None:
        import av

        source_channels = channels
        try:
            with av.open(str(path)) as container:
                audio = [s for s in container.streams.audio if stream_index is None or s.index == stream_index]
                ctx = audio[0].codec_context if audio else None
                if ctx is not None and ctx.channels:
                    source_channels = int(ctx.channels)
        except (av.FFmpegError, OSError):
            pass  # decode_audio below raises the clear error for an unreadable file
    def mono(x: np.ndarray) -> np.ndarray:
        return downmix_to_mono(x)[:, None]

    if source_channels <= channels and channels in (1, 2):
        src = decode_audio(path, sample_rate=sample_rate, stream_index=stream_index, file_above_bytes=file_above_bytes)
        return _converted(src.samples, to_stereo if channels == 2 else mono, channels)
    if channels == 1:
        src = decode_audio(path, sample_rate=sample_rate, stream_index=stream_index, file_above_bytes=file_above_bytes)
        return _converted(src.samples, mono, 1)
    out = decode_audio(path, sample_rate=sample_rate, channels=channels, stream_index=stream_index,
                       file_above_bytes=file_above_bytes).samples
    return out if isinstance(out, FileRows) else np.asarray(out)


def _converted(samples: np.ndarray | FileRows, convert: Callable[[np.ndarray], np.ndarray],
               channels: int) -> np.ndarray | FileRows:
    """``convert`` (a per-sample channel mix) applied to ``samples``; to rows in a file a block at a
    time when they are in one."""
    if not isinstance(samples, FileRows):
        return convert(np.asarray(samples))
    return map_rows(samples, convert, (channels,), cache_dir("tmp"))


# Down-mix weights by channel name: dialogue lives in the front (centre above all); LFE carries none.
_CHANNEL_WEIGHTS = {"LFE": 0.0, "LFE2": 0.0, "BL": 0.5, "BR": 0.5, "SL": 0.5, "SR": 0.5, "BC": 0.5,
                    "FC": 1.0, "FL": 1.0, "FR": 1.0}


def downmix_to_mono(samples: np.ndarray) -> np.ndarray:
    """Weighted mean of the channels of (n, ch) float audio in FFmpeg's default layout order for ``ch``.

    A convex combination, so the result never exceeds the loudest channel.
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        return np.ascontiguousarray(x)
    ch = x.shape[1]
    if ch == 1:
        return np.ascontiguousarray(x[:, 0])
    try:
        import av

        names = [c.name for c in av.AudioLayout(layout_for(ch)).channels]
        weights = np.array([_CHANNEL_WEIGHTS.get(n, 0.7) for n in names], dtype=np.float32)
    except (ValueError, KeyError):
        weights = np.ones(ch, dtype=np.float32)
    if weights.sum() <= 0:
        weights = np.ones(ch, dtype=np.float32)
    weights /= weights.sum()
    return np.ascontiguousarray(x @ weights, dtype=np.float32)


def to_stereo(samples: np.ndarray) -> np.ndarray:
    """(n, ch) in FFmpeg's default layout order for ``ch`` -> (n, 2) float32.

    Mono is copied to both sides at full level (as players do); 5.1 and other layouts get the usual
    Lo/Ro down-mix (fronts at 1, centre and surrounds at -3 dB, LFE dropped). The sum can exceed full
    scale: the output mix limits its peak.
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    ch = x.shape[1]
    if ch == 1:
        return np.ascontiguousarray(np.repeat(x, 2, axis=1))
    if ch == 2:
        return np.ascontiguousarray(x)
    import av

    names = [c.name for c in av.AudioLayout(layout_for(ch)).channels]
    m = np.zeros((ch, 2), dtype=np.float32)
    k = np.float32(np.sqrt(0.5))
    for i, name in enumerate(names):
        if name in ("FL", "FLC", "WL"):
            m[i, 0] = 1.0
        elif name in ("FR", "FRC", "WR"):
            m[i, 1] = 1.0
        elif name in ("FC", "BC", "TC"):
            m[i] = (k, k)
        elif name in ("BL", "SL", "TFL", "TBL"):
            m[i, 0] = k
        elif name in ("BR", "SR", "TFR", "TBR"):
            m[i, 1] = k
    return np.ascontiguousarray(x @ m, dtype=np.float32)


def _explain_undecodable(path: Path, stream_index: int | None, exc: BaseException) -> MediaError:
    """A clear MediaError for a stream PyAV opened but cannot set a decoder up for."""
    import av

    try:
        with av.open(str(path)) as container:
            streams = [s for s in container.streams.audio if stream_index is None or s.index == stream_index]
            for s in streams:
                if s.codec_context is None:
                    tag = getattr(s, "codec_tag", "") or "unknown"
                    return MediaError(f"audio stream #{s.index} uses a codec this build cannot decode (tag {tag})",
                                      path, "convert it to WAV, FLAC, MP3 or AAC")
    except (av.FFmpegError, OSError):
        pass
    return MediaError(f"audio cannot be decoded: {exc}", path)


def load_track(
    path: str | os.PathLike[str],
    stream_index: int | None = None,
    cancel: CancelToken | None = None,
) -> LoadedTrack:
    """Decode ``path`` (audio file, or a video's audio stream) to float32 mono 16 kHz.

    Raises :class:`MediaError` naming the file when it is missing, empty, corrupt, has no audio stream,
    uses a codec this build cannot decode, or decodes to nothing. Non-fatal damage (a truncated stream,
    skipped packets) is kept in ``warnings``.
    """
    check_cancel(cancel)
    # Resample in FFmpeg but down-mix here: FFmpeg's matrix for mono adds channels without
    # normalising (stereo peaks rise 3 dB, 5.1 past full scale); a weighted mean stays in range.
    try:
        audio = decode_audio(path, sample_rate=ENGINE_RATE, stream_index=stream_index)
    except (AttributeError, TypeError, ValueError) as exc:
        # PyAV leaves codec_context None for a stream whose codec FFmpeg does not know.
        raise _explain_undecodable(Path(path), stream_index, exc) from exc
    check_cancel(cancel)
    mono = downmix_to_mono(np.asarray(audio.samples))
    if not np.isfinite(mono).all():
        bad = int((~np.isfinite(mono)).sum())
        mono = np.nan_to_num(mono, nan=0.0, posinf=1.0, neginf=-1.0)
        audio.warnings.append(f"{bad} sample(s) were not finite numbers and were replaced")
    if len(mono) < ENGINE_RATE // 100:
        raise MediaError(f"audio is too short to use ({len(mono)} samples at 16 kHz)", Path(path))
    return LoadedTrack(
        path=Path(path),
        audio16k=mono,
        source_rate=audio.source_rate,
        source_channels=audio.source_channels,
        source_layout=audio.source_layout,
        source_codec=audio.source_codec,
        stream_index=audio.stream_index,
        start_time=audio.start_time,
        warnings=list(audio.warnings),
        key=content_key(mono, ENGINE_RATE),
    )
