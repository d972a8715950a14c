"""Frame-accurate video decode by frame index and by time, rotation applied, RGB/BGR uint8 out.

Frames are identified by their pts against the probe's frame-time table, never by counting, so
seeking (to the keyframe before, then decoding forward) lands on exactly the requested frame for CFR
and VFR files alike. Reading just ahead of the last frame reuses the open decoder: a sequential pass
never seeks. Only a small LRU cache of frames is kept; the video is never held in memory.

A reader is not thread-safe: use one per thread.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import av
import av.container
import av.video.frame
import av.video.stream
import numpy as np

from engine.errors import MediaError
from engine.media._open import open_input
from engine.media.color import sws_colorspace, sws_range
from engine.media.probe import MediaInfo, VideoInfo, probe

log = logging.getLogger("lipdub.media.reader")

PixelFormat = Literal["rgb24", "bgr24"]

# Reading forward by up to this many frames beats a seek (which restarts the decoder) even when a
# keyframe lies between.
_FORWARD_WINDOW = 24


class _Decoder:
    """One open container + decoder over the video stream, positioned somewhere in the file."""

    def __init__(self, path, info: VideoInfo, threads: bool) -> None:
        self.path, self.container = open_input(path)
        self.info = info
        self._threads = threads
        self._count = 0  # frames decoded since the file was (re)opened
        self._open_stream()
        self._frames: Iterator[av.video.frame.VideoFrame] | None = None
        self.next_index = 0  # index the next decoded frame is expected to have (at least)
        self.errors = 0
        self.seek_fell_back = False  # a seek had to read from the start instead (unseekable, or landing late)

    def _open_stream(self) -> None:
        self.stream = self.container.streams.video[0]
        for s in self.container.streams:
            if s.index == self.info.index:
                self.stream = s  # type: ignore[assignment]
        if self._threads:
            self.stream.thread_type = "AUTO"

    def _reopen(self) -> None:
        self._frames = None
        self._count = 0
        self.container.close()
        self.path, self.container = open_input(self.path)
        self._open_stream()

    def close(self) -> None:
        self._frames = None
        self.container.close()

    def _generate(self) -> Iterator[av.video.frame.VideoFrame]:
        try:
            for packet in self.container.demux(self.stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    self.errors += 1
                    if self.errors <= 3:
                        log.warning("%s: skipping undecodable video packet: %s", self.path, exc)
                    continue
                yield from frames
        except av.FFmpegError as exc:
            self.errors += 1
            log.warning("%s: video stream ends early: %s", self.path, exc)

    def frames_from(self, index: int) -> Iterator[tuple[int, av.video.frame.VideoFrame]]:
        """Seek to the keyframe before ``index`` and decode forward from there.

        Some seeks land late (MPEG-TS seeks by byte position; open GOPs): when the first frame out is
        already past ``index``, try the keyframe before that one, and finally the start of the file.
        """
        kf = self.info.keyframes
        before = [int(k) for k in kf[kf <= index][::-1]] if len(kf) else []
        tries = list(dict.fromkeys([*before[:2], 0]))
        for k in tries:
            self._seek_keyframe(k)
            it = self.frames()
            first = next(it, None)
            if first is None:
                continue
            if first[0] <= index or k == 0:
                if k == 0 and before and before[0] > 0:
                    self.seek_fell_back = True
                yield first
                yield from it
                return
            log.debug("%s: seek for frame %d from keyframe %d landed at %d", self.path, index, k, first[0])

    def _seek_keyframe(self, k: int) -> None:
        if k == 0:
            self._reopen()  # the start: read from the top, which works for every format (even unseekable)
        else:
            target = int(self.info.pts[k])
            try:
                self.container.seek(target, backward=True, any_frame=False, stream=self.stream)
            except av.FFmpegError as exc:  # an unseekable file: decode forward from the start instead
                log.info("%s: seeking to frame %d failed (%s); reading from the start", self.path, k, exc)
                self._reopen()
                k = 0
                self.seek_fell_back = True
        self._frames = self._generate()
        self.next_index = k

    def frames(self) -> Iterator[tuple[int, av.video.frame.VideoFrame]]:
        """Decoded frames from the current position, each with its index in the table."""
        if self._frames is None:
            self._seek_keyframe(0)
        assert self._frames is not None
        pts = self.info.pts
        n = len(pts)
        for frame in self._frames:
            self._count += 1
            ts = frame.pts if frame.pts is not None else frame.dts
            if ts is None:
                if not self.info.timestamps_synthesized:
                    continue
                ts = int(pts[min(self._count - 1, n - 1)])  # raw stream: the n-th frame out is frame n
            i = int(np.searchsorted(pts, ts))
            if i >= n or int(pts[i]) != ts:
                log.debug("%s: decoded a frame at pts %s that is not in the frame table", self.path, ts)
                continue
            self.next_index = i + 1
            yield i, frame
        self.next_index = n  # at the end


class VideoReader:
    """Random-access and streaming reads of a video's frames as (H, W, 3) uint8 arrays.

    >>> with VideoReader("clip.mp4") as r:
    ...     first = r.frame(0); later = r.frame_at_time(2.5)
    ...     for i, rgb in r.iter_frames(10, 20): ...

    ``pixel_format``: "rgb24" or "bgr24" (OpenCV order). Rotation metadata is applied, so arrays have
    the displayed shape (``info.height``, ``info.width``). ``truncated`` is True (and ``warnings`` say
    why) when the file is cut short; only the frames that are present are counted and served.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        pixel_format: PixelFormat = "rgb24",
        cache_frames: int = 32,
        media_info: MediaInfo | None = None,
        threads: bool = True,
    ) -> None:
        if pixel_format not in ("rgb24", "bgr24"):
            raise ValueError(f"pixel_format must be 'rgb24' or 'bgr24', not {pixel_format!r}")
        self.media_info = media_info or probe(path)
        self.info: VideoInfo = self.media_info.require_video()
        self.path = self.media_info.path
        self.pixel_format = pixel_format
        self.cache_size = max(0, int(cache_frames))
        # Frame-threaded decoding drops the frames around a damaged packet; damaged files decode single-threaded
        # (as the probe's check of them did), so every frame the table lists comes out.
        self._threads = threads and not self.info.truncated
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._dec: _Decoder | None = None
        self._k_rot = -(self.info.rotation // 90) % 4  # np.rot90 turns counter-clockwise
        self.warnings: list[str] = list(self.info.warnings)
        self._closed = False

    # -- basics ------------------------------------------------------------------------------------

    @property
    def truncated(self) -> bool:
        return self.info.truncated

    @property
    def frame_times(self) -> np.ndarray:
        return self.info.frame_times

    @property
    def fps(self) -> float:
        return self.info.fps

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.info.height, self.info.width, 3)

    def __len__(self) -> int:
        return self.info.frame_count

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def close(self) -> None:
        if self._dec is not None:
            self._dec.close()
            self._dec = None
        self._cache.clear()
        self._closed = True

    def _decoder(self) -> _Decoder:
        if self._closed:
            raise ValueError("VideoReader is closed")
        if self._dec is None:
            self._dec = _Decoder(self.path, self.info, self._threads)
        return self._dec

    # -- conversion ----------------------------------------------------------------------------------

    def _to_array(self, frame: av.video.frame.VideoFrame) -> np.ndarray:
        kwargs: dict[str, Any] = {}
        # Untagged video: convert the way players show it (BT.709 for HD, BT.601 below).
        if frame.colorspace in (None, 2) and frame.format.name.startswith(("yuv", "nv", "p0")):
            space = 1 if frame.height >= 720 else 6
            kwargs["src_colorspace"] = sws_colorspace(space)
        if frame.color_range in (None, 0) and frame.format.name.startswith("yuvj"):
            kwargs["src_color_range"] = sws_range(2)
        arr: np.ndarray = frame.to_ndarray(format=self.pixel_format, **kwargs)
        if self._k_rot:
            arr = np.ascontiguousarray(np.rot90(arr, self._k_rot))
        return arr

    # -- random access -------------------------------------------------------------------------------

    def _check_index(self, index: int) -> int:
        n = len(self)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"frame {index} out of range: {self.path} has {n} frames")
        return i

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (0-based, presentation order; negative counts from the end)."""
        i = self._check_index(index)
        cached = self._cache.get(i)
        if cached is not None:
            self._cache.move_to_end(i)
            return cached.copy()
        arr = self._decode_index(i)
        return arr.copy() if self.cache_size else arr

    def frame_at_time(self, t: float) -> np.ndarray:
        """The frame on screen at time ``t`` seconds (container clock; clamped to the video)."""
        return self.frame(self.index_at_time(t))

    def index_at_time(self, t: float) -> int:
        return self.info.index_at_time(t)

    def _remember(self, i: int, arr: np.ndarray) -> None:
        if not self.cache_size:
            return
        self._cache[i] = arr
        self._cache.move_to_end(i)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _decode_index(self, i: int) -> np.ndarray:
        dec = self._decoder()
        kf = self.info.keyframes
        ahead = i - dec.next_index
        keyframe_between = len(kf) and bool(np.any((kf > dec.next_index) & (kf <= i)))
        reuse = dec._frames is not None and ahead >= 0 and not (ahead > _FORWARD_WINDOW and keyframe_between)
        for frames in ((dec.frames(), dec.frames_from(i)) if reuse else (dec.frames_from(i),)):
            for j, frame in frames:
                if j < i:
                    # Keep the frames just before the target: scrubbing backwards one frame is common.
                    if i - j <= 2:
                        self._remember(j, self._to_array(frame))
                    continue
                if j == i:
                    arr = self._to_array(frame)
                    self._remember(i, arr)
                    return arr
                break  # j > i: the target frame never came out of the decoder
        raise MediaError(
            f"frame {i} (t={self.info.frame_times[i]:.3f} s) could not be decoded"
            + (" (the file is truncated or damaged)" if self.truncated or dec.errors else ""),
            self.path,
        )

    # -- streaming -----------------------------------------------------------------------------------

    def iter_frames(self, start: int = 0, stop: int | None = None, step: int = 1) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame)`` for frames ``start <= index < stop`` in order, decoding sequentially
        (every ``step``-th frame: :meth:`iter_frames_at` of that range).

        Uses its own decoder, so random access through :meth:`frame` meanwhile does not disturb it.
        Frames that cannot be decoded (damaged files) are skipped with a warning.
        """
        n = len(self)
        start = max(0, min(int(start), n))
        stop = n if stop is None else max(start, min(int(stop), n))
        return self.iter_frames_at(range(start, stop, max(1, int(step))))

    def iter_frames_at(self, indices: Iterable[int],
                       each_decoded: Callable[[], None] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame)`` for the given frame indices (in increasing order, each once).

        Decodes forward like :meth:`iter_frames`, but turns only the wanted frames into arrays and
        seeks ahead over a gap that holds a keyframe, so a sparse selection of a long video costs
        about the frames it asks for (and their keyframe lead-in), not the whole span. Frames that
        cannot be decoded are skipped with a warning. ``each_decoded`` is called for every frame
        decoded, wanted or not (a cancel check stays responsive across long gaps)."""
        n = len(self)
        want = np.unique(np.fromiter(indices, np.int64))
        want = want[(want >= 0) & (want < n)]
        if not len(want):
            return
        kf = np.asarray(self.info.keyframes, np.int64)
        dec = _Decoder(self.path, self.info, self._threads)
        missing: list[int] = []
        k = 0
        try:
            frames = dec.frames_from(int(want[0]))
            while k < len(want):
                reseek = False
                for j, frame in frames:
                    if each_decoded is not None:
                        each_decoded()
                    while k < len(want) and want[k] < j:
                        missing.append(k)
                        k += 1
                    if k == len(want):
                        break
                    if want[k] != j:
                        continue
                    yield j, self._to_array(frame)
                    k += 1
                    if k == len(want):
                        break
                    # A keyframe between here and the next wanted frame: seeking to it skips decoding the gap
                    # (not where a seek had to read from the start: each seek would begin again there).
                    nxt, here = int(want[k]), dec.next_index
                    if (not dec.seek_fell_back and nxt - here > _FORWARD_WINDOW
                            and bool(np.any((kf > here) & (kf <= nxt)))):
                        reseek = True
                        break
                else:
                    missing.extend(range(k, len(want)))  # the decoder ran out
                    k = len(want)
                if reseek:
                    frames = dec.frames_from(int(want[k]))
        finally:
            dec.close()
        if missing:
            # One warning per stretch of consecutive asked-for frames that did not come (a damaged
            # stretch of the file spans the runs of a sparse selection).
            for run in np.split(np.asarray(missing), np.flatnonzero(np.diff(missing) != 1) + 1):
                lost = len(run)
                self._note_missing(int(want[run[0]]), int(want[run[-1]]) + 1,
                                   None if lost == int(want[run[-1]]) - int(want[run[0]]) + 1 else lost)

    def _note_missing(self, first: int, end: int, asked: int | None = None) -> None:
        msg = f"frames {first}..{end - 1} could not be decoded and were skipped"
        if asked is not None:
            msg = f"frames {first}..{end - 1} could not be decoded: {asked} frames asked for there were skipped"
        if msg not in self.warnings:
            self.warnings.append(msg)
            log.warning("%s: %s", self.path, msg)


def read_frame(path: str | os.PathLike[str], index: int, pixel_format: PixelFormat = "rgb24") -> np.ndarray:
    """One frame of a video, for one-off reads (opens and closes the file)."""
    with VideoReader(path, pixel_format=pixel_format, cache_frames=0) as r:
        return r.frame(index)
