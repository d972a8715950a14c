"""Placing a dubbed track on the video's timeline, sample-exactly.

A DubTrack's file sample at time ``trim_in_s`` plays at video time ``offset_s`` (negative: before the
video starts); playback of the file stops at ``trim_out_s`` (None: at its end). Every time is turned
into a sample index once, with ``round(t * rate)``, so placements at any rate land on exact samples.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from engine.errors import BadInputError
from engine.runtime.rowfile import FileRows


class TrackPlacement(Protocol):
    """What placement needs of a DubTrack (engine.project.DubTrack satisfies it)."""

    offset_s: float
    gain_db: float
    trim_in_s: float
    trim_out_s: float | None


def to_samples(t: float, rate: int) -> int:
    """Sample index of time ``t`` at ``rate`` (the one rounding rule used everywhere here)."""
    return round(float(t) * rate)


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def timeline_span(
    n_src: int,
    rate: int,
    offset_s: float,
    trim_in_s: float,
    trim_out_s: float | None,
    video_duration_s: float,
    name: str = "dub track",
) -> tuple[int, int, int, int, list[str]]:
    """Where a track of ``n_src`` samples at ``rate`` lands on the video timeline: ``(a, b, d, n_out,
    warnings)``, the track's samples ``[a, b)`` play at timeline samples ``[d, d + b - a)`` of
    ``n_out = round(video_duration_s * rate)`` (``b <= a`` when nothing plays)."""
    if rate <= 0:
        raise BadInputError(f"sample rate must be positive, got {rate}")
    if video_duration_s < 0:
        raise BadInputError(f"video duration must not be negative, got {video_duration_s}")
    if trim_in_s < 0:
        raise BadInputError(f"{name}: trim in must not be negative, got {trim_in_s:.3f} s")
    n_out = to_samples(video_duration_s, rate)
    warnings: list[str] = []
    src_in = to_samples(trim_in_s, rate)
    src_out = n_src if trim_out_s is None else to_samples(trim_out_s, rate)
    if src_out > n_src:
        warnings.append(
            f"{name}: trim out ({trim_out_s:.3f} s) is past the end of the audio ({n_src / rate:.3f} s); "
            "it plays to its end"
        )
        src_out = n_src
    if src_in >= src_out:
        warnings.append(f"{name}: nothing left to play after trimming (trim in {trim_in_s:.3f} s)")
        return 0, 0, 0, n_out, warnings
    dst = to_samples(offset_s, rate)  # where src_in lands
    # Clip the [src_in, src_out) span against the timeline [0, n_out).
    start_cut = max(0, -dst)
    a = src_in + start_cut
    d = dst + start_cut
    end = min(src_out, a + max(0, n_out - d))
    if src_out - src_in > 0 and dst + (src_out - src_in) > n_out:
        over = (dst + (src_out - src_in) - n_out) / rate
        if dst < n_out:
            warnings.append(
                f"{name} runs {over:.2f} s past the end of the video; the last {over:.2f} s are cut"
            )
    if end <= a or d >= n_out:
        warnings.append(f"{name} does not overlap the video (offset {offset_s:.3f} s): it is not heard")
        return 0, 0, 0, n_out, warnings
    return a, end, d, n_out, warnings


def place_on_timeline(
    samples: np.ndarray,
    rate: int,
    offset_s: float,
    gain_db: float,
    trim_in_s: float,
    trim_out_s: float | None,
    video_duration_s: float,
    name: str = "dub track",
) -> tuple[np.ndarray, list[str]]:
    """Render a track onto the video timeline: float32, ``round(video_duration_s * rate)`` samples.

    ``samples``: (n,) or (n, channels) float at ``rate``. Silence fills the timeline before and after
    the track; a track longer than the video is cut at the video's end, with a warning for the user.
    Returns (samples with the input's channel shape, warnings).
    """
    x = np.asarray(samples, dtype=np.float32)
    a, end, d, n_out, warnings = timeline_span(x.shape[0], rate, offset_s, trim_in_s, trim_out_s,
                                               video_duration_s, name)
    out = np.zeros((n_out, *x.shape[1:]), dtype=np.float32)
    if end > a:
        # In place: no temporary copy of the track (a 10-minute 48 kHz stereo track is 220 MiB).
        np.multiply(x[a:end], np.float32(db_to_gain(gain_db)), out=out[d : d + (end - a)])
    return out, warnings


def place_track(
    samples: np.ndarray, rate: int, placement: TrackPlacement, video_duration_s: float, name: str = "dub track"
) -> tuple[np.ndarray, list[str]]:
    """:func:`place_on_timeline` with the fields of a DubTrack."""
    return place_on_timeline(
        samples, rate, placement.offset_s, placement.gain_db, placement.trim_in_s, placement.trim_out_s,
        video_duration_s, name,
    )


def track_time_offset(placement: TrackPlacement) -> float:
    """Video time of the file's first sample (for sampling features computed on the whole file)."""
    return float(placement.offset_s) - float(placement.trim_in_s)


def trimmed_samples(samples: np.ndarray | FileRows, rate: int,
                    placement: TrackPlacement) -> tuple[np.ndarray | FileRows, float]:
    """The part of a track that plays (trim in to trim out) and the video time of its first sample.

    For the engine's per-track signals (features, VAD, band energy) on the track's own clock: sample
    those at frame times with ``offset_s`` = the returned time, and trimmed-away audio never leaks in.
    Samples in a file give that part of the file (nothing is read).
    """
    x = samples if isinstance(samples, FileRows) else np.asarray(samples)
    a = min(len(x), max(0, to_samples(placement.trim_in_s, rate)))
    b = len(x) if placement.trim_out_s is None else min(len(x), max(a, to_samples(placement.trim_out_s, rate)))
    return (x.part(a, b) if isinstance(x, FileRows) else x[a:b]), float(placement.offset_s)
