"""``lipdub probe FILE [--json] [--frames]``: what the media probe finds in a file."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.errors import EXIT_BAD_INPUT, EXIT_OK


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "probe",
        help="show the streams, frame rate, rotation and frame timing of a media file",
        description="Show what Lipdub Studio finds in a media file: container, video and audio streams, "
        "frame rate (average and real, VFR), rotation, colour, and the time of every frame.",
    )
    p.add_argument("file", help="a video or audio file")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--frames", action="store_true", help="also list every frame's time (pts)")
    p.add_argument("--no-cache", action="store_true", help="ignore the cached frame-time table")
    p.set_defaults(func=run)


def _fmt_duration(s: float | None) -> str:
    if s is None:
        return "?"
    m, sec = divmod(s, 60)
    return f"{int(m)}:{sec:06.3f} ({s:.3f} s)" if m else f"{s:.3f} s"


def _fmt_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{n} B"
        size /= 1024
    return f"{n} B"


def run(args: argparse.Namespace) -> int:
    from engine.media import probe

    info = probe(args.file, use_cache=not args.no_cache)
    try:
        if args.json:
            json.dump(info.to_dict(frames=args.frames), sys.stdout, indent=2, ensure_ascii=False)
            sys.stdout.write("\n")
        else:
            print(render_text(info, frames=args.frames))
        sys.stdout.flush()
    except BrokenPipeError:  # `lipdub probe x --frames | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    v = info.video
    if v is not None and v.frame_count == 0:
        print(f"lipdub: error: {info.path}: video stream contains no frames (zero-length video)", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def render_text(info: Any, frames: bool = False) -> str:
    rows: list[tuple[str, str]] = [
        ("file", str(info.path)),
        ("container", f"{info.format_long_name} ({info.format_name})"),
        ("duration", _fmt_duration(info.duration)),
        ("size", _fmt_size(info.size_bytes) + (f", {info.bit_rate / 1000:.0f} kb/s" if info.bit_rate else "")),
    ]
    lines = []
    for v in info.videos:
        rate = f"{v.avg_fps:.3f} fps average, {v.real_fps:.3f} real" + (" (VFR)" if v.is_vfr else " (constant)")
        size = f"{v.width}x{v.height}"
        if (v.coded_width, v.coded_height) != (v.width, v.height):
            size += f" as displayed (stored {v.coded_width}x{v.coded_height})"
        names = v.color.names
        rows += [
            (f"video #{v.index}", f"{v.codec_long} ({v.codec}{', ' + v.profile if v.profile else ''})"),
            ("  size", size + (f", sample aspect {v.sample_aspect_ratio}" if v.sample_aspect_ratio not in (None, 1) else "")),
            ("  rotation", f"{v.rotation}° clockwise" if v.rotation else "none"),
            ("  pixel format", v.pix_fmt),
            ("  colour", f"range {names['range']}, matrix {names['space']}, primaries {names['primaries']}, "
                         f"transfer {names['trc']}"),
            ("  frame rate", rate),
            ("  frames", f"{v.frame_count} ({len(v.keyframes)} keyframes), first at {v.start_time:.3f} s, "
                         f"lasting {_fmt_duration(v.duration)}"),
            ("  time base", str(v.time_base)),
        ]
        if v.truncated:
            rows.append(("  TRUNCATED", "the file is cut short or damaged: only the frames listed can be read"))
    for a in info.audio:
        extra = []
        if a.language and a.language != "und":
            extra.append(f"language {a.language}")
        if a.title:
            extra.append(f'"{a.title}"')
        if a.default:
            extra.append("default")
        rows.append((
            f"audio #{a.index}",
            f"{a.codec}, {a.sample_rate} Hz, {a.channels} ch ({a.layout}), {_fmt_duration(a.duration)}"
            + (", " + ", ".join(extra) if extra else ""),
        ))
    for o in info.other_streams:
        rows.append((f"{o['type']} #{o['index']}", str(o["codec"])))
    width = max(len(k) for k, _ in rows)
    lines += [f"{k:<{width}}  {val}" for k, val in rows]
    warnings = list(info.warnings) + [w for v in info.videos for w in v.warnings]
    for w in warnings:
        lines.append(f"warning: {w}")
    if frames:
        for v in info.videos:
            lines.append("")
            lines.append(f"frames of video #{v.index} (index, pts, time s, keyframe):")
            keys = set(int(k) for k in v.keyframes)
            for i, (p, t) in enumerate(zip(v.pts, v.frame_times, strict=True)):
                lines.append(f"{i:6d}  {int(p):10d}  {t:10.6f}{'  K' if i in keys else ''}")
    return "\n".join(lines)
