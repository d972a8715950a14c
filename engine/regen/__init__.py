"""Regeneration network: a per-speaker generator (U-Net) and patch discriminator that synthesise the
lower face for target mouth landmarks, learned from the speaker's own footage by self-reconstruction.

Public API::

    from engine.regen import RegenConfig, train_speaker, NetRenderer
    ckpt = train_speaker(video, analysis, identity_id, device="auto", progress=fn, cancel=token)
    net = NetRenderer(ckpt, device="auto")
    synth = net.render_box(frame, own_landmarks, target_landmarks, box, warp=retrieval_synth)  # composer hook
    result, alpha = net.render_frame(frame, own_landmarks, target_landmarks)                  # self-composed
    net = refiner_for(video, analysis, identity_id, device="auto", train=False)  # cached one or None

Frames are BGR uint8 (the engine's render format); landmarks (468, 2) image pixels.

Integration as ``--engine net``: the retrieval composer calls ``render_box`` on each face's warp
(``synth = plan.refiner.render_box(frame, own, target, mask.box, warp=synth)`` right after the warp),
with ``plan.refiner = refiner_for(video, analysis, identity)``; mask, colour match and blend stay
the composer's, so every pixel outside its mask is untouched. Retrieval stays the default: on the clips
measured, the network gains mouth PSNR/SSIM but damps the audio-driven mouth motion.
"""

from engine.regen.crop import CropGeometry, crop_transform, region_alpha
from engine.regen.infer import NetRenderer, refiner_for
from engine.regen.train import RegenConfig, checkpoint_path, load_checkpoint, train_speaker

__all__ = [
    "CropGeometry",
    "NetRenderer",
    "RegenConfig",
    "checkpoint_path",
    "crop_transform",
    "load_checkpoint",
    "refiner_for",
    "region_alpha",
    "train_speaker",
]
