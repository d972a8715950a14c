"""Per-speaker mouth shape codes: PCA of the mouth + jaw landmarks in the canonical face frame.

A code of 6-10 numbers (opening, width, rounding, jaw drop...) describes a mouth; ``decode`` turns it
back into canonical mouth + jaw points, and ``apply_to_frame`` puts a code into a frame's own geometry
by moving only its mouth and jaw points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d

from engine.lipsync.geometry import (
    JAW,
    LOWER_INNER_LIP,
    SHAPE_INDEX,
    SHAPE_POINTS,
    UPPER_INNER_LIP,
    apply_affine,
    invert_affine,
    mouth_opening,
    to_canonical,
)

# Rows of SHAPE_POINTS that are jaw points, and how much of their sideways change is applied.
JAW_ROWS = np.asarray([i for i, p in enumerate(SHAPE_POINTS) if p in JAW], np.int64)
JAW_SIDEWAYS = 0.3

# Upper-face points that speech does not move; where they sit in the canonical frame describes the
# head's turn and tilt (nose tip, nose base, forehead, temples).
HEAD_POINTS = (1, 4, 2, 10, 151, 127, 356)


def head_descriptor(landmarks: np.ndarray) -> np.ndarray:
    """Per face (N, 468, 2) -> (N, 2 * len(HEAD_POINTS)): canonical positions of the head points."""
    canon, _ = to_canonical(np.asarray(landmarks, dtype=np.float64).reshape(-1, 468, 2))
    return canon[:, HEAD_POINTS, :].reshape(len(canon), -1)


def canonical_shapes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mouth + jaw points of each face (N, 468, 2) in the canonical frame, flattened (N, 2K), and the
    per-face 2x3 image -> canonical transforms."""
    canon, mats = to_canonical(np.asarray(landmarks, dtype=np.float64).reshape(-1, 468, 2))
    return canon[:, SHAPE_INDEX, :].reshape(len(canon), -1), mats


@dataclass
class ShapeModel:
    """PCA basis of one speaker's mouth + jaw shapes; ``rest`` is the code of the closed, resting mouth."""

    mean: np.ndarray  # (2K,)
    components: np.ndarray  # (C, 2K), orthonormal rows
    scale: np.ndarray  # (C,) std of each code over the training frames
    rest: np.ndarray  # (C,)
    rest_opening: float  # mouth opening (QUALITY.md's measure) of the resting mouth
    pose_basis: np.ndarray | None = None  # (P, 2K): the shape change per unit of head descriptor
    pose_mean: np.ndarray | None = None  # (P,)

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def pose_part(self, pose: np.ndarray | None, n: int) -> np.ndarray:
        """The part of the canonical shapes that the head pose explains (N, 2K), zero without pose."""
        if pose is None or self.pose_basis is None or self.pose_mean is None:
            return np.zeros((n, len(self.mean)))
        return (np.asarray(pose, np.float64).reshape(n, -1) - self.pose_mean) @ self.pose_basis

    def encode(self, shapes: np.ndarray, pose: np.ndarray | None = None) -> np.ndarray:
        """(N, 2K) canonical shapes -> (N, C) codes (of the mouth, with the pose's share removed)."""
        s = np.asarray(shapes, np.float64)
        return (s - self.pose_part(pose, len(s)) - self.mean) @ self.components.T

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(N, C) codes -> (N, 2K) canonical shapes."""
        return np.asarray(codes, np.float64) @ self.components + self.mean

    def lip_points(self, codes: np.ndarray) -> np.ndarray:
        """(N, 4): the lower and upper inner-lip centre points (x, y, x, y) of decoded codes, in the
        canonical frame (eyes 1 apart). Only these are decoded (the shapes are linear in the codes):
        a long track's codes are not widened into whole shapes."""
        up, low = SHAPE_POINTS.index(UPPER_INNER_LIP), SHAPE_POINTS.index(LOWER_INNER_LIP)
        cols = [2 * low, 2 * low + 1, 2 * up, 2 * up + 1]
        return np.asarray(codes, np.float64).reshape(-1, self.n_components) @ self.components[:, cols] + self.mean[cols]

    def code_opening(self, codes: np.ndarray) -> np.ndarray:
        """Inner-lip gap of decoded codes, in the canonical frame (eyes 1 apart): the opening measure."""
        pts = self.lip_points(codes)
        return np.hypot(pts[:, 0] - pts[:, 2], pts[:, 1] - pts[:, 3])

    def encode_landmarks(self, landmarks: np.ndarray) -> np.ndarray:
        lm = np.asarray(landmarks, np.float64).reshape(-1, 468, 2)
        return self.encode(canonical_shapes(lm)[0], head_descriptor(lm) if self.pose_basis is not None else None)

    def apply_to_frame(self, landmarks: np.ndarray, code: np.ndarray) -> np.ndarray:
        """The face's 468 landmarks (image px) with its mouth and jaw moved to ``code``.

        Lips: the decoded shape itself, placed by the face's own canonical transform, so nothing of
        the frame's original mouth survives (a dub must not show the original speech, and
        self-reconstruction must not see the answer). Jaw: the decoded chin height, but the frame's own
        sideways jaw position, which is mostly head turn (only a damped share of the decoded change).
        Everything else stays where the frame has it."""
        lm = np.asarray(landmarks, np.float64)
        shape, mats = canonical_shapes(lm[None])
        own_canon = shape[0].reshape(-1, 2)
        own_code = self.encode(shape)[0]
        target = self.decode(np.asarray(code, np.float64)[None])[0].reshape(-1, 2)
        own_decoded = self.decode(own_code[None])[0].reshape(-1, 2)
        # The pose share (when modelled) is the frame's own: add it back.
        if self.pose_basis is not None:
            target = target + self.pose_part(head_descriptor(lm[None]), 1)[0].reshape(-1, 2)
        target[JAW_ROWS, 0] = own_canon[JAW_ROWS, 0] + JAW_SIDEWAYS * (target[JAW_ROWS, 0] - own_decoded[JAW_ROWS, 0])
        out = lm.copy()
        out[SHAPE_INDEX] = apply_affine(invert_affine(mats[0]), target)
        return out


