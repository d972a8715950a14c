"""``lipdub train-net VIDEO [--face ID]``: train the regeneration network for one speaker of a video.

Self-reconstruction on the speaker's own frames; the checkpoint is cached per video content, face and
settings, so a later ``render --engine net`` (or the app) finds it. Ctrl-C stops after saving a
checkpoint; running the same command again resumes there. On a CPU this takes long: the progress line
gives an ETA (an upper bound: training stops early once the validation error stops improving).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from engine.runtime.jobs import Progress


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train-net", help="train the regeneration network for a speaker", description=__doc__)
    p.add_argument("video", type=Path, help="the video file")
    p.add_argument("--face", type=int, default=None, help="face id from `lipdub analyse` (default: the most present)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument("--size", type=int, default=None, help="crop size in pixels (default 256 on CUDA, 128 on CPU)")
    p.add_argument("--steps", type=int, default=None, help="maximum training steps")
    p.add_argument("--restart", action="store_true", help="start over instead of resuming a checkpoint")
    p.set_defaults(func=run)


def _progress(p: Progress) -> None:
    eta = f", at most {p.eta_s / 60:.0f} min left" if p.eta_s is not None else ""
    end = "\n" if p.fraction >= 1.0 or not sys.stderr.isatty() else ""
    print(f"\r{p.stage}: {100 * p.fraction:5.1f}%{eta} {p.message}   ", end=end, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from engine.errors import BadInputError
    from engine.faces import analyse
    from engine.regen import RegenConfig, load_checkpoint, train_speaker
    from engine.runtime.compute import configure_threads, resolve_device

    configure_threads()
    device = resolve_device(args.device)
    analysis = analyse(args.video, progress=_progress)
    if not analysis.identities:
        raise BadInputError("no faces found in this video", args.video)
    face = args.face
    if face is None:
        face = max(analysis.identities, key=lambda i: len(i.frames)).id
    cfg = RegenConfig.for_device(device)
    if args.size:
        cfg = replace(cfg, crop_size=args.size)
    if args.steps:
        cfg = replace(cfg, max_steps=args.steps)
    ckpt = train_speaker(args.video, analysis, face, device=device, config=cfg, progress=_progress,
                         resume=not args.restart)
    state = load_checkpoint(ckpt)
    best = min((h["val_l1"] for h in state["history"]), default=float("nan"))
    print(f"{args.video}: face {face} trained, {state['step']} steps, {state['elapsed_s'] / 60:.1f} min, "
          f"validation L1 {best:.2f} (0-255); checkpoint {ckpt}")
    return 0
