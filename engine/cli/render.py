"""Lip-sync a video to dubbed audio, in one of two forms:

``lipdub render VIDEO --track AUDIO[:FACE] ... --out OUT.mp4`` (direct) or
``lipdub render --project P.json [--language de ...] [--language-mode M] [--audio A] --out OUT.mp4``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import EXIT_CANCELLED, EXIT_OK, BadInputError, Cancelled, LipdubError

if TYPE_CHECKING:
    from engine.pipeline.render import AssignmentSync


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "render",
        help="regenerate the speakers' mouths so the video's lips match dubbed audio",
        description="Learn each speaker from the video itself and regenerate their mouth to match the "
        "dubbed audio. With one person on screen no --face is needed; with several, the most present "
        "one is used unless named. Give several --track AUDIO:FACE pairs for several speakers.",
    )
    p.add_argument("video", nargs="?", help="the original video (with the speakers' own audio); or give --project")
    p.add_argument("--project", metavar="P.json", help="render a saved project (its tracks, assignments, settings)")
    p.add_argument("--language", action="append", metavar="LANG",
                   help="--project: export only this language (repeatable; default: every assigned language)")
    p.add_argument("--language-mode", choices=["file_per_language", "one_file_multi_track"],
                   help="--project with several languages: OUT.de.mp4, OUT.fr.mp4... or one file with a "
                   "tagged audio track per language (default: the project's setting)")
    p.add_argument("--audio", choices=["dub_only", "dub_plus_original", "original_ducked"],
                   help="--project: the audio mix (default: the project's setting)")
    p.add_argument("--engine", choices=["retrieval", "net"], default=None,
                   help="mouth renderer: retrieval (default) or the per-speaker regeneration network "
                   "(trained first when not cached: slow without a GPU)")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default=None,
                   help="compute device for --engine net (default auto, or the project's setting)")
    p.add_argument("--track", action="append", metavar="AUDIO[:FACE]",
                   help="a dubbed audio file, optionally with the face id it drives (repeatable)")
    p.add_argument("--face", help="face id for tracks given without one (see `lipdub analyse`)")
    p.add_argument("--offset", type=float, default=0.0, help="seconds the dub starts after the video (default 0)")
    p.add_argument("--out", required=True, help="output video file (.mp4, .mov, .mkv)")
    p.add_argument("--no-library", action="store_true",
                   help="neither use nor extend the local speaker library (the prior learned from other videos)")
    p.add_argument("--json", action="store_true",
                   help="progress as JSON lines on stderr; the result as one JSON line on stdout")
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


def _usage(msg: str) -> BadInputError:
    return BadInputError(msg, hint="use `lipdub render VIDEO --track AUDIO --out OUT.mp4` or "
                         "`lipdub render --project P.json --out OUT.mp4`")


def run(args: argparse.Namespace) -> int:
    """The render; with ``--json`` the outcome is always one JSON line on stdout: ``{"event": "done",
    "outputs": [...], "sync": [...]}`` (``sync``: the predicted lip-sync score of each assignment, see
    engine.pipeline.render.AssignmentSync) or ``{"event": "error", "exit_code": N, "message": ...}`` (then the usual
    error on stderr and the exit code)."""
    try:
        return _run(args)
    except (LipdubError, Cancelled, KeyboardInterrupt) as exc:
        if args.json:
            code = exc.exit_code if isinstance(exc, (LipdubError, Cancelled)) else EXIT_CANCELLED
            print(json.dumps({"event": "error", "exit_code": code, "message": str(exc) or "cancelled"},
                             ensure_ascii=False), flush=True)
        raise


def _run(args: argparse.Namespace) -> int:
    from engine.pipeline.export import TerminalProgress
    from engine.pipeline.render import TrackAssignment, project_for_video, render_project
    from engine.runtime.compute import configure_threads

    configure_threads()
    if (args.video is None) == (args.project is None):
        raise _usage("give exactly one of VIDEO or --project")
    project: Any = None
    video: Path | None = None
    assignments: list[TrackAssignment] = []
    if args.project is not None:
        from engine.project.store import load_project

        if args.track or args.face or args.offset:
            raise _usage("--track, --face and --offset belong to the direct form, not to --project")
        project = load_project(Path(args.project))
        engine = args.engine or project.render.engine
        device = args.device or project.render.device
        languages, language_mode, audio_mode = args.language, args.language_mode, args.audio
    else:
        if args.language or args.language_mode or args.audio:
            raise _usage("--language, --language-mode and --audio belong to --project")
        if not args.track:
            raise _usage("the direct form needs at least one --track AUDIO[:FACE]")
        video = Path(args.video)
        if not video.is_file():
            raise BadInputError("video not found", path=video)
        for spec in args.track:
            path, face = parse_track(spec, args.face)
            assignments.append(TrackAssignment(path, face, args.offset))
        engine, device = args.engine or "retrieval", args.device or "auto"
        languages, language_mode, audio_mode = None, "one_file_multi_track", "dub_only"
    progress = TerminalProgress(json_lines=args.json)
    sync: list[tuple[str | None, AssignmentSync]] = []
    try:
        if project is None and video is not None:
            # Finding the most present face analyses the video: minutes on long footage, reported.
            project = project_for_video(video, assignments, progress)
        results: list[Any] = render_project(
            project, Path(args.out), languages=languages, language_mode=language_mode, audio_mode=audio_mode,
            engine=engine, device=device, use_library=not args.no_library, progress=progress,
            on_sync=lambda lang, scores: sync.extend((lang, s) for s in scores),
        )
    finally:
        progress.close()
    if args.json:
        print(json.dumps({"event": "done", "outputs": [r.to_dict() for r in results],
                          "sync": [{"language": lang, **s.to_dict()} for lang, s in sync]}, ensure_ascii=False),
              flush=True)
    else:
        for r in results:
            print(f"wrote {r.path}: {r.frames} frames, {r.rendered} with a new mouth, {r.fps:.1f} fps")
        for lang, s in sync:
            print(sync_line(s, lang))
    return EXIT_OK


def _z(value: float | None) -> str:
    from engine.lipsync.metrics import score_text

    return score_text(value) or "not measurable"


def sync_line(s: AssignmentSync, language: str | None = None) -> str:
    """``lip sync, face 0 with dub.wav (de): 3.1 (the speaker's own voice: 2.8; 2 or more is a clear
    match)``: the predicted score of one assignment's planned mouth against its dub."""
    where = f" ({language})" if language else ""
    return (f"lip sync, face {s.face} with {s.audio_path.name}{where}: {_z(s.z)} "
            f"(the speaker's own voice: {_z(s.own_z)}; 2 or more is a clear match)")
