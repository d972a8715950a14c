"""The project document: what a user edits and saves. Plain dataclasses, no behaviour beyond lookups.

Times are seconds on the **video timeline** (0 = the first frame of the video). Paths in memory are
absolute; :mod:`engine.project.store` writes them relative to the project file where it can.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

SCHEMA_VERSION = 1
"""The project file format this code writes and the newest one it reads."""

RENDER_ENGINES = ("retrieval", "net")
AUDIO_MODES = ("dub_only", "dub_plus_original", "original_ducked")
LANGUAGE_MODES = ("file_per_language", "one_file_multi_track")
DEVICES = ("auto", "cuda", "cpu")
VIDEO_CODECS = ("libx264", "libx265")
PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)

RenderEngine = Literal["retrieval", "net"]
AudioMode = Literal["dub_only", "dub_plus_original", "original_ducked"]
LanguageMode = Literal["file_per_language", "one_file_multi_track"]
Device = Literal["auto", "cuda", "cpu"]

# BCP 47-ish: a 2-3 letter primary language ("de", "deu", "und") and optional subtags ("pt-BR",
# "zh-Hant"). Stricter validation would reject tags users legitimately type; the export maps the
# primary subtag to the ISO 639-2 code that MP4 language fields want.
_LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


def new_id(prefix: str) -> str:
    """A short unique id such as ``track-3f9c2a1b``; ids only need to be unique inside one project."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def is_language_tag(tag: str) -> bool:
    return bool(_LANGUAGE_RE.match(tag))


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class Video:
    """The source video. ``probe`` is a JSON-able summary (size, fps, duration...) for display only:
    the engine probes the file again before using it."""

    path: Path
    content_hash: str | None = None
    probe: dict[str, Any] | None = None


@dataclass
class DubTrack:
    """A dubbed audio file placed on the video timeline.

    The file's sample at time ``trim_in_s`` plays at video time ``offset_s`` (negative: the dub starts
    before the video); playback of the file stops at ``trim_out_s`` (None: at its end).
    """

    id: str
    path: Path
    language: str = "und"
    offset_s: float = 0.0
    gain_db: float = 0.0
    trim_in_s: float = 0.0
    trim_out_s: float | None = None
    name: str = ""

    @property
    def display_name(self) -> str:
        return self.name or self.path.name


@dataclass
class FaceIdentity:
    """A person found in the video (a cluster of face tracks); ``id`` is the analysis' identity id."""

    id: str
    name: str = ""


@dataclass
class Assignment:
    """Dub track ``track_id`` drives the mouth of identity ``identity_id`` over [start_s, end_s) of the
    video timeline."""

    id: str
    track_id: str
    identity_id: str
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class RenderSettings:
    engine: RenderEngine = "retrieval"
    codec: str = "libx264"
    preset: str = "veryfast"
    crf: int = 18
    audio_mode: AudioMode = "dub_only"
    duck_db: float = -15.0
    """How far the original audio is lowered in ``original_ducked`` mode while a dub plays."""
    audio_bitrate_kbps: int = 192
    language_mode: LanguageMode = "file_per_language"
    device: Device = "auto"


@dataclass
class Project:
    schema_version: int = SCHEMA_VERSION
    video: Video | None = None
    tracks: list[DubTrack] = field(default_factory=list)
    identities: list[FaceIdentity] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    render: RenderSettings = field(default_factory=RenderSettings)
    ui: dict[str, Any] = field(default_factory=dict)
    """Free-form, JSON-able view state of the app (zoom, playhead, panel sizes). The engine ignores it."""

    # --- lookups -------------------------------------------------------------------------------
    def track(self, track_id: str) -> DubTrack:
        for track in self.tracks:
            if track.id == track_id:
                return track
        raise KeyError(f"no dub track with id {track_id!r}")

    def identity(self, identity_id: str) -> FaceIdentity:
        for ident in self.identities:
            if ident.id == identity_id:
                return ident
        raise KeyError(f"no face identity with id {identity_id!r}")

    def assignment(self, assignment_id: str) -> Assignment:
        for a in self.assignments:
            if a.id == assignment_id:
                return a
        raise KeyError(f"no assignment with id {assignment_id!r}")

    def languages(self) -> list[str]:
        """The languages of the dub tracks, in first-appearance order."""
        seen: list[str] = []
        for track in self.tracks:
            if track.language not in seen:
                seen.append(track.language)
        return seen

    def export_languages(self) -> list[str]:
        """The languages an export writes: those of tracks assigned to someone, else of all tracks."""
        assigned = {a.track_id for a in self.assignments}
        seen: list[str] = []
        for track in self.tracks:
            if (track.id in assigned or not assigned) and track.language not in seen:
                seen.append(track.language)
        return seen

    def tracks_for_language(self, language: str) -> list[DubTrack]:
        return [t for t in self.tracks if t.language == language]

    def media_paths(self) -> list[Path]:
        """Every media file the project refers to: the video first, then the dub tracks."""
        paths = [self.video.path] if self.video is not None else []
        paths.extend(t.path for t in self.tracks)
        return paths
