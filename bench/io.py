"""Media I/O speed: decode fps and encode fps at 720p and 1080p, printed as a table.

Sources: the 1080p presenter clip in ../shared/media/video (30 fps, 223 frames) and a 720p copy of
it, both re-encoded once with libx264 veryfast crf 18 (GOP 250, B-frames) into a temporary folder, so
the decode numbers are for the H.264 files this program writes. Without the shared media, textured
synthetic frames are used. Rows:

- decode, iter_frames: ``VideoReader.iter_frames`` (sequential, RGB24 numpy arrays out)
- decode, frame(i) in order: ``VideoReader.frame`` called for 0, 1, 2... (must not seek)
- decode, random frame(i): 20 random indices (each a seek to the keyframe before + decode forward)
- encode: ``VideoWriter`` libx264 veryfast crf 18, yuv420p, from RGB24 arrays held in memory

Each number is the median of ``--runs`` runs. The machine is shared: the load average is printed before
and after. Run: ``.venv/bin/python bench/io.py [--runs 3] [--frames 150]``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import cpu_description, load_average  # noqa: E402

from engine.media import VideoReader, VideoWriter, probe  # noqa: E402

MEDIA = Path(os.environ.get("LIPDUB_SHARED_MEDIA", ROOT.parent / "shared" / "media")) / "video"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}








def _source_frames(width: int, height: int, n: int) -> list[np.ndarray]:
    """n RGB frames: the presenter clip scaled to the size, else moving synthetic texture."""
    import cv2

    clip = MEDIA / "presenter_kim_1080p.mp4"
    frames: list[np.ndarray] = []
    if clip.exists():
        with VideoReader(clip) as r:
            while len(frames) < n:  # loop the clip if it is shorter than n
                for _, rgb in r.iter_frames():
                    frames.append(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
                                  if rgb.shape[:2] != (height, width) else rgb)
                    if len(frames) == n:
                        break
        return frames
    rng = np.random.RandomState(0)
    base = cv2.resize(rng.randint(0, 255, (height // 8, width // 8, 3), np.uint8), (width * 2, height * 2))
    for i in range(n):
        x, y = (i * 7) % width, (i * 3) % height
        frames.append(np.ascontiguousarray(base[y : y + height, x : x + width]))
    return frames


def _median(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


def bench(runs: int, n_frames: int) -> list[tuple[str, str, float, str]]:
    rows: list[tuple[str, str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="lipdub-bench-io-") as tmp:
        for label, (w, h) in SIZES.items():
            frames = _source_frames(w, h, n_frames)
            src = Path(tmp) / f"src_{label}.mp4"

            def encode(path: Path = src, frames: list[np.ndarray] = frames, w: int = w, h: int = h) -> float:
                t = time.perf_counter()
                with VideoWriter(path, w, h, fps=30, codec="libx264", crf=18, preset="veryfast") as wr:
                    for i, f in enumerate(frames):
                        wr.write(f, i / 30)
                return len(frames) / (time.perf_counter() - t)

            enc = _median(runs, encode)
            n = probe(src, use_cache=False).require_video().frame_count

            def dec_iter(path: Path = src) -> float:
                t = time.perf_counter()
                with VideoReader(path, cache_frames=0) as r:
                    k = sum(1 for _ in r.iter_frames())
                return k / (time.perf_counter() - t)

            def dec_index(path: Path = src) -> float:
                t = time.perf_counter()
                with VideoReader(path, cache_frames=0) as r:
                    for i in range(len(r)):
                        r.frame(i)
                return len(r) / (time.perf_counter() - t)

            def dec_random(path: Path = src, n: int = n) -> float:
                idx = random.Random(0).sample(range(n), 20)
                t = time.perf_counter()
                with VideoReader(path, cache_frames=0) as r:
                    for i in idx:
                        r.frame(i)
                return len(idx) / (time.perf_counter() - t)

            rows.append((label, "decode, iter_frames (sequential)", _median(runs, dec_iter), f"{n} frames"))
            rows.append((label, "decode, frame(i) in order", _median(runs, dec_index), f"{n} frames"))
            rows.append((label, "decode, random frame(i)", _median(runs, dec_random), "20 seeks, GOP 250"))
            rows.append((label, "encode libx264 veryfast crf 18", enc, f"{len(frames)} frames"))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--frames", type=int, default=150)
    args = ap.parse_args()
    import av

    print(f"machine: {cpu_description()}")
    print(f"PyAV {av.__version__}, FFmpeg libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}")
    print(f"load average before: {load_average()}  (the machine is shared: other jobs may slow these numbers)")
    rows = bench(args.runs, args.frames)
    print(f"load average after:  {load_average()}")
    print()
    print(f"| size  | {'operation':<34} | {'fps':>7} | ms/frame | {'notes':<18} |")
    print(f"|-------|{'-' * 36}|---------|----------|{'-' * 20}|")
    for size, op, fps, note in rows:
        print(f"| {size:<5} | {op:<34} | {fps:7.1f} | {1000 / fps:8.1f} | {note:<18} |")
    print(f"\nmedian of {args.runs} runs each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
