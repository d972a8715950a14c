"""Rendering with a trained regeneration network: the mouth for target landmarks in a target frame.

Two call shapes:

- :meth:`NetRenderer.render_box` has the retrieval renderer's shape (a synthesised crop for a frame
  box, given the frame, its own landmarks and the target landmarks), so the engine's composer can take
  the network's output wherever it takes the retrieval warp; pass that warp as ``warp`` and the
  network uses it as its reference.
- :meth:`NetRenderer.render_frame` composes by itself (the network's own feathered region) and
  returns the new frame: every pixel outside the region is the source pixel, bit for bit.

Without a retrieval warp the reference is one of the speaker's training frames whose mouth is
closest to the target (switching only for a clearly better one, so the texture does not flicker),
warped onto the target landmarks as in training.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from engine.regen.crop import (
    apply_affine,
    crop_transform,
    invert_affine,
    landmark_map,
    region_alpha,
    warp_crop,
    warp_to_landmarks,
    with_region,
)
from engine.regen.data import nearest_shapes, to_float
from engine.regen.nets import Generator
from engine.regen.train import RegenConfig, geometry_of, load_checkpoint
from engine.runtime.jobs import CancelToken, ProgressFn

#: A new bank reference replaces the current one only when its shape distance is this much smaller.
SWITCH_RATIO = 0.7


class NetRenderer:
    """A speaker's trained generator, ready to render frames on ``device``."""

    def __init__(self, checkpoint: str | Path | dict, device: torch.device | str = "cpu") -> None:
        state = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
        from engine.runtime.compute import resolve_device

        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        self.config = RegenConfig(**state["config"])
        self.geometry = geometry_of(state)
        self.size = self.config.crop_size
        self.generator = Generator(self.config.base_channels, self.config.depth, residual=self.config.residual).to(self.device)
        # The weights at the best validation error (the last ones only in older or unfinished checkpoints).
        self.generator.load_state_dict(state.get("generator_best") or state["generator"])
        self.generator.eval()
        self.bank_crops = np.asarray(state["bank"]["crops"])
        self.bank_landmarks = np.asarray(state["bank"]["landmarks"], np.float64)
        self._ref: int | None = None
        region = state.get("region")
        self.region = np.asarray(region, np.float32) if region is not None and self.config.fixed_region else None

    def reset(self) -> None:
        """Forget the current reference choice (call at cuts and seeks)."""
        self._ref = None

    def _bank_reference(self, target_c: np.ndarray) -> np.ndarray:
        from engine.regen.crop import SHAPE_INDEX

        d = ((self.bank_landmarks[:, SHAPE_INDEX] - target_c[SHAPE_INDEX][None]) ** 2).sum(axis=(1, 2))
        best = int(nearest_shapes(self.bank_landmarks, target_c, 1)[0])
        if self._ref is None or d[best] < SWITCH_RATIO * d[self._ref]:
            self._ref = best
        j = self._ref
        return warp_to_landmarks(self.bank_crops[j], self.bank_landmarks[j], target_c)

    @torch.no_grad()
    def generate(
        self, frame: np.ndarray, own: np.ndarray, target: np.ndarray, reference_frame: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(generated crop BGR uint8, the alpha to compose it with, the image-to-crop transform, the
        reference crop) for one face.

        ``reference_frame``: a full-size frame whose mouth region already shows the target shape
        (the retrieval render); None to use the speaker's own bank."""
        m = crop_transform(own, self.geometry, self.size)
        src = warp_crop(frame, m, self.size)
        own_c, tgt_c = apply_affine(m, own), apply_affine(m, target)
        # The network sees the speaker's fixed region (no hint of the frame's own mouth); what is
        # composed back is only the frame's own and the target's region, inside it: on a turned head the
        # fixed region reaches past the cheek into the background.
        alpha = region_alpha([own_c, tgt_c], self.size)
        alpha_in = with_region(alpha, self.region)
        if reference_frame is not None:
            ref = warp_crop(reference_frame, m, self.size)
        else:
            ref = self._bank_reference(tgt_c)
        src_f = to_float(src)
        inputs = np.concatenate([src_f * (alpha_in <= 0)[None], alpha_in[None], to_float(ref),
                                 landmark_map(tgt_c, self.size)])
        x = torch.from_numpy(inputs[None]).to(self.device)
        amp = self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=amp):
            gen = self.generator(x)
        g = gen[0].float().clamp(-1, 1).cpu().numpy().transpose(1, 2, 0)
        return np.clip((g + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8), alpha, m, ref

    def network_region(self, own: np.ndarray, target: np.ndarray) -> np.ndarray:
        """The region alpha the network is shown for a face (crop pixels)."""
        m = crop_transform(own, self.geometry, self.size)
        return with_region(region_alpha([apply_affine(m, own), apply_affine(m, target)], self.size), self.region)

    def _to_box(self, crop: np.ndarray, m: np.ndarray, box: tuple[int, int, int, int], interp: int) -> np.ndarray:
        x0, y0, x1, y1 = box
        # warpAffine wants the destination -> source map with WARP_INVERSE_MAP; ``m`` is exactly that
        # once shifted to the box origin.
        fwd = m.copy()
        fwd[:, 2] += fwd[:, :2] @ np.array([x0, y0], np.float64)
        return cv2.warpAffine(crop, fwd, (x1 - x0, y1 - y0), flags=interp | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def region_box(self, own: np.ndarray, target: np.ndarray, frame_hw: tuple[int, int]) -> tuple[int, int, int, int]:
        """The frame box that holds the network's region for this face (clipped to the frame)."""
        m = crop_transform(own, self.geometry, self.size)
        corners = apply_affine(invert_affine(m), np.array([[0, 0], [self.size, 0], [0, self.size], [self.size, self.size]]))
        h, w = frame_hw
        x0, y0 = np.floor(corners.min(0)).astype(int)
        x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
        return max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1))

    def render_box(
        self, frame: np.ndarray, own: np.ndarray, target: np.ndarray, box: tuple[int, int, int, int],
        warp: np.ndarray | None = None,
    ) -> np.ndarray:
        """The synthesised lower face for the frame box ``(x0, y0, x1, y1)`` (BGR uint8, box-sized):
        the network's pixels inside its region, ``warp`` (the retrieval render of the box, used as the
        reference) or else the source outside it. Same call shape as the retrieval warp, for the
        engine's composer (mask, colour match, blend)."""
        x0, y0, x1, y1 = box
        base = frame[y0:y1, x0:x1] if warp is None else warp
        ref_frame = None
        if warp is not None:
            ref_frame = frame.copy()
            ref_frame[y0:y1, x0:x1] = warp
        gen, alpha, m, ref = self.generate(frame, own, target, ref_frame)
        a = self._to_box(alpha, m, box, cv2.INTER_LINEAR)[..., None]
        if warp is not None and self.config.residual:
            # Only the network's correction goes back to frame resolution: the retrieval texture keeps
            # its native detail however small the crop is next to the face.
            delta = gen.astype(np.float32) - ref.astype(np.float32)
            d = self._to_box(delta, m, box, cv2.INTER_LINEAR)
            return np.clip(base + a * d + 0.5, 0, 255).astype(np.uint8)
        g = self._to_box(gen, m, box, cv2.INTER_LINEAR).astype(np.float32)
        return np.clip(base + a * (g - base) + 0.5, 0, 255).astype(np.uint8)

    def render_frame(
        self, frame: np.ndarray, own: np.ndarray, target: np.ndarray, reference_frame: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(new frame, full-frame alpha) with the network's mouth composed in; pixels where the alpha
        is 0 are the source's, bit-identical."""
        h, w = frame.shape[:2]
        full = np.zeros((h, w), np.float32)
        box = self.region_box(own, target, (h, w))
        x0, y0, x1, y1 = box
        out = frame.copy()
        if x1 <= x0 or y1 <= y0:
            return out, full
        gen, alpha, m, _ = self.generate(frame, own, target, reference_frame)
        g = self._to_box(gen, m, box, cv2.INTER_LINEAR).astype(np.float32)
        a = self._to_box(alpha, m, box, cv2.INTER_LINEAR)
        src = frame[y0:y1, x0:x1]
        mixed = np.clip(src + a[..., None] * (g - src) + 0.5, 0, 255).astype(np.uint8)
        out[y0:y1, x0:x1] = np.where((a > 0)[..., None], mixed, src)
        full[y0:y1, x0:x1] = a
        return out, full


def refiner_for(
    video_path: str | Path,
    analysis: object,
    identity_id: int | str,
    *,
    device: torch.device | str = "auto",
    config: RegenConfig | None = None,
    train: bool = True,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> NetRenderer | None:
    """The ``--engine net`` renderer of one speaker: the cached checkpoint, trained first when there is
    none and ``train`` is set (long on a CPU: progress carries the ETA). None when ``train`` is off and
    nothing is cached, so the caller falls back to retrieval."""
    from engine.regen.train import checkpoint_path, train_speaker
    from engine.runtime.compute import resolve_device

    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    cfg = config or RegenConfig.for_device(dev)
    path = checkpoint_path(video_path, identity_id, cfg)
    if train:
        path = train_speaker(video_path, analysis, identity_id, device=dev, config=cfg, progress=progress, cancel=cancel)
    elif not path.is_file() or not load_checkpoint(path).get("done"):
        return None
    return NetRenderer(path, device=dev)
