"""The insightface backend: SCRFD detector, 68-point 3-d landmarks and ArcFace identity from a model pack
on disk (e.g. ``~/.insightface/models/buffalo_l``). Nothing is ever downloaded.

:func:`check_insightface_pack` says, before anything is loaded, whether a folder holds what the engine
needs, and if not exactly what is missing and which files the folder does hold (for the app to show).
Roles are recognised from each ONNX file's input/output shapes, the way insightface itself routes them:
a detector (5+ outputs), the 68-point 3-d landmarker (192x192 in, 3309 out, ``1k3d68.onnx`` in
buffalo_l), and a recognition model (square >= 112 input, ``w600k_r50.onnx``). The 106-point 2-d
landmarker is not used: the 68-point layout (iBUG) maps onto the mouth, jaw, eyes and nose the engine
needs with known correspondences.

The 68 points are placed into the 468-point layout (:mod:`engine.faces.landmarks`) at their
corresponding indices and the other 400 are placed by a thin-plate-spline warp of a mean face
(:func:`map_68_to_468`), so landmarks are complete (468, 2) arrays whichever backend made them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import BadInputError
from engine.faces import landmarks as L
from engine.faces.types import Detection, MeshResult, iou, landmark_box

#: the roles the engine needs, with the buffalo_l file that fills each
REQUIRED_ROLES = {
    "detection": "a face detector (det_10g.onnx in buffalo_l)",
    "landmark_3d_68": "the 68-point 3-d landmarker (1k3d68.onnx in buffalo_l)",
    "recognition": "a face recognition model (w600k_r50.onnx in buffalo_l)",
}

# iBUG 68-point index -> 468-mesh index (person's right = image left for a frontal face)
_MAP_68 = {
    0: 234, 2: 132, 4: 172, 6: 150, 8: 152, 10: 379, 12: 397, 14: 361, 16: 454,  # jaw (every other point)
    17: 70, 18: 63, 19: 105, 20: 66, 21: 107, 22: 336, 23: 296, 24: 334, 25: 293, 26: 300,  # brows
    27: 168, 28: 197, 29: 5, 30: 1, 31: 98, 33: 2, 35: 327,  # nose
    36: 33, 37: 160, 38: 158, 39: 133, 40: 153, 41: 144,  # right eye
    42: 362, 43: 385, 44: 387, 45: 263, 46: 373, 47: 380,  # left eye
    48: 61, 49: 40, 50: 37, 51: 0, 52: 267, 53: 270, 54: 291, 55: 321, 56: 314, 57: 17, 58: 84, 59: 91,
    60: 78, 61: 81, 62: 13, 63: 311, 64: 308, 65: 402, 66: 14, 67: 178,  # inner lips
}
# odd jaw points fall between mesh JAW entries: put them at the mesh points halfway along
_MAP_68.update({1: 93, 3: 58, 5: 136, 7: 176, 9: 400, 11: 365, 13: 288, 15: 323})


def _tps_kernel(r: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r > 0, r * r * np.log(np.where(r > 0, r, 1.0)), 0.0)


@lru_cache(maxsize=1)
def _tps_fill_operator() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear map from the 68 mapped points to every other point of the reference face (thin plate spline).

    Returns (mapped mesh indices, other mesh indices, (n_other, 68) weights): ``other = W @ mapped``.
    The spline is fitted on the reference face, so it only depends on the layout and is computed once.
    """
    from engine.faces._reference_face import REFERENCE_468

    mapped = np.array(sorted(set(_MAP_68.values())))
    other = np.array([i for i in range(L.NUM_POINTS) if i not in set(mapped.tolist())])
    p = REFERENCE_468[mapped].astype(np.float64)
    q = REFERENCE_468[other].astype(np.float64)
    n = len(p)
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = _tps_kernel(np.linalg.norm(p[:, None] - p[None], axis=-1)) + 1e-4 * np.eye(n)
    system[:n, n] = system[n, :n] = 1.0
    system[:n, n + 1:] = p
    system[n + 1:, :n] = p.T
    inv = np.linalg.inv(system)[:, :n]  # (n+3, n): coefficients from the values at the mapped points
    basis = np.concatenate([_tps_kernel(np.linalg.norm(q[:, None] - p[None], axis=-1)),
                            np.ones((len(q), 1)), q], axis=1)
    return mapped, other, basis @ inv


