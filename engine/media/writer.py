"""Encode + mux: H.264/H.265 video with each frame's own timestamp, and AAC audio tracks with languages.

Outputs are written to a temporary file beside the target (``.NAME.partial-XXXX.EXT``) and renamed
into place (``os.replace``) only when complete, so a crash or a cancel never leaves a half-written
file under the real name; :func:`cleanup_stale_partials` removes leftovers after a crash.

Odd frame sizes: 4:2:0 chroma (``yuv420p``, what every player plays) needs even width and height, and
H.264 cannot crop by one pixel in 4:2:0. The writer keeps every source pixel and pads the frame by one
column/row, repeating the last one (721x405 is written as 722x406); ``padded`` says so. Pass
``pix_fmt="yuv444p"`` to keep the exact size instead (High 4:4:4 profile: fewer players support it).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.audio.stream
import av.container
import av.video.stream
import numpy as np

from engine.errors import OutputError
from engine.media.audio import layout_for
from engine.media.color import ColorInfo, sws_colorspace, sws_range

log = logging.getLogger("lipdub.media.writer")

PARTIAL_MARK = ".partial-"

# ISO 639-1 -> ISO 639-2 (what mp4/mkv store) for the languages dubbing is likely to meet.
_ISO639_2 = {
    "ar": "ara", "bg": "bul", "bn": "ben", "ca": "cat", "cs": "ces", "da": "dan", "de": "deu", "el": "ell",
    "en": "eng", "es": "spa", "et": "est", "fa": "fas", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin",
    "hr": "hrv", "hu": "hun", "id": "ind", "it": "ita", "ja": "jpn", "ko": "kor", "lt": "lit", "lv": "lav",
    "ms": "msa", "nl": "nld", "no": "nor", "nb": "nob", "pl": "pol", "pt": "por", "ro": "ron", "ru": "rus",
    "sk": "slk", "sl": "slv", "sr": "srp", "sv": "swe", "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl",
    "tr": "tur", "uk": "ukr", "ur": "urd", "vi": "vie", "zh": "zho",
}


def iso639_2(code: str | None) -> str:
    """A language code as the 3-letter ISO 639-2 code containers store ("en" -> "eng"); "und" if unknown."""
    if not code:
        return "und"
    c = code.strip().lower().replace("_", "-").split("-")[0]
    if len(c) == 3 and c.isalpha():
        return c
    return _ISO639_2.get(c, "und")


# --------------------------------------------------------------------------------------------------
# Atomic output


def _output_error(target: Path, exc: OSError) -> OutputError:
    folder = target.parent
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return OutputError("cannot be written: the disk is full (or the file is too large)", target,
                           "free some space or choose another folder")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"cannot be written: the folder {folder} is read-only or not yours", target,
                           "choose another folder")
    if exc.errno == errno.ENOENT and not folder.is_dir():
        return OutputError(f"cannot be written: the folder {folder} does not exist", target)
    return OutputError(f"cannot be written: {exc.strerror or exc}", target)


def partial_path(target: str | os.PathLike[str]) -> Path:
    """A fresh temporary name beside ``target``: ``.NAME.partial-XXXXXXXX.EXT``."""
    t = Path(target)
    return t.with_name(f".{t.stem}{PARTIAL_MARK}{secrets.token_hex(4)}{t.suffix}")


def _check_folder(target: Path) -> None:
    folder = target.parent
    if not folder.exists():
        raise OutputError(f"cannot be written: the folder {folder} does not exist", target)
    if not folder.is_dir():
        raise OutputError(f"cannot be written: {folder} is not a folder", target)
    if target.is_dir():
        raise OutputError("cannot be written: a folder has that name", target)


@contextlib.contextmanager
def atomic_output(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it to ``target``, else delete it.

    Raises OutputError (read-only folder, missing folder, disk full) naming the target.
    """
    t = Path(target)
    _check_folder(t)
    tmp = partial_path(t)
    try:
        # Claim the name now: proves the folder is writable before any work is done.
        tmp.touch(exist_ok=False)
    except OSError as exc:
        raise _output_error(t, exc) from exc
    try:
        yield tmp
        try:
            os.replace(tmp, t)
        except OSError as exc:
            raise _output_error(t, exc) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def cleanup_stale_partials(folder: str | os.PathLike[str], min_age_s: float = 60.0) -> list[Path]:
    """Delete temporary ``.NAME.partial-XXXX.EXT`` files left in ``folder`` by a crash.

    Only files older than ``min_age_s`` are removed, so a render still running elsewhere is spared.
    Returns the removed paths.
    """
    removed: list[Path] = []
    d = Path(folder)
    if not d.is_dir():
        return removed
    now = time.time()
    for p in d.iterdir():
        if not (p.name.startswith(".") and PARTIAL_MARK in p.name and p.is_file()):
            continue
        try:
            if now - p.stat().st_mtime >= min_age_s:
                p.unlink()
                removed.append(p)
                log.info("removed stale partial output %s", p)
        except OSError as exc:
            log.warning("could not remove stale partial output %s: %s", p, exc)
    return removed


