"""Drawing face analysis results onto frames, for looking at them (CLI ``--overlay``, debugging)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from engine.faces.analysis import (
    FLAG_EDGE,
    FLAG_LOW_CONFIDENCE,
    FLAG_PROFILE,
    FLAG_TOO_SMALL,
    FaceAnalysis,
    FaceObservation,
)
from engine.faces.landmarks import JAW, MOUTH_INNER, MOUTH_OUTER, NOSE_BASE
from engine.runtime.jobs import CancelToken, ProgressFn, ProgressReporter, check_cancel

_COLOURS = [(0, 220, 90), (255, 170, 0), (60, 140, 255), (255, 60, 160), (200, 220, 0), (0, 210, 230)]
_FLAG_NAMES = ((FLAG_TOO_SMALL, "small"), (FLAG_PROFILE, "profile"), (FLAG_LOW_CONFIDENCE, "low-conf"),
               (FLAG_EDGE, "edge"))


def colour_for(identity: int) -> tuple[int, int, int]:
    return _COLOURS[identity % len(_COLOURS)]


def _poly(img: np.ndarray, pts: np.ndarray, closed: bool, colour: tuple[int, int, int], scale: int) -> None:
    p = pts[np.isfinite(pts).all(axis=1)]
    if len(p) >= 2:
        cv2.polylines(img, [np.round(p * scale).astype(np.int32)], closed, colour, 1, cv2.LINE_AA, shift=0)


def draw_faces(rgb: np.ndarray, faces: list[FaceObservation]) -> np.ndarray:
    """A copy of ``rgb`` with each face's box, identity, pose, flags, mouth contours and jaw line."""
    img = rgb.copy()
    thick = max(1, round(min(img.shape[:2]) / 400))
    for f in faces:
        col = colour_for(f.identity)
        b = np.round(f.box).astype(int)
        cv2.rectangle(img, (b[0], b[1]), (b[2], b[3]), col, thick)
        lm = f.landmarks
        _poly(img, lm[list(MOUTH_OUTER)], True, (255, 0, 255), 1)
        _poly(img, lm[list(MOUTH_INNER)], True, (0, 255, 255), 1)
        _poly(img, lm[list(JAW)], False, col, 1)
        if np.isfinite(lm[NOSE_BASE]).all():
            cv2.circle(img, tuple(int(v) for v in np.round(lm[NOSE_BASE])), thick + 1, (255, 255, 255), -1)
        flags = ",".join(n for bit, n in _FLAG_NAMES if f.flags & bit)
        label = f"#{f.identity} y{f.pose[0]:+.0f} p{f.pose[1]:+.0f} r{f.pose[2]:+.0f} {f.confidence:.2f} {flags}"
        scale = max(0.35, min(img.shape[:2]) / 1400)
        cv2.putText(img, label, (b[0], max(12, b[1] - 5)), cv2.FONT_HERSHEY_SIMPLEX, scale, col, thick, cv2.LINE_AA)
    return img


def write_overlay(video_path: str | os.PathLike[str], analysis: FaceAnalysis, out_path: str | os.PathLike[str],
                  *, stills: dict[int, Path] | None = None, progress: ProgressFn | None = None,
                  cancel: CancelToken | None = None) -> Path:
    """Re-encode the video with the analysis drawn on every frame (written atomically).

    ``stills``: frame index -> PNG path, to also save chosen frames as images.
    """
    from engine.media import VideoReader, VideoWriter

    stills = stills or {}
    with VideoReader(video_path) as reader:
        times = reader.frame_times
        report = ProgressReporter(progress, "overlay", max(1, len(reader)))
        with VideoWriter(out_path, reader.info.width, reader.info.height, fps=reader.fps or 25, crf=23) as writer:
            last_t = -1.0
            for index, rgb in reader.iter_frames():
                check_cancel(cancel)
                img = draw_faces(rgb, analysis.faces_at(index))
                t = float(times[index]) if index < len(times) else last_t + 1 / (reader.fps or 25)
                if t > last_t:
                    writer.write(img, t)
                    last_t = t
                if index in stills:
                    cv2.imwrite(str(stills[index]), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
                report.update(index + 1)
    report.finish()
    return Path(out_path)