def map_68_to_468(pts68: np.ndarray) -> np.ndarray:
    """(68, 2|3) iBUG landmarks -> (468, 3) mesh layout.

    The 68 points land on their corresponding mesh indices; every other index is placed by a thin-plate
    spline that warps a mean frontal face (:mod:`engine.faces._reference_face`) onto them, so the array
    is complete (no NaN) and every named set is usable. Points far from the 68 (forehead top, ears) are
    approximations; the mouth, jaw, eyes and nose are the 68 points themselves or close to them.
    """
    p = np.asarray(pts68, np.float64)
    src = np.zeros((68, 3))
    src[:, : min(3, p.shape[1])] = p[:, :3]
    out = np.empty((L.NUM_POINTS, 3), np.float64)
    for k, m in _MAP_68.items():
        out[m] = src[k]
    mapped, other, weights = _tps_fill_operator()
    out[other] = weights @ out[mapped]
    return out.astype(np.float32)


@dataclass
class PackReport:
    """What a model-pack folder holds and whether the engine can use it."""

    folder: Path
    exists: bool
    files: list[str] = field(default_factory=list)  #: every file in the folder
    roles: dict[str, str] = field(default_factory=dict)  #: role -> file name (first file of each role)
    unreadable: dict[str, str] = field(default_factory=dict)  #: .onnx file -> why it could not be read

    @property
    def missing(self) -> list[str]:
        return [r for r in REQUIRED_ROLES if r not in self.roles]

    @property
    def ok(self) -> bool:
        return self.exists and not self.missing

    def message(self) -> str:
        if not self.exists:
            return (f"insightface model folder {self.folder} does not exist; put a model pack such as "
                    f"buffalo_l there (the builtin face backend works without it)")
        holds = ", ".join(self.files) if self.files else "nothing"
        if self.ok:
            return f"insightface model pack {self.folder}: " + ", ".join(f"{r}={f}" for r, f in self.roles.items())
        need = "; ".join(REQUIRED_ROLES[r] for r in self.missing)
        text = f"insightface model folder {self.folder} is incomplete: missing {need}. The folder holds: {holds}"
        if self.unreadable:
            text += ". Unreadable: " + ", ".join(f"{f} ({why})" for f, why in self.unreadable.items())
        return text


class InsightFacePackError(BadInputError):
    """The insightface model pack is missing or incomplete; ``report`` says what it holds."""

    def __init__(self, report: PackReport) -> None:
        self.report = report
        super().__init__(report.message(), hint="use the builtin backend, or pass --insightface-dir")


def onnx_role(path: str | os.PathLike[str]) -> str | None:
    """The insightface role of an ONNX model from its input/output shapes (None: not a face model)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    g = model.graph
    init = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in init]
    if not inputs:
        return None

    def dims(value: Any) -> list[int | str]:
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in value.type.tensor_type.shape.dim]

    shape = dims(inputs[0])
    if len(g.output) >= 5:
        return "detection"
    if len(shape) != 4:
        return None
    h, w = shape[2], shape[3]
    if h == 192 and w == 192:
        out = dims(g.output[0])
        n = out[1] if len(out) > 1 and isinstance(out[1], int) else 0
        return "landmark_3d_68" if n == 3309 else f"landmark_2d_{n // 2}"
    if h == 96 and w == 96:
        return "genderage"
    if len(inputs) == 2 and h == 128:
        return "inswapper"
    if isinstance(h, int) and h == w and h >= 112 and h % 16 == 0:
        return "recognition"
    return None


def check_insightface_pack(folder: str | os.PathLike[str]) -> PackReport:
    """Look at a model-pack folder without loading any model into an inference session."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        return PackReport(path, False)
    files = sorted(p.name for p in path.iterdir() if p.is_file())
    report = PackReport(path, True, files)
    for name in files:
        if not name.lower().endswith(".onnx"):
            continue
        try:
            role = onnx_role(path / name)
        except Exception as exc:  # a damaged or non-ONNX file: report it, keep looking
            report.unreadable[name] = type(exc).__name__
            continue
        if role is not None and role not in report.roles:
            report.roles[role] = name
    return report


