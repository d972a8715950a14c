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

PEAKS_PER_S = 200.0  # waveform resolution: 5 ms buckets, enough for ~2000 px per second of zoom


def media_kind(path: Path) -> str:
    """'video', 'audio' or '' from the file name (the engine's probe decides for real later)."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    return ""


def engine_piece_available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


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
class LoadedTrack:
    path: Path
    duration_s: float
    peaks: np.ndarray  # (n, 2) float32 min/max per bucket, in [-1, 1]
    peaks_per_s: float
    segments: list[tuple[float, float]]
    vad_note: str


def waveform_peaks(mono: np.ndarray, sample_rate: int, per_s: float = PEAKS_PER_S) -> np.ndarray:
    """Min/max of each bucket of 1/per_s seconds: enough to draw the waveform at any zoom."""
    bucket = max(1, round(sample_rate / per_s))
    n = len(mono) // bucket
    if n == 0:
        return np.zeros((0, 2), np.float32)
    x = mono[: n * bucket].reshape(n, bucket)
    return np.stack([x.min(axis=1), x.max(axis=1)], axis=1).astype(np.float32)


def load_track(path: Path, progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> LoadedTrack:
    """Decode a dub track, compute its waveform peaks and its speech segments (engine VAD)."""
    from engine.media.audio import decode_audio

    audio = decode_audio(path, sample_rate=16000, channels=1)
    mono = np.asarray(audio.samples, dtype=np.float32).reshape(-1)
    check_cancel(cancel)
    sr = audio.sample_rate
    peaks_fn = None
    if engine_piece_available("engine.audio.waveform"):
        from engine.audio import waveform as wf

        peaks_fn = getattr(wf, "waveform_peaks", None)
    peaks = peaks_fn(mono, sr, PEAKS_PER_S) if peaks_fn else waveform_peaks(mono, sr)
    segments: list[tuple[float, float]] = []
    note = ""
    try:
        from engine.audio.vad import detect_speech

        result = detect_speech(mono, progress=progress, cancel=cancel)
        segments = [(float(s), float(e)) for s, e in result.segments]
        note = f"{len(segments)} speech segment(s)"
    except ImportError:
        note = "speech detection not available in this build"
    return LoadedTrack(path, len(mono) / sr, peaks, PEAKS_PER_S, segments, note)
