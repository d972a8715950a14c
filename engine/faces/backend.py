"""The face-backend interface and backend selection.

A backend finds faces (:meth:`FaceBackend.detect`), puts 468-layout landmarks on them (from a detection,
or following the face from its previous landmarks), and computes identity embeddings. The analysis
(:mod:`engine.faces.analysis`) only talks to this interface. A backend instance holds inference
sessions and is not thread-safe: use one per thread.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.errors import BadInputError
from engine.faces.types import Detection, MeshResult

BACKENDS = ("builtin", "insightface")


class FaceBackend(Protocol):
    name: str
    version: str
    #: embeddings closer than this (Euclidean) are taken as one person
    same_person_distance: float

    def detect(self, rgb: np.ndarray) -> list[Detection]: ...

    def detect_small(self, rgb: np.ndarray) -> list[Detection]:
        """Extra pass for faces too small for :meth:`detect` (may be slower; [] when not needed)."""
        ...

    def landmarks_from_detection(self, rgb: np.ndarray, det: Detection) -> MeshResult: ...

    def follow(self, rgb: np.ndarray, previous: np.ndarray) -> MeshResult: ...

    def embed(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray | None: ...


def default_insightface_dir() -> Path:
    """``LIPDUB_INSIGHTFACE_DIR`` if set, else ``~/.insightface/models/buffalo_l``."""
    env = os.environ.get("LIPDUB_INSIGHTFACE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".insightface" / "models" / "buffalo_l"


def get_backend(name: str | None = None, insightface_dir: str | os.PathLike[str] | None = None,
                threads: int = 1) -> FaceBackend:
    """A backend by name (``builtin`` when None). ``insightface`` raises BadInputError (with the
    folder's contents) when its model pack is missing or incomplete."""
    name = name or "builtin"
    if name == "builtin":
        from engine.faces.builtin import BuiltinBackend

        return BuiltinBackend(threads=threads)
    if name == "insightface":
        from engine.faces.insight import InsightFaceBackend

        return InsightFaceBackend(insightface_dir or default_insightface_dir(), threads=threads)
    raise BadInputError(f"unknown face backend {name!r}", hint=f"choose one of {', '.join(BACKENDS)}")
