"""What the landmarker reads of a dubbed render, against what the render was asked to show.

    python bench/readings.py [--media DIR] [--clips a,b,...]

For every clip of ``DIR/video`` (default ../shared/media): the dubbed render of ``lipdub eval`` (same
dub, same leave-one-out library prior, same fit), traced frame by frame
(``engine.pipeline.evaluate.dub_trace``): the opening each frame's target asks for, the mesh's
reading of the rendered frame and of the original, and its reading of the two source frames whose
textures were blended in. Nothing is written but the table. About a minute per clip once the
analyses are cached (one render per clip, no self-reconstruction, no independent landmarker).

Columns:
- ``level``: the closure level of the rest and closure measures (the speaker's resting opening plus
  a quarter of their speech range);
- ``leak``: slope of (render reading - target) on (original - target) over the rendered frames: the
  share of the original mouth's opening that comes back in the reading of the render (0: none);
- ``closed``: speech frames whose target is at or below the level; ``src``: the share of them whose
  first source reads at or below it too (second source in brackets); ``read``: the share whose
  render reads at or below it;
- ``close T / R``: closures per second of speech against the real mouth's, counted on the targets
  (the landmarks asked for, with no tracker filter: not the eval's measure) and on the render
  (the eval's ``close_ratio``);
- ``rest T / src / R``: in the dub's silences, the share of frames at or below the level: target,
  first source, render (the eval's ``rest_rate``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_description, load_average


def leak_slope(trace: dict[str, Any]) -> float:
    t, r, o = trace["target"], trace["render"], trace["original"]
    ok = np.isfinite(t) & np.isfinite(r) & np.isfinite(o)
    if int(ok.sum()) < 10 or np.std(o[ok] - t[ok]) <= 0:
        return float("nan")
    x, y = o[ok] - t[ok], r[ok] - t[ok]
    return float(np.polyfit(x, y, 1)[0])


def summarise(name: str, trace: dict[str, Any], own_speech: np.ndarray) -> dict[str, Any]:
    from engine.pipeline.evaluate import _closures_per_s

    level, fps = float(trace["level"]), float(trace["fps"])
    t, r, first, second = trace["target"], trace["render"], trace["first"], trace["second"]
    speech, silence = trace["speech"], trace["silence"]
    closed = speech & np.isfinite(t) & (t <= level)

    def share(a: np.ndarray, sel: np.ndarray) -> float:
        sel = sel & np.isfinite(a)
        return float(np.mean(a[sel] <= level)) if sel.any() else float("nan")

    own = _closures_per_s(trace["original"], own_speech, level, fps)
    return {
        "clip": name, "level": level, "leak": leak_slope(trace), "closed": int(closed.sum()),
        "src": share(first, closed), "src2": share(second, closed), "read": share(r, closed),
        "close_t": _closures_per_s(t, speech, level, fps) / own if own else float("nan"),
        "close_r": _closures_per_s(r, speech, level, fps) / own if own else float("nan"),
        "rest_t": share(t, silence), "rest_src": share(first, silence), "rest_r": share(r, silence),
    }


def run(media: Path, names: list[str] | None) -> list[dict[str, Any]]:
    from engine.pipeline.evaluate import dub_for, dubbed, list_clips, list_dubs, load_library

    all_clips = list_clips(media)
    dubs = list_dubs(media)
    clips, library = load_library(media, list_clips(media, names))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path, clip in clips.items():
            dub = dub_for(path, all_clips, dubs)
            if dub is None:
                continue
            trace: dict[str, Any] = {}
            dubbed(clip, dub, library.prior_for(clip.name), Path(tmp), None, trace=trace)
            if trace:
                rows.append(summarise(clip.name, trace, clip.signals.speech))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--media", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "media")
    ap.add_argument("--clips", default="", help="comma-separated clip names (default: all)")
    args = ap.parse_args()
    if not (args.media / "video").is_dir():
        print(f"no clips: {args.media / 'video'} is not a folder", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    rows = run(args.media, [Path(c).stem for c in args.clips.split(",") if c] or None)
    print(f"machine: {cpu_description()}; load {load_average()}")
    print("| clip | level | leak | closed | src (2nd) | read | close T / R | rest T / src / R |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clip']} | {r['level']:.3f} | {r['leak']:+.2f} | {r['closed']} | {r['src']:.2f} ({r['src2']:.2f}) | "
              f"{r['read']:.2f} | {r['close_t']:.2f} / {r['close_r']:.2f} | "
              f"{r['rest_t']:.2f} / {r['rest_src']:.2f} / {r['rest_r']:.2f} |")
    print(f"\n({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
