"""Lip-sync on long footage: does memory, disk and time stay bounded as the video gets longer?

For each length (default 1 and 10 minutes): the 1080p presenter clip from ../shared/media, scaled to
``--size`` once, is looped with its audio by stream copy to that length; a dub from audio/ is looped to
the same length; ``lipdub render VIDEO --track DUB --out OUT --no-library --json`` then runs in a fresh
child process with empty cache and data folders (face analysis, audio features, speaker fit, texture
bank, render and export all counted). Printed per length: frames, wall seconds (and per stage, from
the progress lines), end-to-end fps, the child's peak RSS (VmHWM), the texture bank's size on disk and
the number of source frames it holds.

Run: ``.venv/bin/python bench/lipsync_long.py [--minutes 1 10] [--size 720p]``. The 10-minute run takes
about a quarter of an hour on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.media import AudioTrack, VideoReader, VideoWriter, decode_audio  # noqa: E402

MEDIA = Path(os.environ.get("LIPDUB_SHARED_MEDIA", ROOT.parent / "shared" / "media"))
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
SOURCE = "presenter_kim_1080p.mp4"
DUB = "dub_english3"


def scaled_copy(src: Path, dst: Path, width: int, height: int) -> Path:
    sound = decode_audio(src, sample_rate=48000, channels=2)
    with VideoReader(src) as r, VideoWriter(dst, width, height, fps=r.fps,
                                            audio_tracks=[AudioTrack(sound.samples, 48000)]) as w:
        for _, rgb in r.iter_frames():
            w.write(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))
    return dst


def loop_av(src: Path, dst: Path, minutes: float) -> Path:
    """``src`` (video + audio) repeated by stream copy until it lasts ``minutes``."""
    with av.open(str(src)) as inp:
        duration = float(inp.duration or 0) / av.time_base
    loops = max(1, int(np.ceil(minutes * 60 / duration)))
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = [inp.streams.video[0], inp.streams.audio[0]]
        outs = {s.index: out.add_stream_from_template(s) for s in streams}
        for k in range(loops):
            inp.seek(0)
            for packet in inp.demux(streams):
                if packet.dts is None or packet.pts is None or packet.time_base is None:
                    continue
                shift = round(k * duration / float(packet.time_base))
                packet.pts += shift
                packet.dts += shift
                packet.stream = outs[packet.stream.index]
                out.mux(packet)
    return dst


def loop_wav(src: Path, dst: Path, seconds: float) -> Path:
    sound = decode_audio(src, sample_rate=16000, channels=1)
    mono = np.asarray(sound.samples, np.float32).reshape(-1)
    reps = int(np.ceil(seconds * 16000 / len(mono)))
    pcm = (np.clip(np.tile(mono, reps)[: int(seconds * 16000)], -1, 1) * 32767).astype("<i2")
    with wave.open(str(dst), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return dst


def find_dub() -> Path:
    for p in sorted((MEDIA / "audio").glob(f"{DUB}.*")):
        return p
    raise SystemExit(f"no {DUB} in {MEDIA / 'audio'}")


def run_length(folder: Path, source: Path, minutes: float) -> dict[str, float | str]:
    video = loop_av(source, folder / f"long_{minutes:g}.mp4", minutes)
    with VideoReader(video) as r:
        frames, fps = len(r), float(r.fps)
    dub = loop_wav(find_dub(), folder / f"dub_{minutes:g}.wav", frames / fps)
    cache, data = folder / f"cache_{minutes:g}", folder / f"data_{minutes:g}"
    env = dict(os.environ, LIPDUB_CACHE_DIR=str(cache), LIPDUB_DATA_DIR=str(data))
    out = folder / f"out_{minutes:g}.mp4"
    t0 = time.perf_counter()
    stages: dict[str, float] = {}
    current = ["start"]
    stage_peak: dict[str, float] = {}

    def sample(pid: int, stop: threading.Event) -> None:
        while not stop.wait(0.2):
            try:
                text = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                return
            for row in text.splitlines():
                if row.startswith("VmRSS:"):
                    mib = int(row.split()[1]) / 1024
                    stage_peak[current[0]] = max(stage_peak.get(current[0], 0.0), mib)

    with subprocess.Popen([sys.executable, "-m", "engine", "render", str(video), "--track", str(dub), "--out", str(out),
                           "--no-library", "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        stop = threading.Event()
        sampler = threading.Thread(target=sample, args=(proc.pid, stop), daemon=True)
        sampler.start()
        last_stage, last_t = None, t0
        for line in proc.stderr:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            stage = event.get("stage") if isinstance(event, dict) else None
            if stage == "prepare" and event.get("message"):  # "faces: ...", "audio: ...", "fit: ..."
                stage = str(event["message"]).split(":")[0]
            if stage and stage != last_stage:
                now = time.perf_counter()
                if last_stage is not None:
                    stages[last_stage] = stages.get(last_stage, 0.0) + now - last_t
                last_stage, last_t = stage, now
                current[0] = stage
        result = proc.stdout.read()
        stop.set()
        sampler.join()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the largest so far
        code = proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if last_stage is not None:
        stages[last_stage] = stages.get(last_stage, 0.0) + wall - (last_t - t0)
    if code != 0:
        raise SystemExit(f"render of {minutes:g} min failed ({code}): {result[-2000:]}")
    peak = usage.ru_maxrss / 1024
    banks = list((cache / "banks").glob("*.npy"))
    bank_bytes = sum(b.stat().st_size for b in banks)
    bank_frames = sum(int(np.load(b, mmap_mode="r").shape[0]) for b in banks)
    for p in (video, dub, out):
        p.unlink(missing_ok=True)
    return {"minutes": minutes, "frames": frames, "wall": wall, "fps": frames / wall, "peak": peak,
            "bank_mb": bank_bytes / 2**20, "bank_frames": bank_frames,
            "stages": ", ".join(f"{k} {v:.0f}" for k, v in stages.items()),
            "stage_rss": ", ".join(f"{k} {v:.0f}" for k, v in stage_peak.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 10])
    ap.add_argument("--size", choices=sorted(SIZES), default="720p")
    args = ap.parse_args()
    src = MEDIA / "video" / SOURCE
    if not src.is_file():
        print(f"no media at {MEDIA}: nothing to measure", file=sys.stderr)
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU used; source {SOURCE} at {args.size}, "
          f"dub {DUB}, both looped")
    rows = []
    with tempfile.TemporaryDirectory(prefix="lipdub-bench-long-") as tmp:
        folder = Path(tmp)
        base = scaled_copy(src, folder / "base.mp4", *SIZES[args.size])
        for m in sorted(args.minutes):
            rows.append(run_length(folder, base, m))
            print(f"  {m:g} min: done", file=sys.stderr)
    print("\n| input | frames | wall s | fps end to end | peak RSS MiB | bank on disk MiB | bank frames | seconds per stage | peak RSS MiB per stage |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['minutes']:g} min | {r['frames']} | {r['wall']:.0f} | {r['fps']:.1f} | {r['peak']:.0f} | "
              f"{r['bank_mb']:.0f} | {r['bank_frames']} | {r['stages']} | {r['stage_rss']} |")
    print("\nRSS: the child's peak resident set (VmHWM); the texture bank and a long audio mix are files read in\n"
          "blocks, not mapped, so their pages are in the system's file cache, not in this figure.")


if __name__ == "__main__":
    main()
