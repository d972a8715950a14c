"""``lipdub analyse VIDEO``: find, track and identify the faces of a video; print who is on screen.

The result is cached (a later ``analyse`` of the same content, or the app opening the video, reuses it).
``--overlay OUT.mp4`` writes the video with boxes, identity numbers and mouth landmarks drawn on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.runtime.jobs import Progress


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("analyse", help="find, track and identify the faces in a video",
                              description=__doc__)
    p.add_argument("video", type=Path, help="the video file")
    p.add_argument("--backend", choices=("builtin", "insightface"), default="builtin",
                   help="face models: builtin (always available) or insightface (a model pack on disk)")
    p.add_argument("--insightface-dir", type=Path, default=None,
                   help="folder of the insightface model pack (default ~/.insightface/models/buffalo_l)")
    p.add_argument("--overlay", type=Path, default=None, metavar="OUT.mp4",
                   help="also write the video with faces, ids and mouth landmarks drawn on it")
    p.add_argument("--stills", type=Path, default=None, metavar="DIR",
                   help="with --overlay: also save a few overlay frames as PNG images in DIR")
    p.add_argument("--no-cache", action="store_true", help="analyse again even when a cached result exists")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


_last_step: dict[str, int] = {}


def _progress(p: Progress) -> None:
    eta = f", {p.eta_s:.0f} s left" if p.eta_s is not None else ""
    if sys.stderr.isatty():
        print(f"\r{p.stage}: {100 * p.fraction:5.1f}%{eta}   ", end="", file=sys.stderr, flush=True)
        if p.fraction >= 1.0:
            print(file=sys.stderr)
        return
    step = int(p.fraction * 4)  # a log file gets a line per quarter
    if _last_step.get(p.stage) != step:
        _last_step[p.stage] = step
        print(f"{p.stage}: {100 * p.fraction:.0f}%{eta}", file=sys.stderr, flush=True)


def _ranges(ranges: list[tuple[float, float]], limit: int = 6) -> str:
    text = ", ".join(f"{a:.2f}-{b:.2f}s" for a, b in ranges[:limit])
    return text + (f" (+{len(ranges) - limit} more)" if len(ranges) > limit else "")


def run(args: argparse.Namespace) -> int:
    from engine.faces import analyse, get_backend

    backend = get_backend(args.backend, args.insightface_dir)
    show = None if args.json else _progress
    result = analyse(args.video, backend=backend, progress=show, use_cache=not args.no_cache)
    if args.overlay is not None:
        from engine.faces.overlay import write_overlay

        stills = {}
        if args.stills is not None:
            args.stills.mkdir(parents=True, exist_ok=True)
            n = max(1, result.frame_count)
            stills = {int(n * q): args.stills / f"{args.video.stem}_{int(n * q):05d}.png" for q in (0.1, 0.4, 0.7, 0.95)}
        write_overlay(args.video, result, args.overlay, stills=stills, progress=show)
    if args.json:
        doc = {"video": str(args.video), "backend": result.backend, "width": result.width, "height": result.height,
               "frame_count": result.frame_count, "cuts": result.cuts, "message": result.message,
               "identities": [i.summary() for i in result.identities]}
        print(json.dumps(doc, indent=1))
        return 0
    print(f"{args.video}: {result.width}x{result.height}, {result.frame_count} frames, backend {result.backend}, "
          f"{len(result.cuts)} cut(s)")
    if not result.identities:
        print(f"  {result.message}")
    for ident in result.identities:
        s = ident.summary()
        pose = s["pose_range"]
        pct = 100.0 * s["frames_present"] / max(1, result.frame_count)
        print(f"  person {s['id']}: {s['frames_present']} frames ({pct:.0f}%), tracks {s['tracks']}, "
              f"face {s['mean_face_size']:.0f} px, yaw {pose['yaw'][0]:+.0f}..{pose['yaw'][1]:+.0f}, "
              f"pitch {pose['pitch'][0]:+.0f}..{pose['pitch'][1]:+.0f}, roll {pose['roll'][0]:+.0f}..{pose['roll'][1]:+.0f}")
        print(f"    on screen: {_ranges(ident.time_ranges)}")
    if args.overlay is not None:
        print(f"overlay: {args.overlay}")
    return 0
