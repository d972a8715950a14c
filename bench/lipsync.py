"""Lip-sync engine speed, printed as a table.

Rows:
- fit: seconds to fit one speaker (shape model, audio model, texture bank) per minute of their speech,
  on the 20 s portrait clip (face analysis and audio features are separate stages, cached, not counted)
- render, engine only: frames per second of decode + mouth replacement (no encode), one face
- export, end to end: ``render_video`` minus its preparation (decode + render + libx264 + AAC mux)
  at 720p and 1080p, one face, and a decode + encode-only export of the same clip in the same run
- preview: ``RenderSession.render_frame`` latency, cold (first request after opening the session) and
  warm (the next frame), medians over several positions

Sources: the 1080p presenter clip in ../shared/media/video and a 720p copy of it written once into a
temporary folder. Run: ``.venv/bin/python bench/lipsync.py [--runs 3]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.media import AudioTrack, VideoReader, VideoWriter, decode_audio  # noqa: E402
from engine.runtime.compute import configure_threads  # noqa: E402

MEDIA = Path(os.environ.get("LIPDUB_SHARED_MEDIA", ROOT.parent / "shared" / "media"))


def scaled_copy(src: Path, dst: Path, width: int, height: int) -> Path:
    """A resized copy of ``src`` with its audio (the speaker is learnt from it)."""
    sound = decode_audio(src, sample_rate=48000, channels=2)
    tracks = [AudioTrack(sound.samples, 48000)]
    with VideoReader(src) as r, VideoWriter(dst, width, height, fps=r.fps, audio_tracks=tracks) as w:
        for _, rgb in r.iter_frames():
            w.write(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))
    return dst


def bench_fit(runs: int) -> tuple[float, float]:
    from engine.pipeline.evaluate import load_clip
    from engine.pipeline.fit import fit_speaker

    clip = load_clip(MEDIA / "video" / "latentsync_demo3_portrait.mp4")
    assert clip is not None
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            t0 = time.perf_counter()
            fit_speaker(clip.path, clip.track, clip.signals, clip.speaking, bank_path=Path(tmp) / "bank.npy")
            times.append(time.perf_counter() - t0)
    speech_min = float(np.sum(clip.speaking)) / clip.fps / 60.0
    return statistics.median(times), speech_min


def bench_video(path: Path, dub: Path, runs: int) -> dict[str, float]:
    from engine.pipeline.export import ExportSettings, export_video
    from engine.pipeline.render import (
        TrackAssignment,
        frames_to_render,
        open_session,
        prepare_render,
    )
    from engine.pipeline.session import FrameComposer, render_frames

    prepared = prepare_render(path, [TrackAssignment(dub)], use_library=False)
    n = prepared.frame_count
    out: dict[str, list[float]] = {"engine_fps": [], "export_fps": [], "io_fps": [], "cold_ms": [], "warm_ms": []}
    todo = frames_to_render(prepared)
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            t0 = time.perf_counter()
            render_frames(path, prepared.plans, lambda i, f: None)
            out["engine_fps"].append(n / (time.perf_counter() - t0))
            composer = FrameComposer(prepared.plans)
            t0 = time.perf_counter()
            export_video(path, Path(tmp) / "out.mp4", frame_renderer=composer, needs_render=todo,
                         settings=ExportSettings(renderer_pixel_format="bgr24"))
            out["export_fps"].append(n / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            export_video(path, Path(tmp) / "io.mp4", frame_renderer=None)
            out["io_fps"].append(n / (time.perf_counter() - t0))
        for pos in np.linspace(10, n - 5, 5).astype(int):
            session = open_session(prepared)
            t0 = time.perf_counter()
            session.render_frame(int(pos))
            out["cold_ms"].append(1000 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            session.render_frame(int(pos) + 1)
            out["warm_ms"].append(1000 * (time.perf_counter() - t0))
            session.close()
    res = {k: statistics.median(v) for k, v in out.items()}
    res["changed"] = float(len(todo))
    res["frames"] = float(n)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not (MEDIA / "video").is_dir():
        print(f"no media at {MEDIA}: nothing to measure", file=sys.stderr)
        return 1
    threads = configure_threads()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU used, torch threads {threads}, "
          f"load average {os.getloadavg()[0]:.2f}")
    fit_s, speech_min = bench_fit(args.runs)
    print(f"fit: {fit_s:.2f} s for {speech_min * 60:.1f} s of speech = {fit_s / speech_min:.1f} s per minute of speech")
    src = MEDIA / "video" / "presenter_kim_1080p.mp4"
    dub = MEDIA / "audio" / "dub_german1.wav"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        p720 = scaled_copy(src, Path(tmp) / "presenter_720p.mp4", 1280, 720)
        for label, path in (("720p", p720), ("1080p", src)):
            r = bench_video(path, dub, args.runs)
            rows.append((label, r))
    print()
    print("| size | frames with a new mouth | engine fps (decode+render) | export fps (end to end) | decode+encode only fps | export / io | preview cold ms | preview warm ms |")
    print("|---|---|---|---|---|---|---|---|")
    for label, r in rows:
        print(f"| {label} | {r['changed']:.0f} of {r['frames']:.0f} | {r['engine_fps']:.1f} | {r['export_fps']:.1f} | {r['io_fps']:.1f} | "
              f"{r['export_fps'] / r['io_fps']:.2f} | {r['cold_ms']:.0f} | {r['warm_ms']:.0f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}; medians of {args.runs} runs (preview: 5 positions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
