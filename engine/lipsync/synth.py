"""Retrieval synthesis: the mouth for a target shape, taken from the speaker's own frames.

For each target frame: candidates are the speaker's source frames whose mouth code and head pose are
closest to the target; a Viterbi path through them favours consecutive source frames (real motion,
no texture flicker); the chosen frame's lower face is warped piecewise-affinely (a fixed Delaunay
triangulation of mouth, jaw and cheek points) onto the target landmarks, which are the target frame's
own face with its mouth and jaw moved to the target shape. Real teeth, beard and lips, native
resolution.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.spatial import Delaunay

from engine.lipsync.geometry import (
    INNER_LIP_PAIRS,
    JAW,
    LIPS_OUTER,
    LOWER_FACE_INNER,
    SHAPE_POINTS,
    UNDER_NOSE,
    interocular,
    mouth_opening,
    to_canonical,
)
from engine.runtime.rowfile import FileRows

# Warp control points: mouth + jaw (these follow the target shape) and the surrounding lower face.
WARP_POINTS = tuple(dict.fromkeys(SHAPE_POINTS + LOWER_FACE_INNER + UNDER_NOSE + (1, 4, 5, 195)))
WARP_INDEX = np.asarray(WARP_POINTS, np.int64)
# An outer ring (jaw and under-nose points pushed away from the mouth) keeps the warp's support
# wider than the compose mask; it is taken from the frames' own, unmoved landmarks.
RING_SOURCES = np.asarray(JAW + UNDER_NOSE, np.int64)
RING_FACTOR = 1.35
# Head-pose difference (degrees of yaw or pitch) between a target and its source beyond which the
# path pays POSE_GAP_WEIGHT per squared degree (plan_path).
MAX_POSE_GAP = 10.0
POSE_GAP_WEIGHT = 0.1
# A jump back by at most this many source frames is a swing, not a cut to other material (plan_path).
BACK_STEP_FRAMES = 4
# Weight of the lip gap in plan_path's matching cost, per squared standard deviation of the bank's
# gaps (the code components weigh about 1 each per squared scale). The warp moves the lips but not
# what shows between them: a source warped to a gap other than its own keeps its teeth and
# shadows, and the mouth reads as its own gap, not the one asked for. At this weight the chosen
# sources' gaps follow the targets' at r 0.994-0.998 on three clips' held-out parts (0.961-0.987
# at weight 5), at the price of more jumps between source frames (15-16 a second instead of 7-9).
OPENING_WEIGHT = 50.0
# A second path (plan_path's ``avoid``) keeps this many source frames away from the first one's
# source at every target frame, and pays AVOIDED_COST for a source nearer than that: a neighbouring
# frame of the same take is nearly the same picture, and blending it in would average nothing.
AVOID_FRAMES = 3
AVOIDED_COST = 1e6
# Elements of the (targets x bank x components) difference array plan_path builds at once.
CANDIDATE_BLOCK = 4_000_000


def ring_points(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, np.float64)
    centre = lm[list(LIPS_OUTER)].mean(0)
    return centre + (lm[RING_SOURCES] - centre) * RING_FACTOR


def control_points(moved: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Warp control points: lower-face points of ``moved`` plus the outer ring of ``own``."""
    return np.concatenate([np.asarray(moved, np.float64)[WARP_INDEX], ring_points(own)], axis=0)


