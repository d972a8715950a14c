"""Face analysis speed: frames per second of ``engine.faces.analyse`` (decode + detect/mesh + tracking +
identity + smoothing), single face, at 224x224, 720p, 1080p and 1080x1920 portrait.

Uses the real clips in ../shared/media/video (720p is the 1080p presenter clip scaled down and encoded
once to a temporary file). Each row is the median of ``--runs`` runs, with a decode-only pass of the same
file in the same run for the ratio. ``--memory`` adds peak memory for the 720p clip and for 8 times its
length (it must not grow). ``--single-reading`` runs the tracker as before the averaged readings: one mesh
reading per face and frame instead of the mean of four (engine.faces.builtin.MESH_SHIFT), and the
identity check's landmark-jump trigger at 0.02 (``--memory`` always uses the default backend).
Run: ``.venv/bin/python bench/faces.py [--runs 3] [--memory] [--single-reading]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.faces import AnalysisSettings, analyse, get_backend  # noqa: E402
from engine.faces.builtin import BuiltinBackend  # noqa: E402
from engine.media import VideoReader, VideoWriter  # noqa: E402

MEDIA = Path(os.environ.get("LIPDUB_SHARED_MEDIA", ROOT.parent / "shared" / "media")) / "video"


def _scaled_copy(src: Path, dst: Path, width: int, height: int) -> Path:
    with VideoReader(src) as r, VideoWriter(dst, width, height, fps=r.fps, crf=18) as w:
        for i, rgb in r.iter_frames():
            w.write(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA), float(r.frame_times[i]))
    return dst


def _decode_fps(path: Path) -> float:
    t = time.perf_counter()
    with VideoReader(path) as r:
        n = sum(1 for _ in r.iter_frames())
    return n / (time.perf_counter() - t)


_PEAK = """
import sys
from engine.faces import analyse
r = analyse(sys.argv[1], use_cache=False)
hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM')][0].split()[1]
print(r.frame_count, int(hwm) // 1024)
"""


def _looped(src: Path, dst: Path, width: int, height: int, times: int) -> Path:
    """The clip played forwards and backwards ``times`` times (one continuous shot), scaled."""
    with VideoReader(src) as r:
        n, fps = len(r), r.fps
    with VideoWriter(dst, width, height, fps=fps, preset="ultrafast") as w:
        with VideoReader(src) as r:
            for k in range(times):
                order = range(n) if k % 2 == 0 else range(n - 1, -1, -1)
                for i in order:
                    w.write(cv2.resize(r.frame(i), (width, height), interpolation=cv2.INTER_AREA))
    return dst


def _peak_memory(path: Path) -> tuple[int, int]:
    """(frames, peak resident MiB) of a fresh process analysing ``path`` (VmHWM: this process only)."""
    out = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, cwd=ROOT,
                         check=True).stdout.split()
    return int(out[0]), int(out[1])


def memory_table(tmp: str) -> None:
    src = MEDIA / "presenter_kim_1080p.mp4"
    print("peak memory, 720p single face (fresh process each):")
    print(f"{'frames':>7} {'seconds':>8} {'peak MiB':>9}")
    for times in (1, 8):
        n, mib = _peak_memory(_looped(src, Path(tmp, f"loop{times}.mp4"), 1280, 720, times))
        print(f"{n:>7} {n / 30:>8.1f} {mib:>9}")


def stage_table(backend: object) -> None:
    """Median milliseconds of each model step on one 720p frame with one face."""
    from engine.faces.builtin import roi_from_landmarks
    from engine.media import read_frame

    be: Any = backend
    rgb = cv2.resize(read_frame(MEDIA / "presenter_kim_1080p.mp4", 100), (1280, 720), interpolation=cv2.INTER_AREA)
    det = be.detect(rgb)[0]
    mesh = be.landmarks_from_detection(rgb, det)
    reads = 4 if be.averaged else 1
    steps = {
        "detect (whole frame)": lambda: be.detect(rgb),
        "detect_small (tiles)": lambda: be.detect_small(rgb),
        f"mesh, following a face ({reads} reading{'s' if reads > 1 else ''})": lambda: be.follow(rgb, mesh.points),
        "one mesh reading": lambda: be.mesh.run(rgb, roi_from_landmarks(mesh.points)),
        f"mesh from a detection (1 + {reads} readings)": lambda: be.landmarks_from_detection(rgb, det),
        "identity embedding (dlib)": lambda: be.embed(rgb, mesh.points),
    }
    print("model steps on a 720p frame, one face (median of 15):")
    for name, fn in steps.items():
        times = []
        for _ in range(15):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        print(f"  {name:<40} {1000 * statistics.median(times):7.2f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--memory", action="store_true", help="also peak memory for a clip and 8x its length")
    ap.add_argument("--single-reading", action="store_true",
                    help="one mesh reading per face and frame instead of the mean of four shifted ones")
    args = ap.parse_args()
    if not MEDIA.is_dir():
        print(f"real clips not found at {MEDIA}")
        return 1
    # loaded once: model loading is not part of the per-video rate
    backend = BuiltinBackend(averaged=False) if args.single_reading else get_backend()
    # the identity check's landmark-jump trigger the single reading was run with
    settings = AnalysisSettings(shape_jump=0.02) if args.single_reading else None
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            ("224x224", MEDIA / "vox_goatee.mp4"),
            ("1280x720", _scaled_copy(MEDIA / "presenter_kim_1080p.mp4", Path(tmp, "kim720.mp4"), 1280, 720)),
            ("1920x1080", MEDIA / "presenter_kim_1080p.mp4"),
            ("1080x1920 portrait", MEDIA / "latentsync_demo1_portrait.mp4"),
        ]
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(f"machine: {os.cpu_count()} CPU cores, no GPU; load before: {load}; mesh readings per face and "
              f"frame: {1 if args.single_reading else 4}")
        print(f"{'resolution':<20} {'clip':<32} {'frames':>6} {'analysis fps':>13} {'decode-only fps':>16} "
              f"{'ratio':>6} {'ms/frame':>9}")
        for label, path in cases:
            fps_runs, dec_runs = [], []
            n = 0
            for _ in range(args.runs):
                dec_runs.append(_decode_fps(path))
                t = time.perf_counter()
                result = analyse(path, backend=backend, use_cache=False, settings=settings)
                dt = time.perf_counter() - t
                n = result.frame_count
                fps_runs.append(n / dt)
            fps, dec = statistics.median(fps_runs), statistics.median(dec_runs)
            print(f"{label:<20} {path.name:<32} {n:>6} {fps:>13.1f} {dec:>16.1f} {fps / dec:>6.2f} "
                  f"{1000 / fps:>9.2f}")
        print(f"load after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
        stage_table(backend)
        if args.memory:
            memory_table(tmp)  # the default backend, whatever --single-reading says
    return 0


if __name__ == "__main__":
    sys.exit(main())
