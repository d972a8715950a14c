"""Face analysis for the app: runs the engine's ``analyse`` in a worker and turns its identities into
what the timeline shows (thumbnail, on-screen ranges) and the preview needs (a mouth box per frame)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtGui import QImage

from app.session import PersonView
from engine.runtime.jobs import CancelToken, ProgressFn


def identity_key(identity_id: int) -> str:
    """The project's FaceIdentity.id for an analysis identity (the analysis' own id as text)."""
    return str(identity_id)


@dataclass
class AnalysisResult:
    analysis: Any  # engine.faces.FaceAnalysis
    thumbnails: dict[str, QImage] = field(default_factory=dict)
    ranges: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)

    def mouth_box(self, frame_index: int) -> tuple[float, float, float, float] | None:
        """The outer-lip box (x, y, w, h) of the largest face in the frame, or None."""
        from engine.faces.landmarks import MOUTH_OUTER

        faces = self.analysis.faces_at(frame_index)
        if not faces:
            return None
        face = max(faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
        pts = np.asarray(face.landmarks)[list(MOUTH_OUTER)]
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


def _qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb[..., :3])
    h, w, _ = rgb.shape
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def run_analysis(path: Path, settings: Any, progress: ProgressFn | None = None, cancel: CancelToken | None = None,
                 in_subprocess: bool = True) -> AnalysisResult:
    """The engine's face analysis of ``path``, by default in a child process (it holds the GIL for long
    stretches inside C extensions, which would stall the GUI thread)."""
    from app import faces_child

    backend = "insightface" if getattr(settings, "face_backend", "builtin") == "insightface" else "builtin"
    folder = (getattr(settings, "insightface_folder", "") or None) if backend == "insightface" else None
    kwargs: dict[str, Any] = {"video": str(path), "backend": backend, "insightface_dir": folder}
    if in_subprocess:
        from app.subprocess_job import run_in_subprocess

        answer = run_in_subprocess("app.faces_child:analyse_to_cache", kwargs, progress, cancel, "The face analysis")
    else:
        answer = faces_child.analyse_to_cache(progress=progress, cancel=cancel, **kwargs)
    analysis = faces_child.load(answer, str(path))
    result = AnalysisResult(analysis)
    for ident in analysis.identities:
        key = identity_key(ident.id)
        if ident.thumbnail is not None and np.size(ident.thumbnail):
            result.thumbnails[key] = _qimage(np.asarray(ident.thumbnail))
        result.ranges[key] = [(float(s), float(e)) for s, e in ident.time_ranges]
        result.frames[key] = len(ident.frames)
    return result


def people_views(result: AnalysisResult) -> dict[str, PersonView]:
    return {
        key: PersonView(result.thumbnails.get(key), result.ranges.get(key, []), result.frames.get(key, 0))
        for key in result.ranges
    }
