"""Identity embeddings for the builtin backend: dlib's 128-d ResNet face descriptor.

The model files ship in the ``face_recognition_models`` package, which is located with
:func:`importlib.util.find_spec` and never imported (its ``__init__`` needs ``pkg_resources``, gone from
setuptools >= 81). Two descriptors of one person are usually under 0.5 apart (Euclidean), of two people
over 0.6.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import LipdubError
from engine.faces.builtin import package_data_dir
from engine.faces.types import landmark_box

RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_FILE = "shape_predictor_5_face_landmarks.dat"


def dlib_model_path(name: str) -> Path:
    path = package_data_dir("face_recognition_models", "models") / name
    if not path.is_file():
        raise LipdubError(f"dlib model file {name} is missing from the face_recognition_models package", path,
                          "reinstall face_recognition_models")
    return path


class DlibEmbedder:
    """128-d descriptor of the face around given landmarks (any backend's (N, 2+) pixel landmarks)."""

    def __init__(self) -> None:
        import dlib

        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(dlib_model_path(SHAPE_FILE)))
        self._net = dlib.face_recognition_model_v1(str(dlib_model_path(RECOGNITION_FILE)))

    def embed(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray | None:
        box = landmark_box(points)
        if not np.isfinite(box).all():
            return None
        h, w = rgb.shape[:2]
        bw, bh = box[2] - box[0], box[3] - box[1]
        if min(bw, bh) < 8:
            return None
        # crop with a margin so the descriptor's own alignment has context, then work in crop pixels
        m = 0.6 * max(bw, bh)
        x0, y0 = max(0, int(box[0] - m)), max(0, int(box[1] - m))
        x1, y1 = min(w, int(box[2] + m)), min(h, int(box[3] + m))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        # dlib's detector box is tighter than the mesh box at the top (forehead): trim it
        top = box[1] + 0.2 * bh
        rect = self._dlib.rectangle(int(box[0] - x0), int(top - y0), int(box[2] - x0), int(box[3] - y0))
        shape: Any = self._shape(crop, rect)
        desc = self._net.compute_face_descriptor(crop, shape)
        return np.asarray(desc, dtype=np.float32)