class InsightFaceBackend:
    """Detector + 68-point landmarks + ArcFace from an insightface pack, behind the backend interface."""

    name = "insightface"
    #: ArcFace embeddings are L2-normalised here; 1.1 apart is a cosine similarity of about 0.4
    same_person_distance = 1.1

    def __init__(self, folder: str | os.PathLike[str], threads: int = 1, det_size: int = 640) -> None:
        report = check_insightface_pack(folder)
        if not report.ok:
            raise InsightFacePackError(report)
        self.report = report
        import onnxruntime
        from insightface.model_zoo import model_zoo

        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        kw: dict[str, Any] = {"providers": ["CPUExecutionProvider"], "sess_options": opts}
        files = {role: str(report.folder / report.roles[role]) for role in REQUIRED_ROLES}
        self.det = model_zoo.get_model(files["detection"], **kw)
        self.lmk = model_zoo.get_model(files["landmark_3d_68"], **kw)
        self.rec = model_zoo.get_model(files["recognition"], **kw)
        self.det.prepare(-1, input_size=(det_size, det_size), det_thresh=0.5)
        self.lmk.prepare(-1)
        self.rec.prepare(-1)
        h = hashlib.sha256()
        for role in REQUIRED_ROLES:
            p = report.folder / report.roles[role]
            h.update(f"{p.name}:{p.stat().st_size}".encode())
        self.version = "1-" + h.hexdigest()[:10]

    @staticmethod
    def _bgr(rgb: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(rgb[..., ::-1])

    def _detect_bgr(self, bgr: np.ndarray, offset: tuple[float, float] = (0.0, 0.0)) -> list[Detection]:
        boxes, kpss = self.det.detect(bgr)
        out = []
        for k in range(len(boxes)):
            box = boxes[k, :4].astype(np.float32) + np.array([offset[0], offset[1]] * 2, np.float32)
            kps = (kpss[k].astype(np.float32) + np.array(offset, np.float32)) if kpss is not None \
                else np.full((5, 2), np.nan, np.float32)
            out.append(Detection(box, kps, float(boxes[k, 4])))
        return out

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return self._detect_bgr(self._bgr(rgb))

    def detect_small(self, rgb: np.ndarray) -> list[Detection]:
        return []  # SCRFD at 640 px already finds faces down to ~10 px

    def landmarks_from_detection(self, rgb: np.ndarray, det: Detection) -> MeshResult:
        from insightface.app.common import Face

        face = Face(bbox=det.box.astype(np.float32), kps=det.keypoints, det_score=det.score)
        pred = np.asarray(self.lmk.get(self._bgr(rgb), face), np.float32)
        points = map_68_to_468(pred[:, :2])
        # 1k3d68's depth sign and scale are not verified here (no pack on the build machines): leave
        # depth unknown so head pose comes from the 2-d geometry (engine.faces.pose.pose_from_2d)
        points[:, 2] = np.nan
        return MeshResult(points, det.score)

    def follow(self, rgb: np.ndarray, previous: np.ndarray) -> MeshResult:
        """Re-detect inside a window around the previous face (the landmarker has no presence score)."""
        prev = landmark_box(previous)
        h, w = rgb.shape[:2]
        if not np.isfinite(prev).all():
            return MeshResult(np.full((L.NUM_POINTS, 3), np.nan, np.float32), 0.0)
        size = max(prev[2] - prev[0], prev[3] - prev[1])
        cx, cy = (prev[0] + prev[2]) / 2, (prev[1] + prev[3]) / 2
        x0, y0 = int(max(0, cx - size)), int(max(0, cy - size))
        x1, y1 = int(min(w, cx + size)), int(min(h, cy + size))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return MeshResult(np.full((L.NUM_POINTS, 3), np.nan, np.float32), 0.0)
        dets = self._detect_bgr(self._bgr(rgb[y0:y1, x0:x1]), (x0, y0))
        best = max(dets, key=lambda d: iou(d.box, prev), default=None)
        if best is None or iou(best.box, prev) < 0.2:
            return MeshResult(np.full((L.NUM_POINTS, 3), np.nan, np.float32), 0.0)
        return self.landmarks_from_detection(rgb, best)

    def embed(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray | None:
        from insightface.app.common import Face

        p = np.asarray(points, np.float32)[:, :2]
        right, left = L.eye_centres(p)
        kps = np.stack([right, left, p[L.NOSE_TIP], p[L.MOUTH_CORNERS[0]], p[L.MOUTH_CORNERS[1]]])
        if not np.isfinite(kps).all():
            return None
        face = Face(bbox=landmark_box(p), kps=kps)
        emb = np.asarray(self.rec.get(self._bgr(rgb), face), np.float32).ravel()
        n = float(np.linalg.norm(emb))
        return emb / n if n > 0 else None
