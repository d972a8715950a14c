"""Probe a media file: container, streams, and for video a frame-time table (the pts of every frame).

The frame-time table is what every later stage uses to map frame indices to (audio) time. It is built
by demuxing the video packets without decoding them and sorting their presentation timestamps, so a
VFR file keeps its irregular timing. Times are seconds on the container's clock (the clock the audio
stream's ``start_time`` is on too); for most files the first frame is at 0.

Probing decodes exactly one frame, to read the rotation (display-matrix side data) and to prove the
codec can be decoded at all. Tables are cached on disk (key: path, size, mtime), so probing a long
file twice is instant.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.audio.stream
import av.container
import av.stream
import numpy as np

from engine.errors import MediaError
from engine.media._open import media_error, open_input
from engine.media.color import ColorInfo

log = logging.getLogger("lipdub.media.probe")

CACHE_VERSION = 5
_HASH_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------------
# Results


@dataclass
class VideoInfo:
    """One video stream. ``width``/``height`` are as displayed (rotation applied); ``coded_*`` as stored.

    ``rotation`` is the clockwise rotation, in degrees (0, 90, 180, 270), a player applies to the
    stored picture (what phones write; the legacy ``rotate`` tag has the same meaning).
    ``frame_times[i]`` is the presentation time of frame ``i`` in seconds (``pts[i] * time_base``).
    """

    index: int
    codec: str
    codec_long: str
    profile: str | None
    width: int
    height: int
    coded_width: int
    coded_height: int
    pix_fmt: str
    rotation: int
    avg_fps: float
    real_fps: float
    frame_count: int
    is_vfr: bool
    frame_times: np.ndarray
    pts: np.ndarray
    time_base: Fraction
    start_time: float
    duration: float
    sample_aspect_ratio: Fraction | None
    color: ColorInfo
    bit_rate: int | None
    keyframes: np.ndarray  # frame indices (presentation order) of the keyframes
    language: str | None = None
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)
    timestamps_synthesized: bool = False  # raw stream without timestamps: frames counted from the start

    @property
    def fps(self) -> float:
        """The nominal frame rate: the average for VFR, else the real (r_frame_rate) one."""
        return self.avg_fps if self.is_vfr or not self.real_fps else self.real_fps

    @property
    def frame_duration(self) -> float:
        """The typical (median) frame duration in seconds."""
        if self.frame_count >= 2:
            return float(np.median(np.diff(self.frame_times)))
        return 1.0 / self.fps if self.fps else 0.0

    def index_at_time(self, t: float) -> int:
        """The index of the frame on screen at time ``t`` (seconds, container clock), clamped."""
        if self.frame_count == 0:
            raise MediaError("video stream has no frames")
        half_tick = 0.5 * float(self.time_base)
        i = int(np.searchsorted(self.frame_times, t + half_tick, side="right")) - 1
        return min(max(i, 0), self.frame_count - 1)

    def to_dict(self, frames: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "codec": self.codec,
            "codec_long": self.codec_long,
            "profile": self.profile,
            "width": self.width,
            "height": self.height,
            "coded_width": self.coded_width,
            "coded_height": self.coded_height,
            "pix_fmt": self.pix_fmt,
            "rotation": self.rotation,
            "avg_fps": self.avg_fps,
            "real_fps": self.real_fps,
            "frame_count": self.frame_count,
            "is_vfr": self.is_vfr,
            "time_base": str(self.time_base),
            "start_time": self.start_time,
            "duration": self.duration,
            "sample_aspect_ratio": str(self.sample_aspect_ratio) if self.sample_aspect_ratio else None,
            "color": {**self.color.to_dict(), "names": self.color.names},
            "bit_rate": self.bit_rate,
            "keyframe_count": len(self.keyframes),
            "language": self.language,
            "truncated": self.truncated,
            "timestamps_synthesized": self.timestamps_synthesized,
            "warnings": list(self.warnings),
        }
        if frames:
            d["pts"] = [int(x) for x in self.pts]
            d["frame_times"] = [float(x) for x in self.frame_times]
            d["keyframes"] = [int(x) for x in self.keyframes]
        return d


@dataclass
class AudioStreamInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    layout: str
    duration: float | None
    start_time: float
    language: str | None
    title: str | None
    default: bool
    bit_rate: int | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class MediaInfo:
    path: Path
    format_name: str
    format_long_name: str
    duration: float | None
    size_bytes: int
    bit_rate: int | None
    videos: list[VideoInfo]
    audio: list[AudioStreamInfo]
    other_streams: list[dict[str, Any]]
    metadata: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    @property
    def video(self) -> VideoInfo | None:
        """The main video stream (the first that is not cover art), or None."""
        return self.videos[0] if self.videos else None

    @property
    def truncated(self) -> bool:
        return any(v.truncated for v in self.videos)

    def require_video(self) -> VideoInfo:
        """The main video stream; MediaError naming the file when there is none or it has no frames."""
        v = self.video
        if v is None:
            kinds = ", ".join(sorted({a.codec for a in self.audio})) or "nothing"
            raise MediaError(
                f"has no video stream (it contains {'audio: ' + kinds if self.audio else kinds})",
                self.path,
                "choose a video file",
            )
        if v.frame_count == 0:
            raise MediaError("video stream contains no frames (zero-length video)", self.path)
        return v

    def to_dict(self, frames: bool = False) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format_name": self.format_name,
            "format_long_name": self.format_long_name,
            "duration": self.duration,
            "size_bytes": self.size_bytes,
            "bit_rate": self.bit_rate,
            "videos": [v.to_dict(frames) for v in self.videos],
            "audio": [a.to_dict() for a in self.audio],
            "other_streams": self.other_streams,
            "metadata": self.metadata,
            "truncated": self.truncated,
            "warnings": list(self.warnings) + [w for v in self.videos for w in v.warnings],
        }


# --------------------------------------------------------------------------------------------------
# Hashes and the on-disk cache


def content_hash(path: str | os.PathLike[str]) -> str:
    """A fast identity for a media file's content: sha1 of its size and its first and last MiB.

    Stable across renames and copies; cheap on multi-GB files. Use it to key analysis caches.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        h = hashlib.sha1(f"lipdub-content-v1:{size}:".encode())
        with p.open("rb") as f:
            h.update(f.read(_HASH_CHUNK))
            if size > _HASH_CHUNK:
                f.seek(max(size - _HASH_CHUNK, _HASH_CHUNK))
                h.update(f.read(_HASH_CHUNK))
    except FileNotFoundError as exc:
        raise MediaError("file not found", p) from exc
    except OSError as exc:
        raise MediaError(f"cannot be read: {exc.strerror or exc}", p) from exc
    return h.hexdigest()