# Lips that touch are the far end of a speaker's opening distribution, not its tenth percentile: on
# latentsync_demo3 the frames at the tenth percentile show the lips parted (a rest rendered from them
# read 0.08-0.11 to an independent landmarker, above the speaker's own resting level of 0.076), while
# the lowest 3% are closed.
CLOSED_QUANTILE = 0.03


FIT_BLOCK = 2048  # faces whose 468 points are handled at once in float64 while fitting


def _per_face(landmarks: Any, with_pose: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Canonical mouth + jaw shapes, openings and (``with_pose``) head descriptors of faces
    (N, 468, 2), a block of faces at a time: ``landmarks`` is an array or anything that has a length
    and gives (b, 468, 2) rows for a slice (engine.pipeline.tracks.LandmarkRows)."""
    shapes, opening, pose = [], [], []
    n = len(landmarks)
    for i in range(0, n, FIT_BLOCK):
        lm = np.asarray(landmarks[i : i + FIT_BLOCK], np.float64).reshape(-1, 468, 2)
        shapes.append(canonical_shapes(lm)[0])
        opening.append(mouth_opening(lm))
        if with_pose:
            pose.append(head_descriptor(lm))
    k2 = 2 * len(SHAPE_POINTS)
    return (np.concatenate(shapes) if shapes else np.zeros((0, k2)),
            np.concatenate(opening) if opening else np.zeros(0),
            (np.concatenate(pose) if pose else np.zeros((0, 2 * len(HEAD_POINTS)))) if with_pose else None)


def fit_shape_model(
    landmarks: Any,
    n_components: int = 8,
    silent: np.ndarray | None = None,
    remove_pose: bool = False,
) -> ShapeModel:
    """PCA over the speaker's faces (N, 468, 2): an array, or rows read a block at a time
    (engine.pipeline.tracks.LandmarkRows). ``silent`` marks frames known not to be speech; the
    resting mouth is the typical closed mouth among them (or among all frames when too few).

    With ``remove_pose``, the shape change that the head's turn and tilt explain linearly (a turned head
    foreshortens one cheek; measured on upper-face points) is taken out first. Off by default: the
    face mesh moves its upper-face points with the mouth (on the clips here they predict the mouth
    opening at r 0.65-0.8), so this would leak the original mouth into every render."""
    shapes, opening, pz = _per_face(landmarks, remove_pose)
    n = len(shapes)
    pose_basis = pose_mean = None
    if pz is not None and n >= 40:
        pose_mean = pz.mean(0)
        pc = pz - pose_mean
        ridge = 0.05 * len(pc) * max(float(np.mean(pc**2)), 1e-9)
        pose_basis = np.linalg.solve(pc.T @ pc + ridge * np.eye(pc.shape[1]), pc.T @ (shapes - shapes.mean(0)))
        shapes = shapes - pc @ pose_basis
    mean = shapes.mean(0)
    centred = shapes - mean
    n_comp = int(max(1, min(n_components, n - 1, centred.shape[1])))
    _, _sv, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[:n_comp]
    # Sign convention: the first component grows with the mouth opening.
    codes = centred @ comps.T
    for c in range(n_comp):
        varies = np.std(codes[:, c]) > 0 and np.std(opening) > 0
        if varies and np.corrcoef(codes[:, c], opening)[0, 1] < 0:
            comps[c] = -comps[c]
            codes[:, c] = -codes[:, c]
    scale = codes.std(0) + 1e-9
    pool = np.arange(n)
    if silent is not None and int(np.asarray(silent).sum()) >= 5:
        pool = np.flatnonzero(silent)
    # The closed mouth: the frames among the pool with the smallest opening. Some speakers keep their
    # lips apart in the pauses of their speech (a pause is often a breath): the rest is then no more
    # open than the speaker's CLOSED_QUANTILE opening overall, so a dub's silence shows closed lips.
    thr = min(float(np.quantile(opening[pool], 0.2)), float(np.quantile(opening, CLOSED_QUANTILE)))
    # On short footage that quantile is one or two frames: take at least the five most closed, so one
    # misread frame cannot become the rest.
    thr = max(thr, float(np.sort(opening)[min(5, len(opening)) - 1]))
    closed = np.flatnonzero(opening <= thr)
    if len(closed) > 0 and len(pool) < n:
        in_pool = np.intersect1d(closed, pool)
        closed = in_pool if len(in_pool) >= 5 else closed
    rest = np.median(codes[closed], axis=0)
    model = ShapeModel(mean, comps, scale, rest, float(np.median(opening[closed])), pose_basis, pose_mean)
    return model


def smooth_codes(codes: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Zero-phase temporal smoothing (a symmetric Gaussian): no lag, a step stays where it was."""
    c = np.asarray(codes, np.float64)
    if sigma_frames <= 0 or len(c) < 2:
        return c.copy()
    return gaussian_filter1d(c, sigma_frames, axis=0, mode="nearest")
