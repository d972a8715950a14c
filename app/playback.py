"""Audio for playback: the dub mix of the project, rendered to a WAV file in the background and played
with QtMultimedia while the preview plays at normal speed. Its position is the playback clock.

The mix is the engine's export mix (``engine.audio.mix.mix_output``, "dub only"): what is heard is
what the export will contain.
"""

from __future__ import annotations

import logging
import wave
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QUrl

from app.document import Document
from app.workers import WorkerPool
from engine.runtime.jobs import check_cancel
from engine.runtime.paths import cache_dir

log = logging.getLogger(__name__)

MIX_RATE = 48000  # the engine's output mix rate


def mix_tracks(project: Any, duration_s: float, progress: Any = None, cancel: Any = None) -> Any:
    """(n, 2) float32 dub mix of the project's tracks on the video timeline, from the engine's mixer
    (an array, or for a long video the mixer's temporary file, read in blocks)."""
    from engine.audio.mix import DubInput, mix_output
    from engine.audio.tracks import load_track

    dubs = []
    for track in project.tracks:
        check_cancel(cancel)
        dubs.append(DubInput(load_track(track.path, cancel=cancel), track, track.display_name))
    result = mix_output(dubs, duration_s, progress=progress, cancel=cancel)
    return result.tracks[0].samples


def write_wav(path: Path, samples: Any, rate: int = MIX_RATE, block: int = 30 * MIX_RATE) -> None:
    """16-bit WAV of float (n, channels) samples, written a block at a time (a long mix is never
    held whole), under a temporary name renamed when complete."""
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        for b0 in range(0, len(samples), block):
            chunk = np.asarray(samples[b0 : b0 + block], np.float32)
            w.writeframes((np.clip(chunk, -1, 1) * 32767).astype("<i2").tobytes())
    tmp.replace(path)


class AudioPlayer(QObject):
    """Plays the dub mix from a position; ``active`` when it is actually sounding."""

    def __init__(self, doc: Document, pool: WorkerPool, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.pool = pool
        self._player: Any = None
        self._output: Any = None
        self._mix_revision = -1
        self._mix_path: Path | None = None
        self._pending_start: float | None = None
        self._job: Any = None
        self.note = ""

    def _ensure_player(self) -> bool:
        if self._player is not None:
            return True
        try:
            from PySide6.QtMultimedia import QAudioOutput, QMediaDevices, QMediaPlayer
        except ImportError:
            self.note = "QtMultimedia is not installed: playing without sound"
            return False
        if not QMediaDevices.audioOutputs():
            self.note = "No audio output device: playing without sound"
            return False
        self._output = QAudioOutput(self)
        self._player = QMediaPlayer(self)
        self._player.setAudioOutput(self._output)
        return True

    @property
    def active(self) -> bool:
        if self._player is None:
            return False
        from PySide6.QtMultimedia import QMediaPlayer

        return self._player.playbackState() == QMediaPlayer.PlaybackState.PlayingState

    def position(self) -> float | None:
        return self._player.position() / 1000.0 if self.active else None

    def start(self, t: float, speed: float) -> None:
        if speed != 1.0 or not self.doc.project.tracks or self.doc.project.video is None:
            self.stop()
            return
        if not self._ensure_player():
            return
        revision = self.doc.stack.revision
        if self._mix_path is not None and revision == self._mix_revision:
            self._play_from(t)
            return
        self._pending_start = t
        if self._job is not None:
            self._job.cancel()
        project = self.doc.stack.snapshot()
        probe = (project.video.probe if project.video is not None else None) or {}
        duration = float(probe.get("duration_s", 0.0)) or 1.0
        target = cache_dir("preview") / f"mix-{revision}.wav"

        def job(progress: Any, cancel: Any) -> Path:
            write_wav(target, mix_tracks(project, duration, progress, cancel))
            return target

        def done(path: Path, revision: int = revision) -> None:
            old, self._mix_path, self._mix_revision = self._mix_path, path, revision
            if old is not None and old != path:
                old.unlink(missing_ok=True)
            if self._pending_start is not None:
                self._play_from(self._pending_start)

        self._job = self.pool.start(job, "audio-mix", on_result=done, on_error=lambda e: log.warning("mix failed: %s", e))

    def _play_from(self, t: float) -> None:
        self._pending_start = None
        if self._mix_path is None or self._player is None:
            return
        if self._player.source() != QUrl.fromLocalFile(str(self._mix_path)):
            self._player.setSource(QUrl.fromLocalFile(str(self._mix_path)))
        self._player.setPosition(int(t * 1000))
        self._player.play()

    def stop(self) -> None:
        self._pending_start = None
        if self._player is not None:
            self._player.pause()

    def close(self) -> None:
        self.stop()
        if self._job is not None:
            self._job.cancel()
        if self._player is not None:
            self._player.stop()
            self._player.setSource(QUrl())
        if self._mix_path is not None:
            self._mix_path.unlink(missing_ok=True)