def _cache_file(p: Path) -> Path | None:
    try:
        from engine.runtime.paths import cache_dir

        st = p.stat()
        key = hashlib.sha1(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}|v{CACHE_VERSION}".encode()).hexdigest()
        return cache_dir("probe") / f"{key}.npz"
    except OSError:
        return None


def _save_cache(cache: Path | None, info: MediaInfo) -> None:
    if cache is None:
        return
    try:
        meta = info.to_dict(frames=False)
        arrays: dict[str, Any] = {}
        for i, v in enumerate(info.videos):
            arrays[f"pts{i}"] = v.pts
            arrays[f"key{i}"] = v.keyframes
            meta["videos"][i]["_color"] = v.color.to_dict()
            meta["videos"][i]["_warnings"] = list(v.warnings)
        meta["_warnings"] = list(info.warnings)
        tmp = cache.with_suffix(f".tmp{os.getpid()}.npz")
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez(tmp, **arrays)
        os.replace(tmp, cache)
    except Exception as exc:  # a cache is an optimisation: never fail a probe over it
        log.debug("could not write probe cache %s: %s", cache, exc)


def _load_cache(cache: Path | None, p: Path) -> MediaInfo | None:
    if cache is None or not cache.exists():
        return None
    try:
        with np.load(cache, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            videos = []
            for i, vd in enumerate(meta["videos"]):
                pts = z[f"pts{i}"].astype(np.int64)
                tb = Fraction(vd["time_base"])
                sar = vd["sample_aspect_ratio"]
                videos.append(
                    VideoInfo(
                        index=vd["index"], codec=vd["codec"], codec_long=vd["codec_long"],
                        profile=vd["profile"], width=vd["width"], height=vd["height"],
                        coded_width=vd["coded_width"], coded_height=vd["coded_height"],
                        pix_fmt=vd["pix_fmt"], rotation=vd["rotation"], avg_fps=vd["avg_fps"],
                        real_fps=vd["real_fps"], frame_count=len(pts), is_vfr=vd["is_vfr"],
                        frame_times=pts * float(tb), pts=pts, time_base=tb,
                        start_time=vd["start_time"], duration=vd["duration"],
                        sample_aspect_ratio=Fraction(sar) if sar else None,
                        color=ColorInfo(**vd["_color"]), bit_rate=vd["bit_rate"],
                        keyframes=z[f"key{i}"].astype(np.int64), language=vd["language"],
                        truncated=vd["truncated"], warnings=list(vd["_warnings"]),
                        timestamps_synthesized=vd["timestamps_synthesized"],
                    )
                )
        return MediaInfo(
            path=p, format_name=meta["format_name"], format_long_name=meta["format_long_name"],
            duration=meta["duration"], size_bytes=meta["size_bytes"], bit_rate=meta["bit_rate"],
            videos=videos, audio=[AudioStreamInfo(**a) for a in meta["audio"]],
            other_streams=meta["other_streams"], metadata=meta["metadata"],
            warnings=list(meta["_warnings"]),
        )
    except Exception as exc:
        log.debug("ignoring unreadable probe cache %s: %s", cache, exc)
        return None


# --------------------------------------------------------------------------------------------------
# Probing


def _seconds(value: int | None, tb: Fraction | None) -> float | None:
    if value is None or tb is None:
        return None
    return float(value * tb)


def _norm_rotation(deg: float) -> int:
    return round(deg / 90.0) % 4 * 90


_MKV_DURATION = re.compile(r"^(\d+):(\d+):(\d+(?:\.\d+)?)$")


def _declared_stream_duration(stream: av.stream.Stream) -> float | None:
    """The stream's duration as the container declares it (mp4 header, mkv DURATION tag)."""
    d = _seconds(stream.duration, stream.time_base)
    if d:
        return d
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        m = _MKV_DURATION.match(tag.strip())
        if m:
            return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return None


_GENERIC_HANDLERS = re.compile(r"handler|core media|iso media|^mainconcept|^gpac|^l-smash|^apple", re.I)


def _track_title(meta: dict[str, str]) -> str | None:
    """The track's title: the title tag, else an mp4 handler name that is not a muxer's default."""
    title = meta.get("title")
    if title:
        return title
    handler = (meta.get("handler_name") or "").strip()
    return handler if handler and not _GENERIC_HANDLERS.search(handler) else None


def _is_cover_art(stream: av.stream.Stream) -> bool:
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _scan_video_packets(p: Path, container: av.container.InputContainer, stream) -> tuple[
    np.ndarray, np.ndarray, list[str], bool, int, bool
]:
    """Demux (no decode) the stream's packets: sorted pts, keyframe pts, warnings, hit-an-error, and the
    number of packets the container marks as discarded (edit lists), and whether the timestamps were
    made up (raw streams such as .h264 carry none: frames are then spaced at the nominal rate)."""
    pts: list[int] = []
    discarded = 0
    keys: list[int] = []
    missing_pts = 0
    no_ts = 0
    corrupt = 0
    failed = False
    warnings: list[str] = []
    last_dts: int | None = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.is_discard:
                discarded += 1
                continue
            ts = packet.pts
            if ts is None:
                missing_pts += 1
                ts = packet.dts
                if ts is None:  # no timestamps at all: count on from the last one
                    no_ts += 1
                    ts = (last_dts + (packet.duration or 1)) if last_dts is not None else 0
            last_dts = packet.dts if packet.dts is not None else ts
            if packet.is_corrupt:
                corrupt += 1
            pts.append(int(ts))
            if packet.is_keyframe:
                keys.append(int(ts))
    except (av.FFmpegError, OSError) as exc:
        failed = True
        warnings.append(f"reading stopped early: {exc}")
        log.warning("%s: demux stopped early after %d video packets: %s", p, len(pts), exc)
    synthesized = bool(pts) and no_ts == len(pts)
    if synthesized:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        step = max(1, round(1 / (Fraction(rate) * (stream.time_base or Fraction(1, 90000)))))
        pts = [i * step for i in range(len(pts))]
        keys = [0]
        warnings.append(
            f"the stream carries no timestamps (a raw stream?): frame times assume a constant {float(rate):.3f} fps, "
            "and jumping to a frame decodes from the start"
        )
    elif missing_pts:
        warnings.append(f"{missing_pts} video packets carry no pts; their decode timestamps were used")
    if corrupt:
        warnings.append(f"{corrupt} video packets are flagged corrupt")
    arr = np.asarray(pts, dtype=np.int64)
    arr.sort(kind="stable")
    if len(arr) > 1 and np.any(np.diff(arr) == 0):
        n_before = len(arr)
        arr = np.unique(arr)
        warnings.append(f"{n_before - len(arr)} video packets repeat another frame's timestamp and were dropped")
    return arr, np.asarray(sorted(set(keys)), dtype=np.int64), warnings, failed or corrupt > 0, discarded, synthesized


def _decode_first_frame(p: Path, stream_index: int):
    """Decode the first frame (rotation, proof of a working decoder), from a fresh open of the file so
    it works for formats that cannot seek. None when no frame decodes."""
    errors = 0
    try:
        with av.open(str(p), metadata_errors="replace") as c:
            s = c.streams[stream_index]
            for packet in c.demux(s):
                try:
                    for frame in packet.decode():
                        return frame
                except av.FFmpegError as exc:
                    errors += 1
                    if errors > 50:
                        raise media_error(p, exc, "decoding its video") from exc
    except av.FFmpegError as exc:
        raise media_error(p, exc, "decoding its video") from exc
    return None


def _verify_tail(p: Path, stream_index: int, pts: np.ndarray, keyframe_pts: np.ndarray) -> np.ndarray:
    """Decode from the last keyframe to the end; drop table entries no frame came out for.

    Used for truncated/damaged files, whose last packets often cannot be decoded.
    """
    if len(pts) == 0:
        return pts
    start = int(keyframe_pts[-1]) if len(keyframe_pts) else int(pts[0])
    seen: set[int] = set()
    try:
        with av.open(str(p), metadata_errors="replace") as c:
            s = c.streams[stream_index]
            c.seek(start, backward=True, any_frame=False, stream=s)
            for packet in c.demux(s):
                try:
                    for f in packet.decode():
                        ts = getattr(f, "pts", None)
                        if ts is not None:
                            seen.add(int(ts))
                except av.FFmpegError:
                    continue
    except (av.FFmpegError, OSError):
        pass
    first_checked = int(np.searchsorted(pts, min(seen) if seen else start))
    keep = np.ones(len(pts), dtype=bool)
    for i in range(first_checked, len(pts)):
        if int(pts[i]) not in seen:
            keep[i] = False
    return pts[keep]


def _video_info(p: Path, container: av.container.InputContainer, stream, deep_check: bool) -> VideoInfo:
    ctx = stream.codec_context
    tb = stream.time_base or Fraction(1, 90000)
    codec = ctx.name if ctx is not None else "unknown"
    codec_long = ctx.codec.long_name if ctx is not None else "unknown"
    warnings: list[str] = []

    pts, key_pts, scan_warnings, damaged, discarded, synthesized = _scan_video_packets(p, container, stream)
    warnings += scan_warnings

    first = _decode_first_frame(p, stream.index) if len(pts) else None
    if len(pts) and first is None:
        raise MediaError("video stream cannot be decoded: no frame could be decoded", p)

    rotation = 0
    tag = stream.metadata.get("rotate")
    if tag:
        try:
            rotation = _norm_rotation(float(tag))
        except ValueError:
            pass
    if first is not None and first.rotation:
        rotation = _norm_rotation(-float(first.rotation))  # display matrix is counter-clockwise

    declared = _declared_stream_duration(stream)
    declared_frames = int(stream.frames or 0)
    truncated = damaged
    if declared_frames and len(pts) + discarded < declared_frames:
        truncated = True
        warnings.append(f"header announces {declared_frames} frames but only {len(pts)} are present")
    if truncated or deep_check:
        before = len(pts)
        pts = _verify_tail(p, stream.index, pts, key_pts)
        if len(pts) < before:
            truncated = True
            warnings.append(f"the last {before - len(pts)} frame(s) cannot be decoded")
    key_pts = key_pts[np.isin(key_pts, pts)]

    n = len(pts)
    times = pts.astype(np.float64) * float(tb)
    real_rate = stream.base_rate or stream.guessed_rate
    real_fps = float(real_rate) if real_rate else 0.0
    diffs = np.diff(pts)
    if n >= 2:
        med = float(np.median(diffs))
        frame_dur_ticks = med
        avg_fps = (n - 1) / float((pts[-1] - pts[0]) * tb) if pts[-1] > pts[0] else real_fps
        tol = max(1.0, 0.005 * med)
        is_vfr = bool(np.any(np.abs(diffs - med) > tol))
    else:
        frame_dur_ticks = (1.0 / real_fps / float(tb)) if real_fps else 0.0
        avg_fps = float(stream.average_rate) if stream.average_rate else real_fps
        is_vfr = False
    if not real_fps or synthesized:
        real_fps = avg_fps
    duration = float((pts[-1] - pts[0] + frame_dur_ticks) * tb) if n else 0.0
    if declared and n and not truncated and declared > duration + max(1.0, 0.1 * declared):
        truncated = True
        warnings.append(f"header announces {declared:.2f} s of video but frames cover only {duration:.2f} s")
    if truncated:
        warnings.insert(0, f"file is truncated or damaged: {n} frame(s) ({duration:.2f} s) can be decoded")
    if n == 0:
        warnings.append("video stream contains no frames")

    cw = int(ctx.width or 0) if ctx is not None else 0
    ch = int(ctx.height or 0) if ctx is not None else 0
    if first is not None:
        cw, ch = first.width, first.height
    w, h = (ch, cw) if rotation in (90, 270) else (cw, ch)
    pix_fmt = (first.format.name if first is not None else None) or (ctx.pix_fmt if ctx is not None else "") or ""
    if first is not None:
        color = ColorInfo(
            range=int(first.color_range or 0),
            space=int(first.colorspace if first.colorspace is not None else 2),
            primaries=int(first.color_primaries if first.color_primaries is not None else 2),
            trc=int(first.color_trc if first.color_trc is not None else 2),
        )
    elif ctx is not None:
        color = ColorInfo(int(ctx.color_range or 0), int(ctx.colorspace), int(ctx.color_primaries), int(ctx.color_trc))
    else:
        color = ColorInfo()
    sar = stream.sample_aspect_ratio or (ctx.sample_aspect_ratio if ctx is not None else None)
    keyframes = np.searchsorted(pts, key_pts).astype(np.int64)
    if n and (len(keyframes) == 0 or keyframes[0] != 0):
        keyframes = np.concatenate([[0], keyframes]).astype(np.int64)
    for w_ in warnings:
        log.warning("%s: %s", p, w_)
    return VideoInfo(
        index=stream.index,
        codec=codec,
        codec_long=codec_long or codec,
        profile=stream.profile,
        width=w,
        height=h,
        coded_width=cw,
        coded_height=ch,
        pix_fmt=pix_fmt,
        rotation=rotation,
        avg_fps=float(avg_fps),
        real_fps=real_fps,
        frame_count=n,
        is_vfr=is_vfr,
        frame_times=times,
        pts=pts,
        time_base=Fraction(tb),
        start_time=float(times[0]) if n else 0.0,
        duration=duration,
        sample_aspect_ratio=Fraction(sar) if sar else None,
        color=color,
        bit_rate=int(ctx.bit_rate) if ctx is not None and ctx.bit_rate else None,
        keyframes=keyframes,
        language=stream.language,
        truncated=truncated,
        warnings=warnings,
        timestamps_synthesized=synthesized,
    )


def probe(path: str | os.PathLike[str], use_cache: bool = True, deep_check: bool = False) -> MediaInfo:
    """Describe a media file; MediaError naming the file if it is missing, not media, or undecodable.

    ``deep_check`` also decodes the last GOP of each video stream to drop frames that cannot be decoded
    (done automatically when the file looks truncated or damaged).
    """
    p, container = open_input(path)
    cache = _cache_file(p) if use_cache else None
    cached = _load_cache(cache, p) if not deep_check else None
    if cached is not None:
        container.close()
        return cached
    try:
        videos: list[VideoInfo] = []
        audio: list[AudioStreamInfo] = []
        others: list[dict[str, Any]] = []
        warnings: list[str] = []
        for s in container.streams:
            ctx = s.codec_context
            if s.type == "video" and not _is_cover_art(s):
                if ctx is None or not ctx.codec.name or ctx.name in ("none", ""):
                    raise MediaError(
                        f"video stream #{s.index} uses a codec this program cannot decode", p,
                        "convert it to H.264 first",
                    )
                videos.append(_video_info(p, container, s, deep_check))
            elif s.type == "audio":
                assert isinstance(s, av.audio.stream.AudioStream)
                ctx = s.codec_context
                if ctx is None:
                    warnings.append(f"audio stream #{s.index} uses an unknown codec and is ignored")
                    continue
                audio.append(
                    AudioStreamInfo(
                        index=s.index,
                        codec=ctx.name,
                        sample_rate=int(ctx.sample_rate or 0),
                        channels=int(ctx.channels or 0),
                        layout=ctx.layout.name if ctx.layout is not None else "",
                        duration=_declared_stream_duration(s),
                        start_time=_seconds(s.start_time, s.time_base) or 0.0,
                        language=s.language,
                        title=_track_title(s.metadata),
                        default=bool(s.disposition & av.stream.Disposition.default),
                        bit_rate=int(ctx.bit_rate) if ctx.bit_rate else None,
                    )
                )
            else:
                kind = "cover art" if _is_cover_art(s) else s.type
                others.append({"index": s.index, "type": kind, "codec": ctx.name if ctx is not None else None})
        if not videos and not audio:
            raise MediaError("contains no audio or video stream that can be read", p)
        fmt = container.format
        info = MediaInfo(
            path=p,
            format_name=fmt.name,
            format_long_name=fmt.long_name,
            duration=float(container.duration) / 1e6 if container.duration else None,
            size_bytes=p.stat().st_size,
            bit_rate=int(container.bit_rate) if container.bit_rate else None,
            videos=videos,
            audio=audio,
            other_streams=others,
            metadata={str(k): str(v) for k, v in container.metadata.items()},
            warnings=warnings,
        )
    except MediaError:
        raise
    except av.FFmpegError as exc:
        raise media_error(p, exc, "probing it") from exc
    finally:
        container.close()
    _save_cache(cache, info)
    return info
