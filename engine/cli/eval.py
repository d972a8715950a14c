"""``lipdub eval [--media DIR] [--out DIR] [--clips ...]``: QUALITY.md sections 1-3 on real clips."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.errors import EXIT_OK, BadInputError


def default_media() -> Path:
    return Path(__file__).resolve().parents[3] / "shared" / "media"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="measure lip-sync quality on a folder of clips (self-reconstruction, dubbed, integrity)",
        description="For every clip in MEDIA/video: fit on the first 70%% and render the rest from its "
        "own audio (opening r, motion LMD, mouth PSNR/SSIM); render it with a dub from MEDIA/audio "
        "(sync meter with its reference rows, natural motion, rest in silences); untouched pixels, "
        "jitter and seams. The openings are measured twice: with the engine's own landmarker and with an "
        "independent one (dlib's 68 points; the *_ind columns). Prints one table; writes a contact sheet "
        "and a side-by-side mp4 per clip.",
    )
    p.add_argument("--media", default=str(default_media()), help="folder with video/ and audio/ (default ../shared/media)")
    p.add_argument("--out", default="eval-out", help="folder for the contact sheets, side-by-sides and results.json")
    p.add_argument("--clips", nargs="*", help="only these clips (file names or stems)")
    p.add_argument("--engine", choices=["retrieval", "net"], default="retrieval",
                   help="mouth renderer to measure: retrieval (default) or the per-speaker regeneration network "
                   "(trained per clip when not cached; the self-reconstruction trains on the first 70%% only)")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto", help="compute device for --engine net")
    p.add_argument("--no-independent", dest="independent", action="store_false",
                   help="skip the second measurement with the independent landmarker (the *_ind columns)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.pipeline.evaluate import format_table, run_eval, summary
    from engine.runtime.compute import configure_threads

    configure_threads()
    media = Path(args.media)
    if not (media / "video").is_dir():
        raise BadInputError("no video/ folder here", path=media, hint="point --media at a folder with video/ and audio/")
    out = Path(args.out)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rows = run_eval(media, out, args.clips, say=say, engine=args.engine, device=args.device,
                    independent=args.independent)
    print(format_table(rows))
    (out / "results.json").write_text(json.dumps({"rows": rows, "summary": summary(rows) if rows else {}},
                                                 indent=1, default=float))
    print(f"\ncontact sheets and side-by-sides in {out}")
    return EXIT_OK
