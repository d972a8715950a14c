"""Audio pipeline speed: seconds of work per minute of audio, printed as a table.

Input: the longer speech clips of ../shared/media/audio concatenated to about a minute, written once
to a temporary AAC (.m4a, 48 kHz stereo) file, the most common dub format. Rows:

- decode: ``load_track`` (PyAV decode + resample to 16 kHz + down-mix)
- Whisper model load (cold, once per process; joined model already in the cache)
- Whisper features: ``whisper_features`` (log-mel + Whisper-base encoder blocks 1-4 in torch, float32),
  cache off; the encoder's load (reading its weights from the model file) is its own row
- VAD: ``detect_speech`` (silero-vad ONNX), cache off
- language detection: ``detect_language`` (VAD + one 30 s window through the encoder)
- total of decode + features + VAD + language
- extras: transcript (beam 1, word timestamps), waveform peaks, output mix (48 kHz stereo)

Each number is the median of ``--runs`` runs, per Whisper thread count in ``--threads``. The machine is
shared with other work: the load average is printed before and after.
Run: ``.venv/bin/python bench/audio.py [--runs 3] [--threads 1,2]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import cpu_description, load_average  # noqa: E402

from engine.audio import (  # noqa: E402
    DubInput,
    detect_language,
    detect_speech,
    load_track,
    mix_output,
    transcribe,
    waveform_peaks,
    whisper_features,
    whisper_model,
)
from engine.audio.encoder import load_encoder  # noqa: E402
from engine.media import decode_audio  # noqa: E402
from engine.media.writer import write_audio  # noqa: E402

MEDIA = Path(os.environ.get("LIPDUB_SHARED_MEDIA", ROOT.parent / "shared" / "media")) / "audio"


@dataclass
class Placement:
    offset_s: float = 0.0
    gain_db: float = 0.0
    trim_in_s: float = 0.0
    trim_out_s: float | None = None








def build_minute(tmp: Path, target_s: float) -> Path:
    """The longest clips, resampled to 48 kHz stereo and joined until ``target_s``, as AAC in .m4a."""
    clips = sorted(MEDIA.glob("dub_*.*"), key=lambda p: -p.stat().st_size)
    parts: list[np.ndarray] = []
    total = 0
    for clip in clips:
        a = decode_audio(clip, sample_rate=48000, channels=2).samples
        parts.append(a)
        total += len(a)
        if total >= target_s * 48000:
            break
    x = np.concatenate(parts)[: int(target_s * 48000)]
    return write_audio(tmp / "minute.m4a", x, 48000)


def timed(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="Whisper thread counts to measure (features: torch; language, transcript: CTranslate2)")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the test audio")
    args = ap.parse_args()
    if not MEDIA.is_dir():
        print(f"real clips not found at {MEDIA}")
        return 1
    print(f"machine: {cpu_description()}")
    print(f"load average before: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("LIPDUB_CACHE_DIR", str(Path(tmp, "cache")))
        path = build_minute(Path(tmp), args.seconds)
        track = load_track(path)
        minutes = track.duration_s / 60.0
        print(f"input: {path.name}, {track.duration_s:.1f} s, AAC {track.source_rate} Hz, "
              f"{track.source_channels} ch; runs per row: {args.runs} (median)")
        whisper_model.whisper_model_dir()  # join + verify once, outside the timings
        x = track.audio16k
        rows: list[tuple[str, str, float]] = []
        decode = timed(lambda: load_track(path), args.runs)
        vad = timed(lambda: detect_speech(x, use_cache=False), args.runs)
        peaks = timed(lambda: waveform_peaks(x, use_cache=False), args.runs)
        dub = DubInput(track, Placement(offset_s=0.5, gain_db=-3.0))
        mix = timed(lambda: mix_output([dub], track.duration_s), args.runs)
        rows += [("decode (load_track)", "-", decode), ("VAD (silero ONNX)", "1", vad)]
        encoder_loaded = False
        for n in [int(v) for v in args.threads.split(",") if v.strip()]:
            t = time.perf_counter()
            whisper_model.load_whisper(n)
            rows.append(("Whisper model load (cold, once)", str(n), time.perf_counter() - t))
            if not encoder_loaded:
                t = time.perf_counter()
                load_encoder("cpu")
                rows.append(("feature encoder load (torch, cold, once)", "-", time.perf_counter() - t))
                encoder_loaded = True
            feats = timed(lambda n=n: whisper_features(x, threads=n, use_cache=False), args.runs)
            lang = timed(lambda n=n: detect_language(x, threads=n), args.runs)
            rows += [("Whisper features", str(n), feats), ("language detection", str(n), lang),
                     ("total: decode + features + VAD + language", str(n), decode + feats + vad + lang)]
            tr = timed(lambda n=n: transcribe(x, beam_size=1, threads=n), 1)
            rows.append(("transcript (beam 1, word times; 1 run)", str(n), tr))
        rows += [("waveform peaks (4 levels)", "-", peaks), ("output mix, 1 dub, 48 kHz stereo", "-", mix)]
    print(f"load average after: {load_average()}")
    print()
    print(f"| {'stage':<44} | threads | s per minute of audio | x real time |")
    print(f"|{'-' * 46}|---------|-----------------------|-------------|")
    for name, threads, sec in rows:
        per_min = sec / minutes
        print(f"| {name:<44} | {threads:>7} | {per_min:>21.3f} | {60.0 / per_min if per_min else float('inf'):>11.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