# --------------------------------------------------------------------------------------------------
# Writer


@dataclass
class AudioTrack:
    """An audio track to mux: float32 samples (n, channels) in [-1, 1] at ``sample_rate``.

    ``language``: ISO 639-1 or 639-2 code ("de" / "deu"). ``start_time``: seconds on the output's
    clock at which ``samples[0]`` plays. ``default``: the track players pick first (the first track
    is the default when none is marked). ``samples`` may also be anything that slices like such an
    array (a long mix in a temporary file, engine.audio.pcm.PcmFile): the export reads it in chunks.
    """

    samples: np.ndarray | Any
    sample_rate: int
    language: str = "und"
    title: str | None = None
    default: bool = False
    start_time: float = 0.0
    bit_rate: int = 192_000


def add_aac_stream(
    container: av.container.OutputContainer,
    rate: int,
    layout: str,
    bit_rate: int,
    language: str | None,
    title: str | None,
    default: bool,
) -> av.audio.stream.AudioStream:
    """An AAC output stream tagged with its language (ISO 639-2, as MP4 wants), title and default flag."""
    stream = container.add_stream("aac", rate=rate)
    assert isinstance(stream, av.audio.stream.AudioStream)
    stream.layout = layout  # type: ignore[assignment]
    stream.format = "fltp"  # type: ignore[assignment]
    stream.bit_rate = bit_rate
    stream.time_base = Fraction(1, rate)
    stream.metadata["language"] = iso639_2(language)
    if title:
        stream.metadata["title"] = title
        stream.metadata["handler_name"] = title
    stream.disposition = av.stream.Disposition.default if default else av.stream.Disposition(0)
    return stream


class _AudioMux:
    def __init__(self, container: av.container.OutputContainer, track: AudioTrack, default: bool) -> None:
        samples = np.asarray(track.samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[:, None]
        if samples.ndim != 2 or samples.shape[1] < 1 or samples.shape[1] > 8:
            raise ValueError(f"audio samples must have shape (n, channels<=8), not {track.samples.shape}")
        self.samples = np.ascontiguousarray(np.clip(samples, -1.0, 1.0).T)  # planar (ch, n)
        self.rate = int(track.sample_rate)
        self.layout = layout_for(samples.shape[1])
        self.stream = add_aac_stream(container, self.rate, self.layout, int(track.bit_rate), track.language,
                                     track.title, default)
        self.container = container
        self.pos = 0  # next sample to encode
        self.start = round(track.start_time * self.rate)
        self.chunk = 1024

    def encode_until(self, t: float | None) -> None:
        """Encode the samples that play before time ``t`` (None: all of them, then flush)."""
        n = self.samples.shape[1]
        end = n if t is None else min(n, max(0, round(t * self.rate) - self.start))
        while self.pos < end:
            if t is not None and end - self.pos < self.chunk and end < n:
                break  # wait for a whole chunk
            stop = min(self.pos + self.chunk, end)
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(self.samples[:, self.pos : stop]), format="fltp", layout=self.layout
            )
            frame.sample_rate = self.rate
            frame.pts = self.start + self.pos
            frame.time_base = Fraction(1, self.rate)
            self.container.mux(self.stream.encode(frame))
            self.pos = stop
        if t is None:
            self.container.mux(self.stream.encode(None))


