"""Audio model bench: how well the target mouth shapes follow the real mouth, before any synthesis.

    python bench/audio_model.py [--media DIR] [--clips a,b,...] [--no-prior] [--independent]

For every clip of ``DIR/video`` (default ../shared/media): the speaker's motion (shape model, lag,
audio -> shape model; engine.pipeline.fit.fit_motion) is fitted on the first 70% of the frames with
the clip's own audio and the speaker-library prior of the other clips (leave-one-out, as in
``lipdub eval``); the target shapes for the last 30% are made from the audio alone and compared with
the real mouth. It reads no pixels and renders nothing, so it takes seconds per clip once the
analyses and audio features are cached: the quick loop for audio-model work. ``r_target`` is the
measure of ``lipdub eval``'s column of that name (the eval also leaves out held-out frames where the
rendered face was not found again, so the two can differ slightly). The full eval still decides,
since the render is what counts.

Columns: ``r_target`` (opening r of the target shapes against the real mouth, held-out frames),
``r_plain`` (the same without the articulation calibration), ``z_target`` (sync meter of the target
opening against the clip's own band energy over the whole clip, from a fit on all frames), ``lag``.

``--independent`` adds the same r against dlib's reading of the real held-out mouth
(``r_target_ind``, the reference of the eval's ``r_open_ind``, whose long-clip target is the one
still missed) and ``shift``: the time shift k, -2 to +2 frames, at which the target at frame t + k
follows that reading best (0: on time; +1: the target comes a frame late). It decodes the held-out
frames once per clip and keeps the readings in the cache (``bench/independent``), so later runs stay
quick.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_description, load_average

if TYPE_CHECKING:
    from engine.pipeline.evaluate import Clip

SHIFTS = (-2, -1, 0, 1, 2)


def independent_openings(clip: Clip, frames: np.ndarray, real: np.ndarray) -> np.ndarray:
    """dlib's opening of the original mouth at ``frames`` (NaN where it finds no face), cached per
    clip file (name, size, modification time) and frame set."""
    from engine.media.reader import VideoReader
    from engine.pipeline.crosscheck import IndependentLandmarker
    from engine.runtime.paths import cache_dir

    st = clip.path.stat()
    key = hashlib.sha1(f"{clip.path.name}|{st.st_size}|{st.st_mtime_ns}|{frames.tobytes().hex()}".encode()).hexdigest()
    cached = cache_dir("bench", "independent") / f"{clip.name}-{key[:16]}.npy"
    if cached.exists():
        return np.load(cached)
    ind = IndependentLandmarker()
    out = np.full(len(frames), np.nan)
    pos = {int(f): k for k, f in enumerate(frames)}
    with VideoReader(clip.path, pixel_format="bgr24") as reader:
        for i, img in reader.iter_frames_at(frames):
            box = ind.find_face(img, real[i])
            if box is not None:
                out[pos[int(i)]] = ind.opening(img, real[i], box)
    tmp = cached.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(cached)
    return out


def evaluate(media: Path, names: list[str] | None, use_prior: bool = True,
             independent: bool = False) -> list[dict[str, float | str]]:
    from engine.lipsync.geometry import mouth_opening
    from engine.lipsync.metrics import sync_meter
    from engine.pipeline.evaluate import (
        TRAIN_FRACTION,
        _corr,
        _valid_rows,
        list_clips,
        load_library,
    )
    from engine.pipeline.fit import fit_motion, target_codes

    loaded, library = load_library(media, list_clips(media, names))
    rows: list[dict[str, float | str]] = []
    for clip in loaded.values():
        name = clip.name
        prior = library.prior_for(name) if use_prior else None
        n = clip.n
        split = round(n * TRAIN_FRACTION)
        fit = fit_motion(clip.track, clip.signals, clip.speaking, train=np.arange(n) < split, prior=prior)
        _, real, _ = clip.track.dense(n)
        held = np.arange(split, n)
        held = held[_valid_rows(real[held])]
        op_real = mouth_opening(real[held])

        def r_of(codes: np.ndarray) -> float:
            op = np.array([mouth_opening(fit.shape.apply_to_frame(real[i], codes[i])) for i in held])  # noqa: B023
            return _corr(op, op_real)  # noqa: B023

        codes = target_codes(fit, clip.signals, clip.fps)
        extra: dict[str, float | str] = {}
        if independent:
            ind = independent_openings(clip, held, real)
            by_shift = {}
            for k in SHIFTS:
                # The target k frames later than each held-out frame (clipped at the clip's end).
                later = np.clip(held + k, 0, n - 1)
                op_k = np.array([mouth_opening(fit.shape.apply_to_frame(real[i], codes[j]))
                                 for i, j in zip(held, later, strict=True)])
                by_shift[k] = _corr(op_k, ind)
            extra = {"r_target_ind": by_shift[0], "shift": float(max(SHIFTS, key=lambda k: np.nan_to_num(by_shift[k], nan=-2)))}
        plain = target_codes(fit, clip.signals, clip.fps, calibrate=False)
        whole = fit_motion(clip.track, clip.signals, clip.speaking, prior=prior)
        whole_codes = target_codes(whole, clip.signals, clip.fps)
        z = sync_meter(whole.shape.code_opening(whole_codes), clip.signals.energy_db, clip.fps).z
        rows.append({"clip": name, "seconds": n / clip.fps, "held": float(len(held)), "model": fit.model.kind,
                     "lag": float(fit.lag_frames), "r_target": r_of(codes), "r_plain": r_of(plain),
                     "z_target": float(z), **extra})
    return rows


def weighted(rows: list[dict[str, float | str]], key: str, long_only: bool = False) -> float:
    sel = [r for r in rows if not long_only or float(r["seconds"]) >= 10.0 - 0.15]
    v = np.array([float(r[key]) for r in sel])
    w = np.array([float(r["held"]) for r in sel])
    good = np.isfinite(v)
    return float(np.sum(v[good] * w[good]) / np.sum(w[good])) if good.any() else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--media", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "media")
    ap.add_argument("--clips", default="", help="comma-separated clip names (default: all)")
    ap.add_argument("--no-prior", action="store_true", help="fit each speaker without the library prior")
    ap.add_argument("--independent", action="store_true",
                    help="also measure the targets against dlib's reading of the real mouth (decodes the held-out frames)")
    args = ap.parse_args()
    if not (args.media / "video").is_dir():
        print(f"no clips: {args.media / 'video'} is not a folder", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    rows = evaluate(args.media, [c for c in args.clips.split(",") if c] or None, not args.no_prior, args.independent)
    ind = args.independent
    print(f"machine: {cpu_description()}; load {load_average()}")
    print(f"| {'clip':<28} | {'s':>5} | {'model':<13} | lag | r_target | r_plain | z_target |"
          + (" r_target_ind | shift |" if ind else ""))
    print(f"|{'-' * 30}|{'-' * 7}|{'-' * 15}|-----|----------|---------|----------|" + ("--------------|-------|" if ind else ""))
    for r in rows:
        print(f"| {r['clip']:<28} | {float(r['seconds']):5.1f} | {r['model']:<13} | {int(float(r['lag'])):+3d} | "
              f"{float(r['r_target']):+8.3f} | {float(r['r_plain']):+7.3f} | {float(r['z_target']):+8.1f} |"
              + (f" {float(r['r_target_ind']):+12.3f} | {int(float(r['shift'])):+5d} |" if ind else ""))
    print()
    print(f"r_target frame-weighted: all {weighted(rows, 'r_target'):+.3f}, >= 10 s "
          f"{weighted(rows, 'r_target', True):+.3f}; r_plain: all {weighted(rows, 'r_plain'):+.3f}, >= 10 s "
          f"{weighted(rows, 'r_plain', True):+.3f}"
          + (f"; r_target_ind: all {weighted(rows, 'r_target_ind'):+.3f}, >= 10 s "
             f"{weighted(rows, 'r_target_ind', True):+.3f}" if ind else "")
          + f"  ({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
