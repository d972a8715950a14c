"""Training data for one speaker: their lower-face crops, decoded once, and batches built from them.

Frames are the identity's frames without quality flags, optionally limited to a frame range (the eval
trains on the first 70% only). At most ``max_frames`` are kept (pairs of consecutive frames picked
evenly), so memory is bounded whatever the video's length: about 60 kB per frame at 128 px.
Crops are extracted with a margin of ``pad`` pixels so batches can shift them (augmentation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import BadInputError
from engine.regen.crop import (
    SHAPE_INDEX,
    CropGeometry,
    apply_affine,
    crop_transform,
    landmark_map,
    region_alpha,
    speaker_region,
    warp_crop,
    warp_to_landmarks,
    with_region,
)
from engine.runtime.jobs import CancelToken, ProgressFn, ProgressReporter, check_cancel


@dataclass
class SpeakerCrops:
    """Padded lower-face crops of one speaker, BGR uint8 (N, S + 2 pad, S + 2 pad, 3), landmarks in
    padded-crop pixels (N, 468, 2), their source frame indices, and which ones are held out."""

    frames: np.ndarray
    crops: np.ndarray
    landmarks: np.ndarray
    val: np.ndarray  # (N,) bool
    size: int
    pad: int
    geometry: CropGeometry
    region: np.ndarray | None = None  # (S + 2 pad, S + 2 pad) the speaker's fixed region, padded coordinates

    def region_window(self, dx: int, dy: int) -> np.ndarray | None:
        return None if self.region is None else self.region[dy : dy + self.size, dx : dx + self.size]

    def __len__(self) -> int:
        return len(self.frames)

    def pairs(self, val: bool) -> np.ndarray:
        """Indices i with i + 1 the next video frame, both in the requested split."""
        nxt = np.diff(self.frames) == 1
        same = (self.val[:-1] == val) & (self.val[1:] == val)
        return np.nonzero(nxt & same)[0]


def usable_frames(identity: Any, frame_range: tuple[int, int] | None, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions in the identity's arrays, frame indices) of the frames to learn from."""
    frames = np.asarray(identity.frames, np.int64)
    flags = np.asarray(identity.flags, np.int64)
    lm = np.asarray(identity.landmarks, np.float64)
    ok = (flags == 0) & np.isfinite(lm).all(axis=(1, 2))
    if frame_range is not None:
        ok &= (frames >= frame_range[0]) & (frames < frame_range[1])
    pos = np.nonzero(ok)[0]
    if len(pos) > max_frames:
        # Keep evenly spread pairs of consecutive frames, for the temporal term.
        starts = pos[np.linspace(0, len(pos) - 2, max_frames // 2).round().astype(int)]
        pos = np.unique(np.concatenate([starts, starts + 1]))
        pos = pos[ok[pos]]
    return pos, frames[pos]


def extract_crops(
    video_path: str | Path,
    identity: Any,
    *,
    size: int,
    frame_range: tuple[int, int] | None = None,
    max_frames: int = 3000,
    val_every: int = 10,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> SpeakerCrops:
    """Decode the video once and cut the speaker's lower-face crops (blocks of ``val_every`` frames,
    one in ``val_every``, are held out for validation)."""
    from engine.media import VideoReader

    pos, frames = usable_frames(identity, frame_range, max_frames)
    if len(pos) < 8:
        raise BadInputError(
            f"only {len(pos)} usable frames of this face: too few to train the regeneration network",
            video_path, hint="choose a face that is on screen longer, or use the retrieval engine")
    all_lm = np.asarray(identity.landmarks, np.float64)[pos]
    geometry = CropGeometry.fit(all_lm)
    pad = max(2, size // 16)
    sp = size + 2 * pad
    crops = np.zeros((len(pos), sp, sp, 3), np.uint8)
    lms = np.zeros((len(pos), 468, 2), np.float32)
    where = {int(f): k for k, f in enumerate(frames)}
    got = np.zeros(len(pos), bool)
    reporter = ProgressReporter(progress, "regen: reading frames", len(pos))
    done = 0
    with VideoReader(video_path, pixel_format="bgr24", cache_frames=0) as reader:
        # Only the selected frames are turned into images; gaps with a keyframe are skipped by seeking.
        for index, image in reader.iter_frames_at(frames, lambda: check_cancel(cancel)):
            k = where[int(index)]
            m = crop_transform(all_lm[k], geometry, size, pad)
            crops[k] = warp_crop(image, m, sp)
            lms[k] = apply_affine(m, all_lm[k])
            got[k] = True
            done += 1
            reporter.update(done)
    if not got.all():  # frames the decoder could not deliver (a truncated file)
        crops, lms, frames = crops[got], lms[got], frames[got]
    val = ((np.arange(len(frames)) // max(1, val_every)) % max(2, val_every)) == 1
    region = speaker_region(lms[~val], sp) if (~val).any() else None
    return SpeakerCrops(frames, crops, lms, val, size, pad, geometry, region)


@dataclass
class Batch:
    """Arrays for one training step, float32 in [-1, 1] (images) or [0, 1] (alpha, maps), NCHW.

    Rows come in pairs (2k, 2k + 1) = consecutive frames t, t + 1 with the same reference frame."""

    target: np.ndarray  # (B, 3, S, S)
    alpha: np.ndarray  # (B, 1, S, S)
    reference: np.ndarray  # (B, 3, S, S)
    lmap: np.ndarray  # (B, 3, S, S)

    def inputs(self) -> np.ndarray:
        masked = self.target * (self.alpha <= 0)
        return np.concatenate([masked, self.alpha, self.reference, self.lmap], axis=1)


def to_float(img: np.ndarray) -> np.ndarray:
    """BGR uint8 HWC -> float32 CHW in [-1, 1]."""
    return np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32) / 127.5 - 1.0


def _jitter(img: np.ndarray, gain: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return np.clip(img.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)


def nearest_shapes(landmarks: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` frames whose mouth + jaw (crop pixels) are closest to ``query``."""
    d = ((landmarks[:, SHAPE_INDEX] - query[SHAPE_INDEX][None]) ** 2).sum(axis=(1, 2))
    k = min(k, len(d))
    return np.argpartition(d, k - 1)[:k]


def make_batch(
    data: SpeakerCrops, pairs: np.ndarray, rng: np.random.Generator, n_pairs: int, augment: bool = True,
    fixed_region: bool = True,
) -> Batch:
    """``n_pairs`` pairs of consecutive frames, each with a reference: another frame of the speaker
    (not within a second of it; half the time one of similar mouth shape, as retrieval would pick)
    warped onto the target's mouth and jaw, as the retrieval path delivers at render time."""
    s, p = data.size, data.pad
    train_idx = np.nonzero(~data.val)[0]
    out_t, out_a, out_r, out_m = [], [], [], []
    for i in rng.choice(pairs, size=n_pairs, replace=len(pairs) < n_pairs):
        far = train_idx[np.abs(data.frames[train_idx] - data.frames[i]) > 25]
        pool = far if len(far) else train_idx
        if rng.random() < 0.5:
            near = nearest_shapes(data.landmarks[pool], data.landmarks[i], 8)
            r = int(pool[rng.choice(near)])
        else:
            r = int(rng.choice(pool))
        dx, dy = (rng.integers(0, 2 * p + 1, 2) if augment else (p, p))
        rdx, rdy = (rng.integers(0, 2 * p + 1, 2) if augment else (p, p))
        gain = rng.uniform(0.8, 1.2, 3).astype(np.float32) if augment else np.ones(3, np.float32)
        bias = rng.uniform(-20, 20, 3).astype(np.float32) if augment else np.zeros(3, np.float32)
        # The reference gets its own small colour change: the network learns to take colour from the
        # visible context, not from the reference.
        rgain = gain * (rng.uniform(0.92, 1.08, 3).astype(np.float32) if augment else 1.0)
        ref = data.crops[r, rdy : rdy + s, rdx : rdx + s]
        ref_lm = data.landmarks[r] - [rdx, rdy]
        ref_jit = _jitter(ref, rgain, bias)
        for j in (i, i + 1):
            tgt = _jitter(data.crops[j, dy : dy + s, dx : dx + s], gain, bias)
            lm = data.landmarks[j] - [dx, dy]
            # The render-time region is the union of the frame's own mouth and the target's; here
            # the reference's shape stands in for the frame's own.
            alpha = with_region(region_alpha([lm, ref_lm], s), data.region_window(dx, dy) if fixed_region else None)
            warped = warp_to_landmarks(ref_jit, ref_lm, lm)
            out_t.append(to_float(tgt))
            out_a.append(alpha[None])
            out_r.append(to_float(warped))
            out_m.append(landmark_map(lm, s))
    return Batch(np.stack(out_t), np.stack(out_a), np.stack(out_r), np.stack(out_m))