def close_inner_lips(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """``target`` (468, 2) with its inner lips drawn together for warping a more open ``source``
    mouth onto it: each facing pair of inner-lip points keeps the share target gap / source gap of
    its gap (about its midpoint). Unchanged where the source is no more open than the target.

    A source mouth warped to a smaller opening keeps what was between its lips (teeth, the dark of
    the mouth) in the smaller gap, and a thin band of teeth still reads as a parted mouth. Drawn
    together this way the band is the source's gap times the square of the ratio of the openings
    instead of times the ratio."""
    t = np.asarray(target, np.float64)
    g_t = float(mouth_opening(t))
    g_s = float(mouth_opening(np.asarray(source, np.float64)))
    if not (np.isfinite(g_t) and np.isfinite(g_s)) or g_s <= g_t or g_s <= 0:
        return t
    keep = g_t / g_s
    out = t.copy()
    lo, up = np.asarray(INNER_LIP_PAIRS).T
    mid = (t[lo] + t[up]) / 2
    out[lo] = mid + keep * (t[lo] - mid)
    out[up] = mid + keep * (t[up] - mid)
    return out


class CropFile(FileRows):
    """The crops of a texture bank in an ``.npy`` file (N, H, W, 3) uint8, read a crop at a time.

    Indexing with one position reads that crop from the file (an array of its own). The crops may
    also be picked by a slice or a 1-D list of positions or mask, optionally followed by indices
    into each crop (``c[2:9, 4:10]``); ``np.asarray`` reads them all. Other numpy indexing
    (``...`` first, paired index arrays) is refused rather than read differently.

    Nothing is mapped into the process: a long render that visits every crop of a large bank holds
    one crop at a time, not the bank, and the file's pages stay in the system's file cache where
    other programs can have them back. The file stays open (a bank replaced on disk keeps reading
    its own file where the system allows)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        file = open(self.path, "rb")  # held for the life of the bank
        try:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
        except Exception:
            file.close()
            raise
        if fortran or dtype != np.uint8 or len(shape) != 4:
            file.close()
            raise ValueError(f"{self.path}: not a texture bank (shape {shape}, {dtype})")
        super().__init__(file, file.tell(), shape, np.uint8, f"{self.path}: the texture bank file")

    def __getitem__(self, index: Any) -> np.ndarray:
        first = index[0] if isinstance(index, tuple) else index
        rest = index[1:] if isinstance(index, tuple) else ()
        if isinstance(first, (bool, np.bool_)):
            raise TypeError("a texture bank is not indexed by a bool")
        if isinstance(first, (int, np.integer)):
            if not -len(self) <= int(first) < len(self):
                raise IndexError(f"crop {int(first)} of a bank of {len(self)}")
            return self._row_at(first)[rest]
        if isinstance(first, slice):
            picks = np.arange(len(self))[first]
        else:
            sel = np.asarray(first)
            if sel.ndim != 1 or not (sel.dtype == bool or np.issubdtype(sel.dtype, np.integer)) or (
                    rest and any(not isinstance(r, (slice, int, np.integer)) for r in rest)):
                raise TypeError(f"unsupported texture bank index {index!r}: use a position, a slice or a "
                                "1-D list of positions, then index the crops read")
            picks = np.arange(len(self))[sel]
        if any(r is Ellipsis or r is None for r in rest):
            raise TypeError(f"unsupported texture bank index {index!r}")
        return self._gather(picks)[(slice(None), *rest)]

    def __iter__(self) -> Any:
        return (self._row_at(i) for i in range(len(self)))


def create_crop_file(path: Path, shape: tuple[int, int, int, int]) -> Any:
    """A new bank file of ``shape`` (uint8, zero-filled, sparse where the system allows), opened for
    writing; returns the open file and the byte offset of crop 0."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                "shape": tuple(int(v) for v in shape)})
        offset = f.tell()
        f.truncate(offset + int(np.prod(shape)))
    return open(path, "r+b"), offset  # closed by the BankWriter


@dataclass
class TextureBank:
    """The speaker's source frames usable as mouth texture: their lower-face crops and geometry.

    ``crops`` is a :class:`CropFile` for a bank kept on disk (memory does not grow with the footage
    or the bank) or an array."""

    frames: np.ndarray  # (N,) source frame indices, increasing
    codes: np.ndarray  # (N, C) shape codes
    pose: np.ndarray  # (N, 3) yaw, pitch, roll in degrees
    landmarks: np.ndarray  # (N, 468, 2) image px
    origins: np.ndarray  # (N, 2) crop top-left in the source frame (x, y)
    crops: np.ndarray | CropFile  # (N, H, W, 3) uint8
    triangles: np.ndarray  # (T, 3) indices into control_points

    def __len__(self) -> int:
        return len(self.frames)


def crop_box(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and size (w, h) of the region a frame's texture must cover."""
    pts = control_points(landmarks, landmarks)
    lo, hi = pts.min(0), pts.max(0)
    return (lo + hi) / 2, hi - lo


def fixed_triangulation(landmarks: np.ndarray) -> np.ndarray:
    """One Delaunay triangulation of the control points of a typical face (same for every frame, so
    the warp never changes topology between frames)."""
    canon, _ = to_canonical(np.asarray(landmarks, np.float64).reshape(-1, 468, 2))
    mean = canon.mean(0)
    pts = control_points(mean, mean)
    return np.asarray(Delaunay(pts).simplices, np.int32)


# Most source frames a texture bank holds. A mouth crop of a close 1080p face is about half a
# megabyte, so an hour of footage would be tens of gigabytes on disk and every retrieval would search
# it all; beyond this budget the bank keeps runs of frames that cover the speaker's mouth shapes and
# head poses (choose_bank_frames). 2400 frames is 80 s at 30 fps.
BANK_BUDGET = 2400
# Length of the runs of consecutive source frames a capped bank is made of: the retrieval path plays
# runs forward, so a bank of isolated frames would flicker.
BANK_RUN = 15


def match_features(codes: np.ndarray, pose: np.ndarray, code_scale: np.ndarray, pose_weight: float = 0.005) -> np.ndarray:
    """Rows whose squared Euclidean distances are plan_path's matching cost (codes weighted as there,
    yaw and pitch at ``pose_weight`` per squared degree), for choosing which frames a bank keeps."""
    c = np.asarray(codes, np.float64) / np.asarray(code_scale, np.float64)
    w = np.ones(c.shape[1])
    w[: min(3, len(w))] = 3.0
    p = np.asarray(pose, np.float64)[:, :2]
    return np.concatenate([c * np.sqrt(w / len(w)), p * np.sqrt(pose_weight)], axis=1)


def choose_bank_frames(frames: np.ndarray, features: np.ndarray, budget: int = BANK_BUDGET,
                       run: int = BANK_RUN, rest: np.ndarray | None = None) -> np.ndarray:
    """Positions (into ``frames``, increasing) of the source frames a texture bank keeps, never more than
    ``budget``: all of them within it; beyond it, whole runs of up to ``run`` consecutive frames: a tenth of the budget
    the runs holding the frames nearest ``rest`` (the resting mouth's features, which every silence of
    a dub asks for), then half spread evenly over the footage (lighting, framing and the common shapes
    as they occur), and the rest chosen one at a time as the run holding the frame farthest from
    everything kept so far (the widest mouths, the turned heads). ``features``: one row per frame
    (match_features)."""
    f = np.asarray(frames, np.int64)
    n = len(f)
    if n <= budget:
        return np.arange(n)
    run = max(1, min(run, budget))
    x = np.asarray(features, np.float64)
    # Runs: consecutive source frames, cut at gaps and every ``run`` frames.
    starts = np.flatnonzero(np.r_[True, np.diff(f) != 1])
    bounds: list[tuple[int, int]] = []
    for s0, e0 in zip(starts.tolist(), np.r_[starts[1:], n].tolist(), strict=True):
        bounds.extend((i, min(i + run, e0)) for i in range(s0, e0, run))
    run_of = np.zeros(n, np.int64)
    for r, (a, b) in enumerate(bounds):
        run_of[a:b] = r
    keep = np.zeros(n, dtype=np.bool_)
    count = [0]

    def take(r: int) -> bool:
        """Keep run ``r`` if it is new and fits in the budget."""
        a, b = bounds[r]
        if keep[a] or count[0] + (b - a) > budget:
            return False
        keep[a:b] = True
        count[0] += b - a
        return True

    if rest is not None:
        near = np.argsort(((x - np.asarray(rest, np.float64)) ** 2).sum(1))
        for i in near:
            if count[0] >= budget // 10:
                break
            take(int(run_of[i]))
    for r in np.unique(np.linspace(0, len(bounds) - 1, max(1, len(bounds) * budget // (2 * n))).round().astype(int)):
        take(int(r))
    # Distance of every frame to its nearest kept frame, a block of frames at a time.
    kept = x[keep]
    far = np.full(n, np.inf)
    if len(kept):
        block = max(1, 2_000_000 // (len(kept) * max(1, x.shape[1])))
        for i in range(0, n, block):
            far[i : i + block] = ((x[i : i + block, None, :] - kept[None]) ** 2).sum(-1).min(1)
    far[keep] = -1.0
    while count[0] < budget:
        i = int(np.argmax(far))
        if far[i] < 0:
            break  # every run is kept or does not fit
        r = int(run_of[i])
        a, b = bounds[r]
        if take(r):
            far = np.minimum(far, ((x[:, None, :] - x[None, a:b]) ** 2).sum(-1).min(1))
        far[a:b] = -1.0
    return np.flatnonzero(keep)


class BankWriter:
    """Fills a :class:`TextureBank` frame by frame while the source video is decoded once."""

    def __init__(
        self,
        frames: np.ndarray,
        codes: np.ndarray,
        pose: np.ndarray,
        landmarks: np.ndarray,
        frame_hw: tuple[int, int],
        path: Path | None = None,
    ) -> None:
        self.frames = np.asarray(frames, np.int64)
        lm = np.asarray(landmarks, np.float64)
        sizes = np.stack([crop_box(x)[1] for x in lm]) if len(lm) else np.ones((1, 2))
        w, h = (np.max(sizes, axis=0) * 1.1 + 8).astype(int)
        h, w = int(min(h, frame_hw[0])), int(min(w, frame_hw[1]))
        self.size = (w, h)
        shape = (len(self.frames), h, w, 3)
        # On disk, the bank is written under a temporary name and renamed when complete: a reader of
        # an earlier bank at ``path`` (a preview's memory map) keeps its file, and a cancelled fit
        # leaves no half-written bank behind.
        self.path = path
        self._tmp: Path | None = None
        self._out: Any = None  # the bank file being written, when on disk
        self._offset = 0
        self.crops: np.ndarray | CropFile = np.zeros((0, h, w, 3), np.uint8)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = path.with_name(f"{path.stem}.{os.getpid()}.{id(self)}.tmp.npy")
            # Written with plain file writes: the crops go to the file, not into this process.
            self._out, self._offset = create_crop_file(self._tmp, shape)
        else:
            self.crops = np.zeros(shape, np.uint8)
        self.origins = np.zeros((len(self.frames), 2), np.int64)
        self.codes, self.pose, self.landmarks = np.asarray(codes), np.asarray(pose), lm
        self.frame_hw = frame_hw
        self._pos = {int(f): i for i, f in enumerate(self.frames)}
        self.triangles = fixed_triangulation(lm) if len(lm) else np.zeros((0, 3), np.int32)

    def add(self, frame_index: int, image: np.ndarray) -> None:
        i = self._pos[frame_index]
        centre, _ = crop_box(self.landmarks[i])
        w, h = self.size
        fh, fw = self.frame_hw
        x0 = int(np.clip(round(centre[0] - w / 2), 0, max(0, fw - w)))
        y0 = int(np.clip(round(centre[1] - h / 2), 0, max(0, fh - h)))
        crop = image[y0 : y0 + h, x0 : x0 + w]
        if crop.shape[:2] != (h, w):
            raise ValueError(f"frame {frame_index} is {image.shape[1]}x{image.shape[0]}, smaller than the bank's "
                             f"{w}x{h} crops (the bank was sized for {self.frame_hw[1]}x{self.frame_hw[0]})")
        if self._out is not None:
            self._out.seek(self._offset + i * h * w * 3)
            self._out.write(np.ascontiguousarray(crop, np.uint8).data)
        else:
            assert isinstance(self.crops, np.ndarray)
            self.crops[i] = crop
        self.origins[i] = (x0, y0)

    def finish(self) -> TextureBank:
        if self._tmp is not None and self.path is not None:
            self._out.close()
            self._out = None
            final = self.path
            try:
                os.replace(self._tmp, final)
            except OSError:  # the old bank is held open where files cannot be replaced (Windows)
                final = self._tmp
            self._tmp = None
            self.crops = CropFile(final)
            self.path = final
        return TextureBank(self.frames, self.codes, self.pose, self.landmarks, self.origins, self.crops, self.triangles)

    def discard(self) -> None:
        """Drop an unfinished bank's temporary file (a cancelled or failed fit)."""
        if self._tmp is not None:
            if self._out is not None:
                self._out.close()
                self._out = None
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def plan_path(
    target_codes: np.ndarray,
    target_pose: np.ndarray,
    valid: np.ndarray,
    bank: TextureBank,
    code_scale: np.ndarray,
    k: int = 32,
    pose_weight: float = 0.005,
    jump_cost: float | np.ndarray = 0.4,
    hold_cost: float = 0.1,
    target_opening: np.ndarray | None = None,
    bank_opening: np.ndarray | None = None,
    opening_weight: float = OPENING_WEIGHT,
    max_pose_gap: float = MAX_POSE_GAP,
    avoid: np.ndarray | None = None,
    avoid_frames: int = AVOID_FRAMES,
) -> np.ndarray:
    """Bank index per target frame (-1 where ``valid`` is False): Viterbi over the k nearest bank
    frames, free to continue with the next source frame, paying ``jump_cost`` (one value, or one per
    target frame: the cost of arriving there by a jump) to jump elsewhere.

    With ``target_opening``/``bank_opening`` the lip gap is matched explicitly as well, at
    ``opening_weight`` (:data:`OPENING_WEIGHT`). ``avoid``: another path (bank index per target
    frame, -1 for none); at each frame, sources within ``avoid_frames`` source frames of that path's
    are left out (the second texture a frame blends in is other material, not a near copy)."""
    n = len(target_codes)
    jumps = np.broadcast_to(np.asarray(jump_cost, np.float64), (n,))
    path = np.full(n, -1, np.int64)
    if len(bank) == 0:
        return path
    w = np.ones(len(code_scale))
    w[: min(3, len(w))] = 3.0  # opening, width, jaw matter most
    bank_c = bank.codes / code_scale * np.sqrt(w)
    bank_p = np.asarray(bank.pose, np.float64)[:, :2]
    tgt_c = np.asarray(target_codes, np.float64) / code_scale * np.sqrt(w)
    tgt_p = np.asarray(target_pose, np.float64)[:, :2]
    k = min(k, len(bank))
    spread = float(np.std(bank_opening)) + 1e-6 if bank_opening is not None else 1.0
    t = 0
    while t < n:
        if not valid[t]:
            t += 1
            continue
        end = t
        while end < n and valid[end]:
            end += 1
        seg = np.arange(t, end)
        cand = np.zeros((len(seg), k), np.int64)
        unary = np.zeros((len(seg), k))
        # The matching costs are a (targets x bank) matrix: built a block of targets at a time, so
        # memory stays bounded by the bank, not by the length of the segment (a talking head with no
        # cut for ten minutes is one segment).
        step_rows = max(1, CANDIDATE_BLOCK // (len(bank) * (tgt_c.shape[1] + 2)))
        for b0 in range(0, len(seg), step_rows):
            rows = seg[b0 : b0 + step_rows]
            d = ((tgt_c[rows, None, :] - bank_c[None]) ** 2).sum(-1) / len(w)
            gap = np.abs(tgt_p[rows, None, :] - bank_p[None])
            d += pose_weight * (gap**2).sum(-1)
            # Beyond ``max_pose_gap`` degrees of turn or tilt a warped mouth no longer fits the face
            # (a cheek folds, the lips skew): such sources are all but ruled out.
            d += POSE_GAP_WEIGHT * (np.maximum(gap - max_pose_gap, 0.0) ** 2).sum(-1)
            if target_opening is not None and bank_opening is not None:
                d += opening_weight * ((target_opening[rows, None] - bank_opening[None]) / spread) ** 2
            if avoid is not None:
                other = np.asarray(avoid, np.int64)[rows]
                near = np.abs(bank.frames[None, :] - bank.frames[np.maximum(other, 0)][:, None]) <= avoid_frames
                d[near & (other[:, None] >= 0)] += AVOIDED_COST
            c = np.argpartition(d, k - 1, axis=1)[:, :k]
            cand[b0 : b0 + len(rows)] = c
            unary[b0 : b0 + len(rows)] = np.take_along_axis(d, c, 1)
        cost = unary[0].copy()
        back = np.zeros((len(seg), k), np.int64)
        for s in range(1, len(seg)):
            prev, cur = cand[s - 1], cand[s]
            step = bank.frames[cur][None, :] - bank.frames[prev][:, None]
            # A short step back costs two holds on top of the jump: otherwise swinging between two
            # neighbouring source frames (one free step forward, one jump back) is cheaper than holding
            # one, and shows as a flicker.
            trans = np.full(step.shape, float(jumps[seg[s]]))
            trans[(step < 0) & (step >= -BACK_STEP_FRAMES)] += 2 * hold_cost
            trans[step == 0] = hold_cost
            trans[step == 1] = 0.0
            total = cost[:, None] + trans
            back[s] = np.argmin(total, axis=0)
            cost = total[back[s], np.arange(k)] + unary[s]
        j = int(np.argmin(cost))
        for s in range(len(seg) - 1, -1, -1):
            path[seg[s]] = cand[s, j]
            j = back[s, j]
        t = end
    return path


def warp_to_box(
    bank: TextureBank,
    j: int,
    dst_points: np.ndarray,
    box: tuple[int, int, int, int],
) -> np.ndarray:
    """Bank frame ``j``'s texture warped so its control points land on ``dst_points`` (image px),
    rendered for the frame box ``(x0, y0, x1, y1)``."""
    return warp_with_validity(bank, j, dst_points, box)[0]


def warp_with_validity(
    bank: TextureBank,
    j: int,
    dst_points: np.ndarray,
    box: tuple[int, int, int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """``warp_to_box`` and, per output pixel, whether its texture came from the source's own face.

    Valid (1) where the pixel reads inside the source crop and inside the source frame's face below
    the nose (the jaw and cheek outline, its sides pulled in by a tenth towards the mouth) or on its
    lips. A source taken at another head turn can otherwise lend a cheek pixel from the background
    beyond its silhouette, or from outside its crop (seen as bluish stripes on a cheek); the
    compositor keeps the original pixel there instead."""
    from engine.compose.mask import lips_pad, lips_polygon, lower_face_polygon

    x0, y0, x1, y1 = box
    src_pts = control_points(bank.landmarks[j], bank.landmarks[j]) - bank.origins[j]
    dst = np.asarray(dst_points, np.float64) - [x0, y0]
    # Pixels no triangle covers (where a strongly changed mouth folds the mesh) follow the overall
    # similarity between the two point sets instead of reading some unrelated pixel.
    fallback, _ = cv2.estimateAffinePartial2D(dst.astype(np.float32), src_pts.astype(np.float32))
    crop = np.asarray(bank.crops[j])
    ch, cw = crop.shape[:2]
    src_lm = np.asarray(bank.landmarks[j], np.float64)

    def fill(polygon: np.ndarray) -> np.ndarray:
        out = np.zeros((ch, cw), np.uint8)
        cv2.fillPoly(out, [np.round((polygon - bank.origins[j]) * 4).astype(np.int32)], 255, lineType=cv2.LINE_8, shift=2)
        return out

    face = fill(lower_face_polygon(src_lm, side_margin=0.1, chin_margin=0.35))
    # The source's own lips are its face however far its head is turned (the pulled-in sides can cut
    # through the far lip corner), with the margin the compose mask gives a mouth. Not cut at the
    # mesh's cheek outline either: on a three-quarter view that outline runs through the far lip
    # corner, well inside the real silhouette.
    face |= fill(lips_polygon(src_lm, lips_pad(src_lm, feather_px(src_lm))))
    map_x, map_y = piecewise_affine_maps(src_pts, dst, bank.triangles, (y1 - y0, x1 - x0), fallback)
    warped = cv2.remap(crop, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # The face map read with a zero border: outside the crop is invalid as well.
    valid = cv2.remap(face, map_x, map_y, interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped, (valid > 127).astype(np.float32)


def _signed_areas(corners: np.ndarray) -> np.ndarray:
    """Twice the signed area of each triangle (n, 3, 2): its sign is the order of its corners."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])


_GRID: list[tuple[np.ndarray, np.ndarray]] = []  # (xs, ys) of the largest grid asked for so far


def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel x and y coordinates (h, w) float32, as read-only views of one grid kept for every call
    (the mask's box changes size from frame to frame). Each call reads and returns one grid of its
    own, so renders on several threads never mix two."""
    grid = _GRID[0] if _GRID else None
    if grid is None or grid[0].shape[0] < h or grid[0].shape[1] < w:
        gh, gw = max(h, grid[0].shape[0] if grid else 0), max(w, grid[0].shape[1] if grid else 0)
        ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32)
        xs.flags.writeable = False
        ys.flags.writeable = False
        grid = (xs, ys)
        _GRID[:] = [grid]
    return grid[0][:h, :w], grid[1][:h, :w]


def piecewise_affine_maps(
    src: np.ndarray,
    dst: np.ndarray,
    triangles: np.ndarray,
    out_shape: tuple[int, int],
    uncovered: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` maps (map_x, map_y) that take each triangle of points ``dst`` to the same triangle
    of ``src``, for an output of ``out_shape`` (h, w). ``uncovered``: the 2x3 destination->source
    affine for pixels no triangle covers, turned-over triangles included (None: identity)."""
    h, w = out_shape
    tri = np.asarray(triangles, np.int64).reshape(-1, 3)
    d = np.asarray(dst, np.float64)[tri]
    s = np.asarray(src, np.float64)[tri]
    area, area_src = _signed_areas(d), _signed_areas(s)
    # A triangle whose corners come in the other order in dst is turned over: its affine is a
    # mirror, and would paint a mirrored sliver of the source (a nostril, a lip corner) into the
    # cheek. Its pixels are left to the neighbouring triangles or to ``uncovered``. (A source
    # filmed with the head turned much less than the target's has a wide far cheek that must fit
    # into a narrow one: the triangles along that side turn over.)
    keep = (np.abs(area) >= 1e-6) & (area * area_src > 0)
    # Affine per triangle mapping destination (x, y, 1) to source (x, y); index 0 is the uncovered one:
    # M @ D = S with D the (3, 3) destination corners in homogeneous columns, solved for all at once.
    mats = np.zeros((len(tri) + 1, 2, 3), np.float64)
    mats[0] = uncovered if uncovered is not None else [[1, 0, 0], [0, 1, 0]]
    if keep.any():
        dk = np.concatenate([d[keep], np.ones((int(keep.sum()), 3, 1))], axis=2)  # (k, 3, 3) rows (x, y, 1)
        mats[1:][keep] = np.linalg.solve(dk, s[keep]).transpose(0, 2, 1)
    labels = np.zeros((h, w), np.int32)
    corners = np.round(d * 16).astype(np.int32)
    for ti in np.flatnonzero(keep):
        cv2.fillConvexPoly(labels, corners[ti], int(ti) + 1, lineType=cv2.LINE_8, shift=4)
    xs, ys = _pixel_grid(h, w)
    m = mats.astype(np.float32).reshape(-1, 6)[labels]
    map_x = m[..., 0] * xs + m[..., 1] * ys + m[..., 2]
    map_y = m[..., 3] * xs + m[..., 4] * ys + m[..., 5]
    return map_x, map_y


def piecewise_affine(
    image: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    triangles: np.ndarray,
    out_shape: tuple[int, int],
    uncovered: np.ndarray | None = None,
) -> np.ndarray:
    """Warp ``image`` so each triangle of points ``src`` lands on the same triangle of ``dst``
    (output of ``out_shape`` (h, w)); ``uncovered`` as in :func:`piecewise_affine_maps`."""
    map_x, map_y = piecewise_affine_maps(src, dst, triangles, out_shape, uncovered)
    return cv2.remap(image, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def feather_px(landmarks: np.ndarray) -> float:
    """Feather width for a face: a tenth of the inter-ocular distance, at least 2 px."""
    return float(max(2.0, 0.1 * float(interocular(landmarks))))
