"""Faces: find, landmark, track and identify every person through a whole video.

Public API::

    from engine.faces import analyse, FaceAnalysis, Identity, FaceObservation
    result = analyse(path, backend=None | "builtin" | "insightface", progress=..., cancel=...)
    result.identities        # list[Identity]: id, thumbnail, frames, time_ranges, per-frame arrays
    result.faces_at(i)       # list[FaceObservation] in frame i
    result.message           # e.g. "no faces found in this video"

Landmarks are (468, 2) float32 image pixels in the face-mesh numbering whatever the backend; named index
sets (mouth, jaw, eyes, nose) and :func:`mouth_opening` are in :mod:`engine.faces.landmarks`.
Backends: :mod:`engine.faces.builtin` (BlazeFace + face mesh + dlib, always available) and
:mod:`engine.faces.insight` (insightface model pack on disk; :func:`check_insightface_pack` says what is
missing). Quality flags per face and frame: ``FLAG_TOO_SMALL``, ``FLAG_PROFILE``,
``FLAG_LOW_CONFIDENCE``, ``FLAG_EDGE``.
"""

from engine.faces.analysis import (
    ANALYSIS_VERSION,
    FLAG_EDGE,
    FLAG_LOW_CONFIDENCE,
    FLAG_PROFILE,
    FLAG_TOO_SMALL,
    AnalysisSettings,
    FaceAnalysis,
    FaceObservation,
    FaceTrackingSession,
    Identity,
    analyse,
    cache_path_for,
)
from engine.faces.backend import BACKENDS, FaceBackend, default_insightface_dir, get_backend
from engine.faces.insight import InsightFacePackError, PackReport, check_insightface_pack
from engine.faces.landmarks import mouth_opening

__all__ = [
    "ANALYSIS_VERSION",
    "BACKENDS",
    "FLAG_EDGE",
    "FLAG_LOW_CONFIDENCE",
    "FLAG_PROFILE",
    "FLAG_TOO_SMALL",
    "AnalysisSettings",
    "FaceAnalysis",
    "FaceBackend",
    "FaceObservation",
    "FaceTrackingSession",
    "Identity",
    "InsightFacePackError",
    "PackReport",
    "analyse",
    "cache_path_for",
    "check_insightface_pack",
    "default_insightface_dir",
    "get_backend",
    "mouth_opening",
]
