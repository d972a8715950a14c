"""Per-speaker training of the regeneration network by self-reconstruction.

The target is the real frame, the target shape its own landmarks, the reference another frame of the
same speaker warped onto that shape. Losses: L1 + SSIM on the region, LSGAN from a patch
discriminator conditioned on the landmark map, and a temporal term (the change between consecutive
frames t, t + 1 must match the real change). One code path for every device: on CUDA it runs under
``torch.autocast`` with a ``GradScaler``; on CPU in float32 with smaller defaults.

Convergence: the masked L1 on held-out frames (no augmentation, fixed references) is measured every
``eval_every`` steps; training stops when it has not improved by ``min_improvement`` (relative) for
``patience`` measurements, or at ``max_steps``.

Checkpoints live in ``cache_dir("regen")``, keyed by the video's content hash, the identity, the frame
range and the config: a cancelled or interrupted job resumes where it stopped; a finished one returns
at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import BadInputError, Cancelled
from engine.regen.crop import CropGeometry
from engine.regen.data import Batch, SpeakerCrops, extract_crops, make_batch
from engine.regen.nets import (
    Generator,
    PatchDiscriminator,
    blend,
    lsgan_d_loss,
    lsgan_g_loss,
    masked_mean,
    patch_weight,
    region_weight,
    ssim_map,
)
from engine.runtime.jobs import CancelToken, Progress, ProgressFn, check_cancel
from engine.runtime.paths import cache_dir

log = logging.getLogger("lipdub.regen.train")

REGEN_VERSION = 3
BANK_SIZE = 48


@dataclass(frozen=True)
class RegenConfig:
    """Everything that shapes a trained model (part of the checkpoint key)."""

    crop_size: int = 128
    base_channels: int = 16
    depth: int = 4
    residual: bool = True  #: output = reference + learned correction (see nets.Generator)
    fixed_region: bool = True  #: show the network the speaker's fixed region, not the frame's own (no leak)
    disc_channels: int = 32
    batch_pairs: int = 4  #: pairs of consecutive frames per step (the batch is twice this)
    max_steps: int = 3000
    lr: float = 2e-4
    w_l1: float = 1.0
    w_ssim: float = 0.5
    w_adv: float = 0.05
    w_temporal: float = 0.5
    adv_start: int = 300  #: steps of reconstruction alone before the discriminator joins
    eval_every: int = 100
    patience: int = 5
    min_improvement: float = 0.01
    max_frames: int = 3000
    val_pairs: int = 8
    checkpoint_every: int = 200
    seed: int = 0

    @classmethod
    def for_device(cls, device: torch.device | str, **overrides: Any) -> RegenConfig:
        """Defaults for the device: 256 px and a wider net on CUDA; 128 px on CPU."""
        kind = device if isinstance(device, str) else device.type
        base = cls(crop_size=256, base_channels=32, depth=5, disc_channels=64, batch_pairs=8, max_steps=20000,
                   eval_every=250, checkpoint_every=500) if kind == "cuda" else cls()
        return replace(base, **overrides)

    def key(self) -> str:
        d = asdict(self)
        d.pop("checkpoint_every")
        return json.dumps(d, sort_keys=True)


def checkpoint_path(video_path: str | Path, identity_id: int | str, config: RegenConfig,
                    frame_range: tuple[int, int] | None = None) -> Path:
    """Where the checkpoint of this speaker, footage and config is cached."""
    from engine.media import content_hash

    parts = [content_hash(video_path), str(identity_id), config.key(), str(frame_range), str(REGEN_VERSION)]
    return cache_dir("regen") / (hashlib.sha256("|".join(parts).encode()).hexdigest()[:32] + ".pt")


def find_identity(analysis: Any, identity_id: int | str, video_path: str | Path | None = None) -> Any:
    for ident in getattr(analysis, "identities", []):
        if str(ident.id) == str(identity_id):
            return ident
    raise BadInputError(f"no face with id {identity_id} in the analysis", video_path,
                        hint="run the face analysis and pick one of the faces it found")


def build_models(config: RegenConfig, device: torch.device) -> tuple[Generator, PatchDiscriminator]:
    g = Generator(config.base_channels, config.depth, residual=config.residual).to(device)
    d = PatchDiscriminator(config.disc_channels).to(device)
    return g, d


def _tensors(batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    arrays = {"inputs": batch.inputs(), "target": batch.target, "alpha": batch.alpha, "lmap": batch.lmap}
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device, non_blocking=True) for k, v in arrays.items()}


def generator_losses(config: RegenConfig, g: Generator, d: PatchDiscriminator | None,
                     t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """(total loss, its parts, the blended output) for one batch of consecutive-frame pairs."""
    gen = g(t["inputs"])
    out = blend(gen.float(), t["target"], t["alpha"])
    w = region_weight(t["alpha"])
    l1 = masked_mean((out - t["target"]).abs(), w)
    ssim = 1.0 - masked_mean(ssim_map(out, t["target"]), w)
    # Temporal: the change from frame t to t + 1 must be the real change.
    d_out = out[1::2] - out[0::2]
    d_tgt = t["target"][1::2] - t["target"][0::2]
    temporal = masked_mean((d_out - d_tgt).abs(), torch.maximum(w[0::2], w[1::2]))
    total = config.w_l1 * l1 + config.w_ssim * ssim + config.w_temporal * temporal
    parts = {"l1": float(l1.detach()), "ssim": float(ssim.detach()), "temporal": float(temporal.detach())}
    if d is not None:
        score = d(out, t["lmap"])
        adv = lsgan_g_loss(score, patch_weight(t["alpha"], score))
        total = total + config.w_adv * adv
        parts["adv"] = float(adv.detach())
    return total, parts, out


def _atomic_save(obj: dict[str, Any], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def reference_bank(data: SpeakerCrops, k: int = BANK_SIZE) -> dict[str, np.ndarray]:
    """Training frames spread over the speaker's range of mouth opening (the render-time references
    when no retrieval warp is given): crops and landmarks in unpadded crop pixels."""
    from engine.faces.landmarks import LOWER_LIP_INNER_MID, UPPER_LIP_INNER_MID

    idx = np.nonzero(~data.val)[0]
    opening = data.landmarks[idx, LOWER_LIP_INNER_MID, 1] - data.landmarks[idx, UPPER_LIP_INNER_MID, 1]
    order = idx[np.argsort(opening, kind="stable")]
    pick = order[np.unique(np.linspace(0, len(order) - 1, min(k, len(order))).round().astype(int))]
    p, s = data.pad, data.size
    return {"crops": np.ascontiguousarray(data.crops[pick, p : p + s, p : p + s]),
            "landmarks": (data.landmarks[pick] - p).astype(np.float32),
            "frames": data.frames[pick].astype(np.int64)}


def region_of(data: SpeakerCrops) -> np.ndarray | None:
    """The fixed region in unpadded crop pixels (what rendering uses)."""
    p, s = data.pad, data.size
    return None if data.region is None else np.ascontiguousarray(data.region[p : p + s, p : p + s])


def train_speaker(
    video_path: str | Path,
    analysis: Any,
    identity_id: int | str,
    *,
    device: torch.device | str = "auto",
    config: RegenConfig | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    resume: bool = True,
    frame_range: tuple[int, int] | None = None,
) -> Path:
    """Train (or finish training) the network for one speaker of a video; returns the checkpoint path.

    ``analysis``: the video's :class:`engine.faces.FaceAnalysis`; ``identity_id``: the face to learn.
    ``frame_range``: learn only from frames ``[start, stop)`` (the eval holds the rest out).
    Progress reports carry an ETA (an upper bound: training may converge before ``max_steps``).
    Raises :class:`Cancelled` after saving a checkpoint the next call resumes from."""
    from engine.runtime.compute import configure_threads, resolve_device

    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    if dev.type == "cpu":
        configure_threads()
    cfg = config or RegenConfig.for_device(dev)
    identity = find_identity(analysis, identity_id, video_path)
    path = checkpoint_path(video_path, identity_id, cfg, frame_range)
    state: dict[str, Any] | None = None
    if resume and path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except (OSError, RuntimeError, EOFError) as exc:
            log.warning("ignoring unreadable regen checkpoint %s: %s", path, exc)
        if state is not None and state.get("done"):
            return path
    elif not resume:
        path.unlink(missing_ok=True)

    data = extract_crops(video_path, identity, size=cfg.crop_size, frame_range=frame_range,
                         max_frames=cfg.max_frames, progress=progress, cancel=cancel)
    train_pairs, val_pairs = data.pairs(False), data.pairs(True)
    if len(train_pairs) == 0:
        raise BadInputError("no two consecutive usable frames of this face to train on", video_path)
    if len(val_pairs) == 0:
        val_pairs = train_pairs
    torch.manual_seed(cfg.seed)
    g, d = build_models(cfg, dev)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler(dev.type, enabled=amp)
    rng = np.random.default_rng(cfg.seed)
    step, history, best, stale, elapsed_before = 0, [], float("inf"), 0, 0.0
    best_weights: dict[str, torch.Tensor] | None = None  # the generator at its best validation error
    best_seen = float("inf")
    if state is not None:
        g.load_state_dict(state["generator"])
        d.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        scaler.load_state_dict(state["scaler"])
        rng.bit_generator.state = state["rng"]
        step, history = int(state["step"]), list(state["history"])
        best, stale, elapsed_before = float(state["best"]), int(state["stale"]), float(state["elapsed_s"])
        best_weights = state.get("generator_best")
        best_seen = float(state.get("best_seen", best))
        log.info("resuming regen training at step %d from %s", step, path)
    val_batch = _tensors(make_batch(data, val_pairs, np.random.default_rng(12345), cfg.val_pairs, augment=False,
                                   fixed_region=cfg.fixed_region), dev)

    def snapshot(done: bool) -> dict[str, Any]:
        return {
            "version": REGEN_VERSION, "config": asdict(cfg), "geometry": data.geometry.to_dict(),
            "generator": g.state_dict(), "generator_best": best_weights if best_weights is not None else g.state_dict(),
            "discriminator": d.state_dict(), "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(), "scaler": scaler.state_dict(), "rng": rng.bit_generator.state,
            "step": step, "history": history, "best": best, "best_seen": best_seen, "stale": stale, "done": done,
            "elapsed_s": elapsed_before + (time.monotonic() - t0), "frames_trained": int((~data.val).sum()),
            "bank": reference_bank(data), "region": region_of(data), "source": str(video_path), "identity": str(identity_id),
        }

    t0 = time.monotonic()
    start_step = step
    converged = False
    try:
        while step < cfg.max_steps and not converged:
            check_cancel(cancel)
            t = _tensors(make_batch(data, train_pairs, rng, cfg.batch_pairs, fixed_region=cfg.fixed_region), dev)
            use_adv = step >= cfg.adv_start and cfg.w_adv > 0
            with torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
                loss, parts, out = generator_losses(cfg, g, d if use_adv else None, t)
            opt_g.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt_g)
            if use_adv:
                with torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
                    real, fake = d(t["target"], t["lmap"]), d(out.detach(), t["lmap"])
                    d_loss = lsgan_d_loss(real, fake, patch_weight(t["alpha"], real))
                opt_d.zero_grad(set_to_none=True)
                scaler.scale(d_loss).backward()
                scaler.step(opt_d)
            scaler.update()
            step += 1
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                val = validation_l1(g, val_batch, amp)
                history.append({"step": step, "val_l1": val, "train": parts,
                                "elapsed_s": elapsed_before + time.monotonic() - t0})
                if val < best_seen:
                    best_seen = val
                    best_weights = {k: v.detach().clone() for k, v in g.state_dict().items()}
                if val < best * (1.0 - cfg.min_improvement):
                    best, stale = val, 0
                else:
                    stale += 1
                converged = stale >= cfg.patience
            if step % cfg.checkpoint_every == 0:
                _atomic_save(snapshot(False), path)
            if progress is not None:
                rate = (time.monotonic() - t0) / max(1, step - start_step)
                last = history[-1]["val_l1"] if history else float("nan")
                progress(Progress("regen: training", step, cfg.max_steps, rate * (cfg.max_steps - step),
                                  f"step {step}, loss {float(loss.detach()):.3f}, validation L1 {last:.4f}"))
    except Cancelled:
        _atomic_save(snapshot(False), path)
        raise
    _atomic_save(snapshot(True), path)
    log.info("regen training of %s face %s done at step %d (validation L1 %.4f)", video_path, identity_id, step, best)
    return path


@torch.no_grad()
def validation_l1(g: Generator, t: dict[str, torch.Tensor], amp: bool = False) -> float:
    """Mean absolute error (0-255 scale) inside the region on held-out frames."""
    was = g.training
    g.eval()
    with torch.autocast(t["inputs"].device.type, dtype=torch.float16, enabled=amp):
        gen = g(t["inputs"])
    out = blend(gen.float(), t["target"], t["alpha"])
    val = float(masked_mean((out - t["target"]).abs(), (t["alpha"] > 0).float())) * 127.5
    g.train(was)
    return val


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's contents (raises BadInputError for a missing, foreign or broken file)."""
    p = Path(path)
    try:
        state: dict[str, Any] = torch.load(p, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise BadInputError(f"regeneration checkpoint cannot be read: {exc}", p) from exc
    if state.get("version") != REGEN_VERSION:
        raise BadInputError(f"regeneration checkpoint version {state.get('version')} is not {REGEN_VERSION}", p,
                            hint="train the speaker again")
    return state


def geometry_of(state: dict[str, Any]) -> CropGeometry:
    return CropGeometry(**state["geometry"])
