"""Rendering: the per-frame mouth replacement, a preview session, and the streaming render."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.compose import ColourMatcher, MaskROI, blend_into, build_mask, compose_polygons
from engine.compose.shading import match_shading
from engine.lipsync.geometry import interocular
from engine.lipsync.shape import ShapeModel
from engine.lipsync.synth import (
    AVOID_FRAMES,
    close_inner_lips,
    control_points,
    feather_px,
    plan_path,
    warp_with_validity,
)
from engine.pipeline.fit import SpeakerFit
from engine.pipeline.tracks import FaceTrack
from engine.runtime.jobs import CancelToken, ProgressFn, ProgressReporter, check_cancel

log = logging.getLogger("lipdub.pipeline.session")


@dataclass
class FacePlan:
    """One face to change: its track, its fitted speaker, and per video frame the target code and the
    texture bank frame chosen for it (-1: leave this frame's face untouched)."""

    track: FaceTrack
    fit: SpeakerFit
    codes: np.ndarray  # (n_frames, C)
    path: np.ndarray  # (n_frames,) bank index or -1
    ok: np.ndarray  # (n_frames,) bool
    resting: np.ndarray | None = None
    """(n_frames,) True where the target is the resting mouth (the dub's silences): there a more open
    source has its lips drawn together in the warp (synth.close_inner_lips)."""
    second: np.ndarray | None = None
    """(n_frames,) a second bank index per frame (-1: none), other material than ``path``'s, whose
    texture is blended in at SECOND_WEIGHT (see plan_face)."""
    refiner: Any = None
    """Optional network renderer (``render_box(frame, own, target, box, warp=...)``, e.g.
    engine.regen.NetRenderer) that refines the retrieval warp of each frame's box before colour
    matching and blending; None: the retrieval warp as it is."""


# Cost of a jump to a non-consecutive source frame in the retrieval path (in units of the matching
# cost): during speech a jump swaps the whole mouth texture and reads as flicker.
SPEECH_JUMP_COST = 0.4
REST_JUMP_COST = 0.1


# Share of the second path's texture in each rendered mouth (plan_face). Each source frame is chosen
# by the mesh's reading of its mouth, and a reading errs: among a bank of frames matched tightly on
# the lip gap, the source chosen is often one whose reading errs the target's way, so its real
# mouth is more (or less) open than asked. Two sources from different material, both warped onto
# the target's landmarks, share the lip outline and average what shows between the lips, and their
# reading errors partly cancel. On the three long clips' held-out parts dlib read the render's
# opening against the real one at r 0.718 instead of 0.686, with less jitter (latentsync_demo3
# 1.14 -> 1.02) and a higher mouth PSNR; see docs/quality.md, "Two textures".
SECOND_WEIGHT = 0.5


def within_bank(codes: np.ndarray, bank_codes: np.ndarray) -> np.ndarray:
    """``codes`` with each component kept inside the range the texture bank's frames span.

    The synthesis can only show mouths the speaker was filmed making: a target beyond them is a real
    mouth warped past its own shape, and far past it that reads as something else (on
    latentsync_demo1 a held-out opening 1.5x the widest training mouth rendered as a stretched grin
    whose teeth an independent landmarker took for closed lips)."""
    c = np.asarray(codes, np.float64)
    b = np.asarray(bank_codes, np.float64)
    if len(b) == 0:
        return c
    return np.clip(c, np.nanmin(b, axis=0), np.nanmax(b, axis=0))


# The widest lip gap a target may ask of the warp, as a multiple of the widest gap among the bank's
# frames. Each code component is kept inside the bank's range (within_bank), but the gap is not
# linear in the codes and a mix of in-range components can still ask for more: latentsync_demo1's
# held-out part asked for up to 1.33x its widest training mouth, whose teeth, stretched that far,
# an independent landmarker read as nearly closed on one frame. 10% of stretch reads as the mouth
# it is asked to be (hdtf_katiehill and vox_threequarter ask for 1.09-1.10x and read as more open).
MAX_OPENING_STRETCH = 1.1


def within_bank_opening(codes: np.ndarray, shape: ShapeModel, bank_codes: np.ndarray,
                        stretch: float = MAX_OPENING_STRETCH) -> np.ndarray:
    """``codes`` kept inside the bank's range (:func:`within_bank`), and those whose lip gap would
    exceed ``stretch`` times the bank's widest brought towards the resting mouth until it does not
    (the whole code, so width and jaw stay in proportion)."""
    c = within_bank(codes, bank_codes)
    b = np.asarray(bank_codes, np.float64)
    if len(b) == 0 or len(c) == 0:
        return c
    limit = stretch * float(np.nanmax(shape.code_opening(b)))
    rest = np.asarray(shape.rest, np.float64)
    rest_open = float(shape.code_opening(rest[None])[0])
    if not np.isfinite(limit) or limit <= rest_open:
        return c
    for _ in range(6):  # the gap is close to linear along the way to the rest: a few steps settle it
        gap = shape.code_opening(c)
        over = gap > limit * (1 + 1e-6)
        if not over.any():
            break
        share = np.clip((limit - rest_open) / np.maximum(gap[over] - rest_open, 1e-9), 0.0, 1.0)
        c[over] = rest + share[:, None] * (c[over] - rest)
    return within_bank(c, b)  # in case the rest itself lies a hair outside the bank's range


def plan_face(track: FaceTrack, fit: SpeakerFit, codes: np.ndarray, second: bool = True) -> FacePlan:
    """The render plan of one face: target codes kept within the bank, a retrieval path through the
    bank, and (``second``) a second path of other material, whose texture each frame blends in
    (SECOND_WEIGHT)."""
    n = len(codes)
    ok, pose = track.usable_at(n)
    # At rest (the dub's silences) the path may move freely to the best closed mouth: closed mouths
    # look alike, so a jump there does not flicker, and carrying a speaking run on into a silence would.
    # (Told from the codes asked for: the rest may lie just outside the bank's range.)
    resting = np.linalg.norm((np.asarray(codes) - fit.shape.rest) / fit.shape.scale, axis=1) < 0.05
    codes = within_bank_opening(codes, fit.shape, fit.bank.codes)
    jump = np.where(resting, REST_JUMP_COST, SPEECH_JUMP_COST)
    target_gap, bank_gap = fit.shape.code_opening(codes), fit.shape.code_opening(fit.bank.codes)
    path = plan_path(codes, pose, ok, fit.bank, fit.shape.scale, jump_cost=jump, target_opening=target_gap,
                     bank_opening=bank_gap)
    other = None
    if second and len(fit.bank):
        other = plan_path(codes, pose, ok, fit.bank, fit.shape.scale, jump_cost=jump, target_opening=target_gap,
                          bank_opening=bank_gap, avoid=path)
        # A bank too small to hold other material gives the first path's own neighbourhood back:
        # no second texture there. (Both paths are -1 on the same frames: those not ``ok``.)
        near = np.abs(fit.bank.frames[np.maximum(other, 0)] - fit.bank.frames[np.maximum(path, 0)]) <= AVOID_FRAMES
        other[near] = -1
    return FacePlan(track, fit, codes, path, ok & (path >= 0), resting=resting, second=other)


def plans_with_refiner(plans: list[FacePlan]) -> list[FacePlan]:
    return [p for p in plans if p.refiner is not None and hasattr(p.refiner, "reset")]


@dataclass
class FrameResult:
    """What changed in one face of one frame (the mask is needed by the integrity checks)."""

    identity: str
    mask: MaskROI
    target_landmarks: np.ndarray


def soft_inside(inside: np.ndarray, feather: float) -> np.ndarray:
    """1 inside the region ``inside`` (bool), falling to 0 at its edge over ``feather`` pixels."""
    dist = cv2.distanceTransform(np.asarray(inside, np.uint8), cv2.DIST_L2, 3)
    return np.clip(dist / max(feather, 1e-3), 0.0, 1.0)


def trim_mask(mask: MaskROI, valid: np.ndarray, feather: float) -> MaskROI:
    """The mask without the pixels whose synthesized texture is not the source's face (``valid`` 0),
    with a feathered edge there too: those pixels keep the original frame."""
    bad = (valid <= 0) & (mask.alpha > 0)
    if not bool(bad.any()):
        return mask
    return MaskROI((mask.alpha * soft_inside(~bad, feather)).astype(np.float32), mask.box)


def blend_textures(first: np.ndarray, second: np.ndarray, second_valid: np.ndarray, weight: float,
                   feather: float) -> np.ndarray:
    """``first`` with ``second`` blended in at ``weight`` where the second's texture is its source's
    face (``second_valid`` 1), the weight feathered to nothing over ``feather`` pixels at the edge
    of that region: the first texture alone elsewhere, with no step between the two."""
    inside = np.asarray(second_valid) > 0
    if not inside.any():
        return first
    w = (weight * soft_inside(inside, feather)).astype(np.float32)[..., None]
    out = first.astype(np.float32) * (1.0 - w) + second.astype(np.float32) * w
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


class FrameComposer:
    """Replaces the mouths of the planned faces in one frame. Keeps per-face colour state, which is
    smoothed between consecutive frames and reset at cuts and jumps. ``shading``: give the texture
    the frame's own light as well (engine.compose.shading); off only to compare with and without."""

    def __init__(self, plans: list[FacePlan], shading: bool = True) -> None:
        self.plans = plans
        self.shading = shading
        self._colour = {p.track.identity: ColourMatcher() for p in plans}
        self._last: int | None = None
        self._cuts: set[int] = set()
        for p in plans:
            self._cuts.update(int(c) for c in p.track.cuts)

    def __call__(self, index: int, frame: np.ndarray, details: list[FrameResult] | None = None) -> np.ndarray:
        if self._last is None or index != self._last + 1 or index in self._cuts:
            for c in self._colour.values():
                c.reset()
            for p in plans_with_refiner(self.plans):
                p.refiner.reset()
        self._last = index
        out = frame
        for plan in self.plans:
            if index >= len(plan.ok) or not plan.ok[index]:
                continue
            try:
                out = self._face(plan, index, out, details)
            except (ValueError, IndexError, np.linalg.LinAlgError) as exc:  # never abort a render for one face
                log.warning("frame %d, face %s left unchanged: %s", index, plan.track.identity, exc)
        return out

    def _face(self, plan: FacePlan, index: int, frame: np.ndarray, details: list[FrameResult] | None) -> np.ndarray:
        own = plan.track.landmarks_at(index)
        if own is None:
            raise ValueError("the face has no landmarks on this frame")
        target = plan.fit.shape.apply_to_frame(own, plan.codes[index])
        h, w = frame.shape[:2]
        mask = build_mask(compose_polygons(own, target, feather_px(own)), (h, w), feather_px(own))
        if mask.empty:
            return frame
        resting = plan.resting is not None and bool(plan.resting[index])

        def warp(j: int) -> tuple[np.ndarray, np.ndarray]:
            # At rest a more open source has its lips drawn together in the warp.
            shape = close_inner_lips(target, plan.fit.bank.landmarks[j]) if resting else target
            return warp_with_validity(plan.fit.bank, j, control_points(shape, own), mask.box)

        synth, valid = warp(int(plan.path[index]))
        j2 = int(plan.second[index]) if plan.second is not None and index < len(plan.second) else -1
        if j2 >= 0:
            synth2, valid2 = warp(j2)
            synth = blend_textures(synth, synth2, valid2, SECOND_WEIGHT, feather_px(own))
        mask = trim_mask(mask, valid, feather_px(own))
        if mask.empty:
            return frame
        if plan.refiner is not None:
            synth = plan.refiner.render_box(frame, own, target, mask.box, warp=synth)
        x0, y0, x1, y1 = mask.box
        synth = self._colour[plan.track.identity](synth, frame[y0:y1, x0:x1], mask)
        if self.shading:
            synth = match_shading(synth, frame[y0:y1, x0:x1], mask.box, own, target, float(interocular(own)), valid)
        if details is not None:
            details.append(FrameResult(plan.track.identity, mask, target))
        return blend_into(frame, synth, mask)


class RenderSession:
    """Preview access: ``render_frame(i) -> (original, result)``, fast for neighbouring frames.

    Decoded source frames are kept in a small cache (the reader's own plus ours of results); the
    fitted speakers and plans are computed once, up front."""

    def __init__(self, video_path: str | Path, plans: list[FacePlan], cache_frames: int = 16) -> None:
        from engine.media.reader import VideoReader

        self.video_path = Path(video_path)
        self.reader = VideoReader(video_path, pixel_format="bgr24", cache_frames=cache_frames)
        self.composer = FrameComposer(plans)
        self._results: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_frames = cache_frames

    def __len__(self) -> int:
        return len(self.reader)

    def close(self) -> None:
        self.reader.close()

    def render_frame(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(original, result) of frame ``index``, BGR uint8."""
        hit = self._results.get(index)
        if hit is not None:
            self._results.move_to_end(index)
            return hit
        original = self.reader.frame(index)
        result = self.composer(index, original)
        self._results[index] = (original, result)
        while len(self._results) > self._cache_frames:
            self._results.popitem(last=False)
        return original, result


FrameSink = Callable[[int, np.ndarray], None]


def render_frames(
    video_path: str | Path,
    plans: list[FacePlan],
    sink: FrameSink,
    start: int = 0,
    stop: int | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    on_frame: Callable[[int, np.ndarray, np.ndarray, list[FrameResult]], None] | None = None,
) -> int:
    """Decode ``[start, stop)`` in order, replace the mouths, hand each result to ``sink``.

    Memory holds only the frames in flight. ``on_frame(index, original, result, details)`` sees every
    frame (measurements). Returns the number of frames rendered."""
    from engine.media.reader import VideoReader

    composer = FrameComposer(plans)
    count = 0
    with VideoReader(video_path, pixel_format="bgr24", cache_frames=0) as reader:
        stop = len(reader) if stop is None else min(stop, len(reader))
        reporter = ProgressReporter(progress, "render", max(0, stop - start))
        for i, frame in reader.iter_frames(start, stop):
            check_cancel(cancel)
            details: list[FrameResult] = []
            result = composer(i, frame, details)
            if on_frame is not None:
                on_frame(i, frame, result, details)
            sink(i, result)
            count += 1
            reporter.update(count)
        reporter.finish()
    return count
