"""Regeneration network bench: training time to converge, inference speed, and quality against the
retrieval engine, on clips of ../shared/media. Prints tables naming the machine; writes contact sheets.

    python bench/net.py [--clips vox_goatee,vox_beard_full] [--size 96] [--steps 600] [--out DIR]

Training: each clip's speaker is trained on the first 70% of its frames (the checkpoint is cached, so a
second run reuses it and reports the recorded times). Convergence = the validation L1 (held-out
frames of that 70%, no augmentation) has not improved by 1% for ``patience`` measurements; "to
plateau" is the elapsed training time at the best measurement.

Quality: on the last 30% (never trained on), every usable frame is re-rendered with its *own* real
mouth + jaw landmarks as the target (the renderer's part of self-reconstruction, without the audio
model), by (a) the retrieval engine (Viterbi path through the 70% bank, piecewise-affine warp, mask,
colour match, blend), (b) the network fed that retrieval warp as its reference and composed the same
way (the ``--engine net`` hook), (c) the network with its own bank reference and own composition.
Rendered frames are re-landmarked by the face analysis, as QUALITY.md does. Silence behaviour and the
sync meter depend on the audio model, not the renderer: they are not measured here.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.runtime.compute import configure_threads  # noqa: E402


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, {gpu}"


def table(title: str, header: list[str], rows: list[list[object]]) -> None:
    cells = [[str(c) for c in header]] + [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(header))]
    print(f"\n{title}")
    for i, r in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def bench_inference(video: Path, analysis: object, sizes: list[int], device: str, frames: int = 15) -> list[list[object]]:
    """ms per frame of NetRenderer.render_frame (generator + crop + paste back), untrained weights
    (speed does not depend on them), CPU defaults below 256 px and the GPU default at 256 px."""
    import torch

    from engine.media import VideoReader
    from engine.regen import CropGeometry, NetRenderer, RegenConfig
    from engine.regen.crop import apply_affine, crop_transform, warp_crop
    from engine.regen.nets import Generator

    ident = analysis.identities[0]  # type: ignore[attr-defined]
    rows = []
    with VideoReader(video, pixel_format="bgr24") as reader:
        imgs = [(reader.frame(int(f)), ident.landmarks[k]) for k, f in enumerate(ident.frames[:frames])]
    for size in sizes:
        kind = "cuda" if size >= 256 else "cpu"
        cfg = replace(RegenConfig.for_device(kind), crop_size=size)
        g = Generator(cfg.base_channels, cfg.depth, residual=cfg.residual)
        n_params = sum(p.numel() for p in g.parameters())
        geometry = CropGeometry.fit(ident.landmarks)
        m = crop_transform(imgs[0][1], geometry, size)
        bank = {"crops": warp_crop(imgs[0][0], m, size)[None], "landmarks": apply_affine(m, imgs[0][1])[None]}
        state = {"config": asdict(cfg), "geometry": geometry.to_dict(), "generator": g.state_dict(), "bank": bank}
        net = NetRenderer(state, device=device)
        times = []
        for k, (img, lm) in enumerate(imgs):
            t = time.perf_counter()
            net.render_frame(img, lm, lm)
            if torch.cuda.is_available() and net.device.type == "cuda":
                torch.cuda.synchronize()
            if k > 1:
                times.append((time.perf_counter() - t) * 1000)
        rows.append([size, f"base {cfg.base_channels}, depth {cfg.depth}", f"{n_params / 1e6:.2f} M",
                     net.device.type, f"{statistics.median(times):.0f}"])
    return rows


def train_clip(video: Path, analysis: object, size: int, steps: int, device: str) -> tuple[Path, list[object]]:
    from engine.regen import RegenConfig, load_checkpoint, train_speaker

    n = analysis.frame_count  # type: ignore[attr-defined]
    fps = (n - 1) / float(analysis.frame_times[-1] - analysis.frame_times[0])  # type: ignore[attr-defined]
    cfg = replace(RegenConfig.for_device(device), crop_size=size, max_steps=steps, lr=5e-4, adv_start=steps // 2,
                  eval_every=50, patience=4, checkpoint_every=50)
    ident = analysis.identities[0]  # type: ignore[attr-defined]
    ckpt = train_speaker(video, analysis, ident.id, device=device, config=cfg, frame_range=(0, int(0.7 * n)))
    st = load_checkpoint(ckpt)
    hist = st["history"]
    best = min(hist, key=lambda h: h["val_l1"])
    footage_min = st["frames_trained"] / fps / 60
    converged = st["stale"] >= cfg.patience
    row = [video.stem, size, round(footage_min * 60, 1), st["step"], "plateau" if converged else "max steps",
           round(st["elapsed_s"] / 60, 1), round(best["elapsed_s"] / 60, 1),
           round(best["elapsed_s"] / 60 / footage_min, 1), round(best["val_l1"], 2), round(hist[0]["val_l1"], 2)]
    return ckpt, row


def evaluate(video: Path, analysis: object, ckpt: Path, out_dir: Path, device: str) -> list[list[object]]:
    """Held-out quality rows: retrieval, net (retrieval reference), net (own reference)."""
    from engine.compose import ColourMatcher, blend_into, build_mask, compose_polygons, mask_ring
    from engine.faces import FaceTrackingSession, get_backend
    from engine.lipsync.metrics import gradient_ring, jitter, motion_lmd, mouth_box, psnr_ssim
    from engine.lipsync.shape import fit_shape_model
    from engine.lipsync.synth import BankWriter, control_points, feather_px, plan_path, warp_to_box
    from engine.media import VideoReader
    from engine.regen import NetRenderer

    ident = analysis.identities[0]  # type: ignore[attr-defined]
    n = analysis.frame_count  # type: ignore[attr-defined]
    split = int(0.7 * n)
    frames = np.asarray(ident.frames, np.int64)
    lm = np.asarray(ident.landmarks, np.float64)
    usable = ident.flags == 0
    train = usable & (frames < split)
    test = usable & (frames >= split)
    shape = fit_shape_model(lm[train])
    codes = shape.encode_landmarks(lm)
    hw = (analysis.height, analysis.width)  # type: ignore[attr-defined]
    writer = BankWriter(frames[train], codes[train], ident.pose[train], lm[train], hw)
    test_frames = frames[test]
    with VideoReader(video, pixel_format="bgr24", cache_frames=0) as reader:
        for i, img in reader.iter_frames_at(frames[train]):
            writer.add(i, img)
    bank = writer.finish()
    valid = np.ones(len(test_frames), bool)
    path = plan_path(codes[test], ident.pose[test], valid, bank, shape.scale)
    net = NetRenderer(ckpt, device=device)
    engines = ("retrieval", "net (retrieval ref)", "net (own ref)")
    colour = {e: ColourMatcher() for e in engines[:2]}
    rendered: dict[str, list[np.ndarray]] = {e: [] for e in engines}
    originals: list[np.ndarray] = []
    stats: dict[str, dict[str, list[float]]] = {e: {"psnr": [], "ssim": [], "seam": [], "seam_src": []} for e in engines}
    sheet_rows = []
    pick = set(np.linspace(0, len(test_frames) - 1, 8).round().astype(int).tolist())
    net_ms = []
    with VideoReader(video, pixel_format="bgr24", cache_frames=0) as reader:
        k = 0
        pos = {int(f): j for j, f in enumerate(test_frames)}
        for i, img in reader.iter_frames(int(test_frames[0]), int(test_frames[-1]) + 1):
            j = pos.get(int(i))
            if j is None:
                continue
            own = lm[test][j]
            target = own  # the real shape: the renderer's part of self-reconstruction
            mask = build_mask(compose_polygons(own, target, feather_px(own)), hw, feather_px(own))
            x0, y0, x1, y1 = mask.box
            warp = warp_to_box(bank, int(path[j]), control_points(target, own), mask.box)
            t = time.perf_counter()
            net_synth = net.render_box(img, own, target, mask.box, warp=warp)
            net_ms.append((time.perf_counter() - t) * 1000)
            outs = {
                "retrieval": blend_into(img, colour["retrieval"](warp, img[y0:y1, x0:x1], mask), mask),
                "net (retrieval ref)": blend_into(img, colour["net (retrieval ref)"](net_synth, img[y0:y1, x0:x1], mask), mask),
                "net (own ref)": net.render_frame(img, own, target)[0],
            }
            ring = mask_ring(mask, 0.0, 0.3) | ((mask.alpha == 0) & (cv2.dilate((mask.alpha > 0).astype(np.uint8), np.ones((3, 3))) > 0))
            src_seam = gradient_ring(img[y0:y1, x0:x1], ring)
            mb = mouth_box(own, hw)
            for e, o in outs.items():
                p, s = psnr_ssim(o[mb[1] : mb[3], mb[0] : mb[2]], img[mb[1] : mb[3], mb[0] : mb[2]])
                stats[e]["psnr"].append(p)
                stats[e]["ssim"].append(s)
                stats[e]["seam"].append(gradient_ring(o[y0:y1, x0:x1], ring))
                stats[e]["seam_src"].append(src_seam)
                rendered[e].append(o)
            originals.append(img)
            if k in pick:
                cx, cy = own[list(range(468))].mean(0)
                size = int(1.6 * max(x1 - x0, y1 - y0))
                bx0, by0 = int(max(0, cx - size / 2)), int(max(0, cy - size / 2 + 0.15 * size))
                crops = [c[by0 : by0 + size, bx0 : bx0 + size] for c in [img] + [outs[e] for e in engines]]
                crops = [cv2.resize(c, (192, 192), interpolation=cv2.INTER_CUBIC) for c in crops]
                sheet_rows.append(np.concatenate(crops, axis=1))
            k += 1
    out_dir.mkdir(parents=True, exist_ok=True)
    sheet = np.concatenate(sheet_rows, axis=0)
    header = np.full((24, sheet.shape[1], 3), 255, np.uint8)
    for c, name in enumerate(("original", *engines)):
        cv2.putText(header, name, (c * 192 + 4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(out_dir / f"{video.stem}_net_vs_retrieval.png"), np.concatenate([header, sheet], axis=0))

    def relandmark(images: list[np.ndarray]) -> np.ndarray:
        session = FaceTrackingSession(get_backend("builtin"), 25.0, hw[1], hw[0])
        for q, im in enumerate(images):
            session.process(q, q / 25.0, cv2.cvtColor(im, cv2.COLOR_BGR2RGB))
        idents, _ = session.finish(np.arange(len(images)) / 25.0)
        best = max(idents, key=lambda d: len(d.frames))
        out = np.full((len(images), 468, 2), np.nan)
        out[best.frames] = best.landmarks
        return out

    from engine.faces.landmarks import mouth_opening

    ref_lm = relandmark(originals)
    rows = []
    for e in engines:
        got = relandmark(rendered[e])
        ok = np.isfinite(got).all(axis=(1, 2)) & np.isfinite(ref_lm).all(axis=(1, 2))
        lmd, still = motion_lmd(got[ok], ref_lm[ok])
        r = float(np.corrcoef(mouth_opening(got[ok]), mouth_opening(ref_lm[ok]))[0, 1])
        jit = jitter(got[ok]) / max(jitter(ref_lm[ok]), 1e-9)
        seam = float(np.nanmean(stats[e]["seam"]) / max(np.nanmean(stats[e]["seam_src"]), 1e-9))
        rows.append([video.stem, e, int(ok.sum()), round(float(np.mean(stats[e]["psnr"])), 2),
                     round(float(np.mean(stats[e]["ssim"])), 3), round(seam, 2), round(lmd / still, 2), round(r, 2),
                     round(jit, 2)])
    rows.append([video.stem, f"(net render_box median {statistics.median(net_ms):.0f} ms/frame)", "", "", "", "", "", "", ""])
    return rows


def pipeline_eval(clip_path: Path, ckpt: Path, dub: Path, out_dir: Path, device: str) -> list[dict[str, object]]:
    """The lip-sync engine's own evaluation (self-reconstruction on the held-out 30% from the audio, and
    a dubbed render), once with the retrieval renderer and once with the network refining each
    retrieval warp (the ``--engine net`` hook; the network trained once on the first 70%). Same fit,
    same target codes, same measures; the speaker-library prior is left out for both."""
    from engine.pipeline import evaluate as ev
    from engine.regen import NetRenderer

    clip = ev.load_clip(clip_path)
    if clip is None:
        return []
    net = NetRenderer(ckpt, device=device)

    class TrainedNet:
        """The eval's ``net`` choice with the checkpoint trained above (the FrameComposer's refiner
        hook refines each retrieval warp with it)."""

        def refiner(self, clip: object, stop: int | None, cancel: object) -> NetRenderer:
            return net

    rows: list[dict[str, object]] = []
    for engine_name in ("retrieval", "net"):
        sub = out_dir / engine_name
        sub.mkdir(parents=True, exist_ok=True)
        choice = TrainedNet() if engine_name == "net" else None
        row = ev.self_reconstruction(clip, None, sub, None, choice)  # type: ignore[arg-type]
        row.update(ev.dubbed(clip, dub, None, sub, None, choice))  # type: ignore[arg-type]
        row["clip"] = f"{clip.name} [{engine_name}]"
        rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    ap.add_argument("--clips", default="vox_goatee:600,vox_beard_full:400", help="NAME[:MAX_STEPS],...")
    ap.add_argument("--size", type=int, default=96, help="crop size for training (px)")
    ap.add_argument("--steps", type=int, default=600, help="max training steps")
    ap.add_argument("--infer-sizes", default="96,128,256")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=Path("bench_out/net"))
    ap.add_argument("--skip-train", action="store_true", help="inference timing only")
    ap.add_argument("--pipeline-eval", action="store_true",
                    help="also run the lip-sync engine's eval (audio-driven) with each renderer")
    ap.add_argument("--dub", default="dub_german1.wav", help="dubbed track for --pipeline-eval (in media/audio)")
    args = ap.parse_args()
    configure_threads()
    from engine.faces import analyse

    specs = [c.split(":") for c in args.clips.split(",") if c]
    clips = [args.media / "video" / f"{c[0]}.mp4" for c in specs]
    steps = {c[0]: int(c[1]) for c in specs if len(c) > 1}
    missing = [c for c in clips if not c.is_file()]
    if missing:
        print(f"missing clips: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    analyses = {c: analyse(c) for c in clips}
    print(f"machine: {machine()}")
    table("Inference: NetRenderer.render_frame, ms per frame (median)", ["crop px", "generator", "params", "device", "ms/frame"],
          bench_inference(clips[0], analyses[clips[0]], [int(s) for s in args.infer_sizes.split(",")], args.device))
    if args.skip_train:
        return 0
    train_rows, quality_rows, eval_rows = [], [], []
    for c in clips:
        ckpt, row = train_clip(c, analyses[c], args.size, steps.get(c.stem, args.steps), args.device)
        train_rows.append(row)
        if args.pipeline_eval:
            eval_rows += pipeline_eval(c, ckpt, args.media / "audio" / args.dub, args.out / c.stem, args.device)
        try:
            quality_rows += evaluate(c, analyses[c], ckpt, args.out, args.device)
        except ImportError as exc:
            print(f"quality comparison skipped: the retrieval engine is not importable ({exc})", file=sys.stderr)
    table("Training on the first 70% of each clip (CPU unless named)",
          ["clip", "crop px", "footage s", "steps", "stopped at", "train min", "to plateau min",
           "min per min footage", "val L1 best", "val L1 first"], train_rows)
    if quality_rows:
        table("Held-out 30%, target = the real mouth shape (renderer only); ratios vs the source",
              ["clip", "engine", "frames", "mouth PSNR", "mouth SSIM", "seams x", "motion LMD / still", "opening r",
               "jitter x"], quality_rows)
        print(f"\ncontact sheets: {args.out.resolve()}")
    if eval_rows:
        from engine.pipeline.evaluate import format_table

        print("\nThe lip-sync engine's eval, per renderer (no speaker-library prior), dub " + args.dub)
        print(format_table(eval_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
