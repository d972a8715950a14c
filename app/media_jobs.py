"""Background jobs the app runs on media: plain functions ``fn(..., progress, cancel)`` that call the
engine and return display-ready data. They run on worker threads only (never on the GUI thread) and
import the engine lazily, so importing this module stays cheap.
"""

from __future__ import annotations

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


#: Below this probability the detected language is shown but not applied: Whisper still names a
#: language for a pure tone or silence (measured: 'en' at 0.37-0.51), real speech scores 0.98-0.99.
MIN_LANGUAGE_PROBABILITY = 0.7


@dataclass
class DetectedLanguage:
    """Whisper's language detection for a track: ``code`` is None when nothing was detected."""

    code: str | None
    probability: float = 0.0
    note: str = ""  # why nothing was detected or applied

    @property
    def confident(self) -> bool:
        return self.code is not None and self.probability >= MIN_LANGUAGE_PROBABILITY


@dataclass
class TrackData:
    path: Path
    duration_s: float
    peaks: Any  # engine.audio.peaks.WaveformPeaks
    segments: list[tuple[float, float]]  # speech, in file time
    note: str
    language: DetectedLanguage | None = None


def detect_track_language(audio16k: np.ndarray, segments: list[tuple[float, float]]) -> DetectedLanguage:
    """The spoken language from the track's first speech; nothing when VAD found no speech. A model
    that cannot load is a note, not a failure of the whole track."""
    from engine.audio.language import detect_language
    from engine.errors import LipdubError

    if not segments:
        return DetectedLanguage(None, 0.0, "no speech found")
    try:
        code, prob = detect_language(audio16k, speech_start_s=segments[0][0])
    except LipdubError as exc:
        return DetectedLanguage(None, 0.0, f"language detection failed: {exc.user_text()}")
    if prob < MIN_LANGUAGE_PROBABILITY:
        return DetectedLanguage(code, prob, "not confident")
    return DetectedLanguage(code, prob)


def load_track(
    path: Path, progress: ProgressFn | None = None, cancel: CancelToken | None = None, detect_language: bool = True
) -> TrackData:
    """Decode a dub track with the engine, with its waveform peaks, speech segments (VAD) and, when
    ``detect_language``, its spoken language (Whisper)."""
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
    language = None
    if detect_language:
        check_cancel(cancel)
        if progress:
            progress(Progress("language", 0, 1, message="Detecting the language"))
        language = detect_track_language(loaded.audio16k, segments)
        if progress:
            progress(Progress("language", 1, 1, message="Detecting the language"))
    return TrackData(Path(path), loaded.duration_s, peaks, segments, note, language)
