"""Export speed and memory: the streamed export against a plain decode + encode pass, and peak RSS for a
1-minute and a 10-minute 1080p input. Prints two tables.

Speed (per size, 720p and 1080p; each number the median of ``--runs`` runs, all in the same process):

- ``decode+encode``: the reference, a plain single-threaded loop: PyAV decodes each frame and hands it
  straight to libx264 (same preset/CRF as the export). The I/O limit of the machine.
- ``export, pass-through``: :func:`export_video` with no renderer (threads, queues, atomic output).
- ``export, trivial renderer``: every frame goes to RGB, a renderer inverts a mouth-sized box
  (1/5 x 1/5 of the frame), and the changed pixels are spliced back into the YUV frame.
- ``ratio`` = export fps / decode+encode fps, measured in the same run.

Sources: the 1080p presenter clip in ../shared/media/video (30 fps, 223 frames) re-encoded to 1080p and
720p (libx264 veryfast CRF 18); without the shared media, textured synthetic frames.

Memory: a 1-minute and a 10-minute 1080p input, made by looping the 1080p source with stream copy, are
exported pass-through in fresh child processes; the peak RSS (VmHWM) of each is reported. The long run
uses ``--rss-preset`` (default ultrafast) so it finishes in minutes on 2 cores: memory, not speed, is
measured there.

Run: ``.venv/bin/python bench/export.py [--runs 3] [--frames 150] [--rss-minutes 1 10] [--skip-rss]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import av.video.stream
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import cpu_description, load_average  # noqa: E402

from engine.media import probe  # noqa: E402
from engine.pipeline.export import ExportSettings, export_video  # noqa: E402

MEDIA = Path(os.environ.get("LIPDUB_SHARED_MEDIA", ROOT.parent / "shared" / "media")) / "video"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}








def _peak_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------------
# Inputs


def _encode_clip(frames_iter, path: Path, width: int, height: int, rate: Fraction) -> Path:
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=rate)
        assert isinstance(vs, av.video.stream.VideoStream)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "veryfast", "crf": "18"}
        for i, frame in enumerate(frames_iter):
            frame.pts = i
            frame.time_base = 1 / rate
            frame.pict_type = av.video.frame.PictureType.NONE
            c.mux(vs.encode(frame))
        c.mux(vs.encode(None))
    return path


def make_sources(folder: Path, n_frames: int) -> dict[str, Path]:
    """1080p and 720p H.264 clips of ``n_frames`` frames."""
    src = MEDIA / "presenter_kim_1080p.mp4"
    out: dict[str, Path] = {}
    for name, (w, h) in SIZES.items():
        path = folder / f"src_{name}.mp4"
        if src.is_file():
            def frames(w: int = w, h: int = h):
                with av.open(str(src)) as c:
                    for k, f in enumerate(c.decode(video=0)):
                        if k >= n_frames:
                            return
                        yield f.reformat(width=w, height=h, format="yuv420p")
            rate = Fraction(30)
        else:
            rng = np.random.default_rng(0)
            base = rng.integers(0, 255, (h // 8, w // 8, 3), np.uint8).repeat(8, 0).repeat(8, 1)

            def frames(base: np.ndarray = base):
                for k in range(n_frames):
                    yield av.VideoFrame.from_ndarray(np.roll(base, 4 * k, axis=1), format="rgb24")
            rate = Fraction(30)
        out[name] = _encode_clip(frames(), path, w, h, rate)
    return out


def make_long(src: Path, dst: Path, minutes: float) -> Path:
    """Loop ``src`` by stream copy (no re-encode) until it lasts ``minutes``."""
    info = probe(src).video
    assert info is not None
    clip_ticks = round(info.duration / float(info.time_base))
    loops = max(1, int(np.ceil(minutes * 60 / info.duration)))
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for k in range(loops):
            inp.seek(0, stream=vin)
            for packet in inp.demux(vin):
                if packet.dts is None:
                    continue
                packet.pts += k * clip_ticks
                packet.dts += k * clip_ticks
                packet.stream = vout
                out.mux(packet)
    return dst


# --------------------------------------------------------------------------------------------------
# Runs


def plain_decode_encode(src: Path, dst: Path, preset: str, crf: float) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vs = out.add_stream("libx264", rate=vin.average_rate)
        assert isinstance(vs, av.video.stream.VideoStream)
        vs.width, vs.height, vs.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        vs.time_base = vin.time_base
        vs.codec_context.time_base = vin.time_base
        vs.options = {"preset": preset, "crf": f"{crf:g}"}
        for frame in inp.decode(vin):
            frame.pict_type = av.video.frame.PictureType.NONE
            out.mux(vs.encode(frame))
            n += 1
        out.mux(vs.encode(None))
    return n, time.perf_counter() - t0


class InvertBox:
    """A trivial renderer: inverts a mouth-sized box (1/5 x 1/5 of the frame) on every frame."""

    def __call__(self, index: int, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        out = frame.copy()
        y0, x0 = h * 3 // 5, w * 2 // 5
        out[y0 : y0 + h // 5, x0 : x0 + w // 5] = 255 - out[y0 : y0 + h // 5, x0 : x0 + w // 5]
        return out


def timed_export(src: Path, dst: Path, settings: ExportSettings, renderer=None) -> tuple[int, float]:
    t0 = time.perf_counter()
    result = export_video(src, dst, frame_renderer=renderer, settings=settings)
    return result.frames, time.perf_counter() - t0


def speed_table(folder: Path, runs: int, n_frames: int, preset: str, crf: float) -> list[tuple]:
    sources = make_sources(folder, n_frames)
    settings = ExportSettings(preset=preset, crf=crf, faststart=False)
    rows = []
    for name, src in sources.items():
        res: dict[str, list[float]] = {"plain": [], "pass": [], "render": []}
        for _ in range(runs):
            n, dt = plain_decode_encode(src, folder / "plain.mp4", preset, crf)
            res["plain"].append(n / dt)
            n, dt = timed_export(src, folder / "pass.mp4", settings)
            res["pass"].append(n / dt)
            n, dt = timed_export(src, folder / "render.mp4", settings, InvertBox())
            res["render"].append(n / dt)
        plain = statistics.median(res["plain"])
        rows.append((name, n, plain, statistics.median(res["pass"]), statistics.median(res["render"])))
        print(f"  {name}: done", file=sys.stderr)
    return rows


def child_export(src: str, dst: str, preset: str) -> None:
    """Run in a fresh process: export pass-through, print frames, fps and peak RSS as JSON."""
    t0 = time.perf_counter()
    result = export_video(src, dst, settings=ExportSettings(preset=preset, faststart=False))
    dt = time.perf_counter() - t0
    print(json.dumps({"frames": result.frames, "fps": result.frames / dt, "seconds": dt,
                      "peak_rss_mib": _peak_rss_mib()}))


def rss_table(folder: Path, minutes: list[float], preset: str) -> list[tuple]:
    src = folder / "src_1080p.mp4"
    if not src.is_file():
        make_sources(folder, 150)
    rows = []
    for m in minutes:
        long = make_long(src, folder / f"long_{m:g}min.mp4", m)
        info = probe(long).video
        assert info is not None
        proc = subprocess.run(
            [sys.executable, __file__, "--child-export", str(long), str(folder / "long_out.mp4"), preset],
            capture_output=True, text=True, check=True,
        )
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append((f"{m:g} min 1080p", info.frame_count, data["fps"], data["peak_rss_mib"]))
        long.unlink()
        print(f"  {m:g} min: done", file=sys.stderr)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--crf", type=float, default=18)
    ap.add_argument("--rss-minutes", type=float, nargs="*", default=[1, 10])
    ap.add_argument("--rss-preset", default="ultrafast")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--child-export", nargs=3, metavar=("SRC", "DST", "PRESET"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_export:
        child_export(*args.child_export)
        return
    print(f"machine: {cpu_description()}; PyAV {av.__version__}; load before: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="lipdub-bench-export-") as tmp:
        folder = Path(tmp)
        if not args.skip_speed:
            rows = speed_table(folder, args.runs, args.frames, args.preset, args.crf)
            print(f"\nExport speed (libx264 {args.preset} CRF {args.crf:g}, {args.frames} frames, median of {args.runs})")
            print("| size | frames | decode+encode fps | export pass-through fps | ratio | export + trivial renderer fps | ratio |")
            print("|---|---|---|---|---|---|---|")
            for name, n, plain, pas, ren in rows:
                print(f"| {name} | {n} | {plain:.1f} | {pas:.1f} | {pas / plain:.2f} | {ren:.1f} | {ren / plain:.2f} |")
        if not args.skip_rss and args.rss_minutes:
            rows = rss_table(folder, args.rss_minutes, args.rss_preset)
            print(f"\nPeak memory, pass-through export in a fresh process (libx264 {args.rss_preset})")
            print("| input | frames | export fps | peak RSS (MiB) |")
            print("|---|---|---|---|")
            for name, n, fps, rss in rows:
                print(f"| {name} | {n} | {fps:.1f} | {rss:.0f} |")
    print(f"\nload after: {load_average()}")


if __name__ == "__main__":
    main()
