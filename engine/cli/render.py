"""``lipdub render VIDEO --track AUDIO[:FACE] ... --out OUT.mp4``: lip-sync a video to dubbed audio."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.errors import EXIT_OK, BadInputError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "render",
        help="regenerate the speakers' mouths so the video's lips match dubbed audio",
        description="Learn each speaker from the video itself and regenerate their mouth to match the "
        "dubbed audio. With one person on screen no --face is needed; with several, the most present "
        "one is used unless named. Give several --track AUDIO:FACE pairs for several speakers.",
    )
    p.add_argument("video", help="the original video (with the speakers' own audio)")
    p.add_argument("--track", action="append", required=True, metavar="AUDIO[:FACE]",
                   help="a dubbed audio file, optionally with the face id it drives (repeatable)")
    p.add_argument("--face", help="face id for tracks given without one (see `lipdub analyse`)")
    p.add_argument("--offset", type=float, default=0.0, help="seconds the dub starts after the video (default 0)")
    p.add_argument("--out", required=True, help="output video file (.mp4, .mov, .mkv)")
    p.add_argument("--no-library", action="store_true",
                   help="neither use nor extend the local speaker library (the prior learned from other videos)")
    p.add_argument("--json", action="store_true", help="progress as JSON lines on stderr")
    p.set_defaults(func=run)


def parse_track(spec: str, default_face: str | None) -> tuple[Path, str | None]:
    """``AUDIO`` or ``AUDIO:FACE`` (a Windows drive letter's colon is not a face separator)."""
    path, face = spec, default_face
    head, sep, tail = spec.rpartition(":")
    if sep and head and not Path(spec).exists() and len(head) > 1 and "/" not in tail and "\\" not in tail:
        path, face = head, tail
    p = Path(path)
    if not p.is_file():
        raise BadInputError("audio track not found", path=p)
    return p, face


def run(args: argparse.Namespace) -> int:
    from engine.pipeline.export import TerminalProgress
    from engine.pipeline.render import TrackAssignment, render_video
    from engine.runtime.compute import configure_threads

    configure_threads()
    video = Path(args.video)
    if not video.is_file():
        raise BadInputError("video not found", path=video)
    assignments = []
    for spec in args.track:
        path, face = parse_track(spec, args.face)
        assignments.append(TrackAssignment(path, face, args.offset))
    progress = TerminalProgress(json_lines=args.json)
    try:
        result: Any = render_video(video, Path(args.out), assignments, use_library=not args.no_library,
                                   progress=progress)
    finally:
        progress.close()
    print(f"wrote {result.path}: {result.frames} frames, {result.rendered} with a new mouth, "
          f"{result.fps:.1f} fps")
    return EXIT_OK
