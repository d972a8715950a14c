"""Background jobs the app runs on media: plain functions ``fn(..., progress, cancel)`` that call the
engine and return display-ready data. They run on worker threads only (never on the GUI thread) and
import the engine lazily, so importing this module stays cheap.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtGui import QImage

from engine.runtime.jobs import CancelToken, Progress, ProgressFn, check_cancel

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".mxf", ".wmv"}
AUDIO_SUFFIXES = {".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".opus", ".wma", ".aif", ".aiff", ".mka"}

def media_kind(path: Path) -> str:
    """'video', 'audio' or '' from the file name (the engine's probe decides for real later)."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    return ""


def engine_piece_available(module: str) -> bool:
    """Whether ``engine.x.y`` exists, found on disk without importing ``engine.x`` (that can be heavy
    and this is called on the GUI thread)."""
    spec = importlib.util.find_spec("engine")
    if spec is None or not spec.submodule_search_locations:
        return False
    base = Path(next(iter(spec.submodule_search_locations)))
    parts = module.split(".")[1:]
    if not parts:
        return True
    leaf = base.joinpath(*parts)
    return leaf.with_suffix(".py").is_file() or (leaf / "__init__.py").is_file()


# --- video -------------------------------------------------------------------------------------------


@dataclass
class ProbedVideo:
    path: Path
    content_hash: str | None
    probe_dict: dict[str, Any]
    duration_s: float
    fps: float
    width: int
    height: int
    frame_count: int
    info: Any


def probe_video(path: Path, progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> ProbedVideo:
    from engine.media.probe import content_hash, probe

    info = probe(path)
    v = info.require_video()
    check_cancel(cancel)
    try:
        digest: str | None = content_hash(path)
    except Exception:
        digest = None
    summary = {
        "width": v.width,
        "height": v.height,
        "fps": float(v.fps),
        "frame_count": int(v.frame_count),
        "duration_s": float(v.duration),
        "codec": v.codec,
        "vfr": bool(v.is_vfr),
        "audio_streams": len(info.audio),
    }
    return ProbedVideo(path, digest, summary, float(v.duration), float(v.fps), v.width, v.height, int(v.frame_count), info)


def thumbnails(
    path: Path, count: int = 48, height: int = 42, progress: ProgressFn | None = None, cancel: CancelToken | None = None
) -> list[tuple[float, QImage]]:
    """``count`` evenly spaced frames, scaled to ``height`` pixels, as (time, QImage)."""
    import cv2

    from engine.media.reader import VideoReader

    out: list[tuple[float, QImage]] = []
    with VideoReader(path, cache_frames=0) as reader:
        n = len(reader)
        if n == 0:
            return out
        indices = np.unique(np.linspace(0, n - 1, min(count, n)).round().astype(int))
        times = reader.frame_times
        for k, i in enumerate(indices):
            check_cancel(cancel)
            rgb = reader.frame(int(i))
            h, w = rgb.shape[:2]
            tw = max(1, round(w * height / h))
            small = np.ascontiguousarray(cv2.resize(rgb, (tw, height), interpolation=cv2.INTER_AREA))
            out.append((float(times[i]), QImage(small.data, tw, height, 3 * tw, QImage.Format.Format_RGB888).copy()))
            if progress:
                progress(Progress("thumbnails", k + 1, len(indices)))
    return out


# --- dub tracks -------------------------------------------------------------------------------------


@dataclass
class TrackData:
    path: Path
    duration_s: float
    peaks: Any  # engine.audio.peaks.WaveformPeaks
    segments: list[tuple[float, float]]  # speech, in file time
    note: str


def load_track(path: Path, progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> TrackData:
    """Decode a dub track with the engine, with its waveform peaks and speech segments (VAD)."""
    from engine.audio.peaks import waveform_peaks
    from engine.audio.tracks import load_track as engine_load_track
    from engine.audio.vad import detect_speech

    loaded = engine_load_track(path, cancel=cancel)
    check_cancel(cancel)
    peaks = waveform_peaks(loaded.audio16k, loaded.sample_rate)
    vad = detect_speech(loaded.audio16k, progress=progress, cancel=cancel)
    segments = [(float(s), float(e)) for s, e in vad.segments]
    n = len(segments)
    note = f"{n} speech segment{'s' if n != 1 else ''}"
    if loaded.warnings:
        note += "; " + "; ".join(loaded.warnings)
    return TrackData(Path(path), loaded.duration_s, peaks, segments, note)