class VideoWriter:
    """Write RGB frames, each with its own time, to an H.264/H.265 file, plus AAC audio tracks.

    >>> with VideoWriter("out.mp4", 1280, 720, fps=25, audio_tracks=[AudioTrack(pcm, 48000, "de")]) as w:
    ...     for t, rgb in frames:
    ...         w.write(rgb, t)

    Give either ``time_base`` (the source's, to keep its exact timestamps, e.g. for VFR) or ``fps``
    (time base 1/fps, or 1001/30000 for 29.97). ``write(frame, t)`` stores pts = round(t / time_base);
    times must increase. ``color`` tags the output and picks the RGB->YUV matrix (default: what a player
    assumes for this size: BT.709 for HD, BT.601 below, limited range). ``close()`` finishes, muxes the
    remaining audio and renames the temporary file into place; ``abort()`` deletes it; leaving the
    ``with`` block by an exception aborts.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        *,
        fps: float | Fraction | None = None,
        time_base: Fraction | None = None,
        codec: str = "libx264",
        crf: float = 18,
        preset: str = "veryfast",
        pix_fmt: str = "yuv420p",
        audio_tracks: Sequence[AudioTrack] = (),
        color: ColorInfo | None = None,
        input_format: str = "rgb24",
        threads: int = 0,
        options: dict[str, str] | None = None,
    ) -> None:
        if fps is None and time_base is None:
            raise ValueError("give fps or time_base")
        if width <= 0 or height <= 0:
            raise ValueError(f"bad frame size {width}x{height}")
        if input_format not in ("rgb24", "bgr24"):
            raise ValueError("input_format must be 'rgb24' or 'bgr24'")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.input_format = input_format
        rate = Fraction(fps).limit_denominator(1001) if fps is not None else None
        if rate is not None and abs(float(rate) - 29.97) < 0.01:
            rate = Fraction(30000, 1001)
        self.time_base = Fraction(time_base) if time_base is not None else Fraction(1, 1) / rate  # type: ignore[operator]
        chroma_420 = pix_fmt in ("yuv420p", "yuvj420p", "nv12", "yuv420p10le")
        self.enc_width = self.width + (self.width % 2 if chroma_420 else 0)
        self.enc_height = self.height + (self.height % 2 if chroma_420 else 0)
        self.padded = (self.enc_width, self.enc_height) != (self.width, self.height)
        if self.padded:
            log.info("%s: %dx%d padded to %dx%d for %s", self.path, width, height, self.enc_width,
                     self.enc_height, pix_fmt)
        self.color = (color or ColorInfo()).resolved(self.height)
        self.frames_written = 0
        self._last_pts: int | None = None
        self._closed = False

        _check_folder(self.path)
        self._tmp = partial_path(self.path)
        try:
            self._tmp.touch(exist_ok=False)  # claim the name now: proves the folder is writable
        except OSError as exc:
            raise _output_error(self.path, exc) from exc
        try:
            self._container = av.open(str(self._tmp), mode="w", format=_format_for(self.path))
        except (OSError, av.FFmpegError) as exc:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            raise self._error(exc) from exc
        try:
            vs = self._container.add_stream(codec, rate=rate if rate is not None else None)
            assert isinstance(vs, av.video.stream.VideoStream)
            vs.width = self.enc_width
            vs.height = self.enc_height
            vs.pix_fmt = pix_fmt
            vs.time_base = self.time_base
            vs.codec_context.time_base = self.time_base
            if rate is not None:
                vs.codec_context.framerate = rate
            vs.codec_context.color_range = self.color.range
            vs.codec_context.colorspace = self.color.space
            vs.codec_context.color_primaries = self.color.primaries
            vs.codec_context.color_trc = self.color.trc
            vs.thread_count = threads
            opts: dict[str, str] = {"preset": preset}
            if codec in ("libx264", "libx265", "libsvtav1", "libvpx-vp9"):
                opts["crf"] = str(crf)
            if codec == "libx265":
                opts["x265-params"] = "log-level=error"
            if codec == "libx264" and pix_fmt == "yuv420p":
                opts.setdefault("profile", "high")
            opts.update(options or {})
            vs.options = dict(opts)  # type: ignore[assignment]
            if codec == "libx265":
                vs.codec_tag = "hvc1"  # plays in QuickTime/Safari
            self._vstream = vs
            self._sws_space = sws_colorspace(self.color.space)
            self._sws_range = sws_range(self.color.range)
            tracks = list(audio_tracks)
            any_default = any(t.default for t in tracks)
            self._audio = [
                _AudioMux(self._container, t, t.default or (not any_default and k == 0))
                for k, t in enumerate(tracks)
            ]
        except Exception:
            self._discard()
            raise

    # -- helpers -------------------------------------------------------------------------------------

    def _error(self, exc: BaseException) -> Exception:
        if isinstance(exc, OSError) and exc.errno is not None:
            return _output_error(self.path, exc)
        return OutputError(f"cannot be written: {exc}", self.path)

    def _discard(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            self._container.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink()

    def _prepare(self, frame: np.ndarray) -> av.VideoFrame:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be (H, W, 3) uint8, not {frame.shape} {frame.dtype}")
        if frame.shape[0] != self.height or frame.shape[1] != self.width:
            raise ValueError(f"frame is {frame.shape[1]}x{frame.shape[0]}, writer expects {self.width}x{self.height}")
        if self.padded:
            frame = np.pad(frame, ((0, self.enc_height - self.height), (0, self.enc_width - self.width), (0, 0)),
                           mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=self.input_format)
        return vf.reformat(
            format=self._vstream.pix_fmt,
            dst_colorspace=self._sws_space,
            dst_color_range=self._sws_range,
        )

    # -- API -----------------------------------------------------------------------------------------

    def write(self, frame: np.ndarray, t: float | None = None) -> None:
        """Encode one (H, W, 3) uint8 frame shown from ``t`` seconds (default: the next 1/fps slot)."""
        if self._closed:
            raise ValueError("VideoWriter is closed")
        if t is None:
            pts = 0 if self._last_pts is None else self._last_pts + max(1, round(1 / (self._frame_rate() * self.time_base)))
        else:
            pts = round(Fraction(t).limit_denominator(10**9) / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(
                f"frame times must increase: t={t} gives pts {pts} after {self._last_pts} "
                f"(time base {self.time_base})"
            )
        vf = self._prepare(frame)
        vf.pts = pts
        vf.time_base = self.time_base
        try:
            self._container.mux(self._vstream.encode(vf))
            for a in self._audio:  # keep audio interleaved with the video
                a.encode_until(float(pts * self.time_base) + 0.5)
        except OSError as exc:
            err = self._error(exc)
            self._discard()
            raise err from exc
        self._last_pts = pts
        self.frames_written += 1

    def _frame_rate(self) -> float:
        r = self._vstream.codec_context.framerate
        return float(r) if r else 1.0 / float(self.time_base)

    def close(self) -> Path:
        """Flush the encoders, mux the rest of the audio, and rename the file into place."""
        if self._closed:
            return self.path
        try:
            self._container.mux(self._vstream.encode(None))
            for a in self._audio:
                a.encode_until(None)
            self._container.close()
            self._closed = True
            os.replace(self._tmp, self.path)
        except OSError as exc:
            err = self._error(exc)
            self._discard()
            raise err from exc
        except BaseException:
            self._discard()
            raise
        log.info("wrote %s (%d frames, %d audio tracks)", self.path, self.frames_written, len(self._audio))
        return self.path

    def abort(self) -> None:
        """Stop and delete the temporary file; the target is left untouched."""
        if not self._closed:
            self._discard()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if not self._closed:
                self.abort()


def _format_for(path: Path) -> str | None:
    ext = path.suffix.lower()
    return {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}.get(ext)


def write_audio(
    path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int, codec: str | None = None,
    bit_rate: int = 192_000, language: str | None = None,
) -> Path:
    """Write float32 (n, ch) audio to a file (codec from the extension: wav=pcm_s16le, m4a=aac, flac,
    mp3, ogg/opus), atomically. Handy for previews, exports of a dub track and tests."""
    p = Path(path)
    ext = p.suffix.lower()
    codec = codec or {".wav": "pcm_s16le", ".m4a": "aac", ".aac": "aac", ".flac": "flac", ".mp3": "libmp3lame",
                      ".ogg": "libopus", ".opus": "libopus", ".mka": "aac"}.get(ext, "aac")
    fmt = {".m4a": "mp4", ".ogg": "ogg", ".opus": "ogg", ".wav": "wav", ".flac": "flac", ".mp3": "mp3",
           ".mka": "matroska"}.get(ext)
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    ch = x.shape[1]
    with atomic_output(p) as tmp:
        try:
            with av.open(str(tmp), "w", format=fmt) as c:
                s = c.add_stream(codec, rate=int(sample_rate))
                assert isinstance(s, av.audio.stream.AudioStream)
                s.layout = layout_for(ch)  # type: ignore[assignment]
                if codec not in ("flac",) and not codec.startswith("pcm_"):
                    s.bit_rate = bit_rate
                if language:
                    s.metadata["language"] = iso639_2(language)
                fmt_name = s.codec_context.codec.audio_formats[0].name if s.codec_context.codec.audio_formats else "fltp"
                s.format = fmt_name  # type: ignore[assignment]
                planar = np.ascontiguousarray(np.clip(x, -1, 1).T)
                step = 4096
                for i in range(0, planar.shape[1], step):
                    f = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, i : i + step]), format="fltp",
                                                   layout=layout_for(ch))
                    f.sample_rate = int(sample_rate)
                    f.pts = i
                    f.time_base = Fraction(1, int(sample_rate))
                    c.mux(s.encode(f))
                c.mux(s.encode(None))
        except OSError as exc:
            raise _output_error(p, exc) from exc
    return p
