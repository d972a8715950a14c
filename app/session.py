"""What the app knows about the open project's media beyond the document itself: the video's
duration and frame rate, thumbnails, the face analysis, each track's waveform and speech segments.

Everything here is produced by workers from engine calls and only read by the views; nothing is
saved in the project (the engine caches the expensive parts on disk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage


@dataclass
class VideoInfo:
    duration_s: float
    fps: float
    width: int
    height: int
    frame_count: int
    probe: Any = None  # the engine's probe result, when it landed

    def frame_time(self, index: int) -> float:
        return index / self.fps if self.fps > 0 else 0.0

    def frame_at(self, t: float) -> int:
        if self.fps <= 0 or self.frame_count <= 0:
            return 0
        return max(0, min(self.frame_count - 1, int(t * self.fps + 1e-6)))


@dataclass
class PersonView:
    thumbnail: QImage | None = None
    ranges: list[tuple[float, float]] = field(default_factory=list)
    frames: int = 0


@dataclass
class TrackView:
    duration_s: float | None = None
    peaks: Any = None  # engine.audio.peaks.WaveformPeaks, None while loading
    segments: list[tuple[float, float]] = field(default_factory=list)  # speech, in file time
    status: str = "Loading…"
    error: str = ""
    language: Any = None  # app.media_jobs.DetectedLanguage once the background load detected it
    language_placeholder: str | None = None  # the file-name guess the track was added with, if any
    language_user_set: bool = False  # the user typed a language: detection never overrides it


class Session(QObject):
    """Media-derived state of the open project. ``updated`` fires whenever something arrives."""

    updated = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.reset()

    def reset(self) -> None:
        self.video: VideoInfo | None = None
        self.video_status = ""
        self.thumbnails: list[tuple[float, QImage]] = []
        self.analysis: Any = None  # engine.faces FaceAnalysis once it ran
        self.analysis_progress: float | None = None  # 0..1 while running
        self.analysis_status = ""
        self.people: dict[str, PersonView] = {}
        self.tracks: dict[str, TrackView] = {}

    def notify(self) -> None:
        self.updated.emit()

    @property
    def duration_s(self) -> float:
        return self.video.duration_s if self.video else 0.0
