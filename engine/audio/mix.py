"""The output mix: dubbed tracks at their offsets and gains, 48 kHz stereo float32 for the AAC encoder.

Placement (offset, trim, gain) is done sample-exactly by :mod:`engine.audio.timeline`; the summing is
done with pydub (``AudioSegment.overlay``) on 32-bit PCM built from the raw samples, in 30 s blocks so
memory stays bounded by the output itself. Sources are pre-attenuated (24 dB, more when the sum of their
peaks calls for it) so the 32-bit sum never saturates; the result is brought back and, when its peak
exceeds the ceiling (-1 dBFS), scaled down as a whole so it never clips.

Modes: the dub alone; the dub plus the original audio as a second output track; or one track with the
original ducked under the dub while the dub's VAD says speech (look-ahead attack, slower release).
"""

from __future__ import annotations

import enum
import os
import warnings as pywarnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.audio.pcm import PcmFile
from engine.audio.timeline import TrackPlacement, db_to_gain, timeline_span, to_samples
from engine.audio.tracks import LoadedTrack, decode_for_output
from engine.audio.vad import detect_speech
from engine.errors import BadInputError, MediaError
from engine.runtime.jobs import CancelToken, ProgressFn, ProgressReporter, check_cancel
from engine.runtime.paths import cache_dir
from engine.runtime.rowfile import FileRows

OUTPUT_RATE = 48000
OUTPUT_CHANNELS = 2
_HEADROOM = 10 ** (-24 / 20)  # pre-attenuation of each source before the 32-bit sum
_INT_SCALE = float(2**31 - 1)
_BLOCK_S = 30.0
# A timeline buffer larger than this (about 5.8 minutes of 48 kHz stereo) is kept in a temporary file:
# the mix of a long video stays out of memory while it is built and while the export encodes it.
FILE_ABOVE_BYTES = 64 * 2**20
Buffer = np.ndarray | PcmFile  # a (n, 2) float32 timeline track


class MixMode(str, enum.Enum):
    DUB_ONLY = "dub_only"
    DUB_AND_ORIGINAL = "dub_and_original"
    ORIGINAL_DUCKED = "original_ducked"


@dataclass(frozen=True)
class MixSettings:
    mode: MixMode = MixMode.DUB_ONLY
    ceiling_dbfs: float = -1.0
    duck_db: float = -18.0  # the original's level under the dub's speech
    duck_attack_s: float = 0.08  # ramp down, starting this long before the dub speaks
    duck_release_s: float = 0.35  # ramp back up after the dub stops
    edge_fade_s: float = 0.005  # short fades where a track starts/ends on the timeline (no clicks)


@dataclass
class OutputTrack:
    """One output audio track: float32 (n, 2) at 48 kHz, peaks at or below the ceiling; a
    :class:`engine.audio.pcm.PcmFile` when longer than ``FILE_ABOVE_BYTES`` (``np.asarray`` reads it)."""

    label: str
    samples: np.ndarray | PcmFile
    peak_dbfs: float
    gain_db: float  # the whole-track gain applied to stay under the ceiling (0 when none was needed)


@dataclass
class MixResult:
    tracks: list[OutputTrack]
    sample_rate: int = OUTPUT_RATE
    warnings: list[str] = field(default_factory=list)


@dataclass
class DubInput:
    """A dubbed track for the mix: the loaded audio and its placement (an engine.project.DubTrack)."""

    track: LoadedTrack
    placement: TrackPlacement
    name: str = ""


def _segment(block: np.ndarray, headroom: float):  # -> pydub.AudioSegment
    with pywarnings.catch_warnings():
        # pydub imports the standard library's audioop (deprecated in 3.12) and looks for an ffmpeg
        # binary it does not need here: raw PCM in, raw PCM out.
        pywarnings.simplefilter("ignore", DeprecationWarning)
        pywarnings.simplefilter("ignore", RuntimeWarning)
        from pydub import AudioSegment

    pcm = np.clip(np.rint(block * (headroom * _INT_SCALE)), -_INT_SCALE, _INT_SCALE).astype("<i4")
    return AudioSegment(data=pcm.tobytes(), sample_width=4, frame_rate=OUTPUT_RATE, channels=OUTPUT_CHANNELS)


def _from_segment(seg, frames: int, headroom: float) -> np.ndarray:
    data = np.frombuffer(seg.raw_data, dtype="<i4").reshape(-1, OUTPUT_CHANNELS)[:frames]
    return (data.astype(np.float64) / (headroom * _INT_SCALE)).astype(np.float32)


def _sum_with_pydub(sources: list[Buffer], n: int, cancel: CancelToken | None,
                    reporter: ProgressReporter | None) -> Buffer:
    """The sum of the sources, written over the first source block by block (they are ours to
    overwrite): the mix costs no second full-length buffer."""
    if not sources:
        return _new_buffer(n)
    out = sources[0]
    # The sum of the sources' peaks bounds the mix's peak: scale so it always fits the 32-bit range.
    peak_sum = sum(_peak(src) for src in sources)
    headroom = min(_HEADROOM, 0.99 / max(peak_sum, 1e-9))
    block = _block_len()
    for b0 in range(0, n, block):
        check_cancel(cancel)
        b1 = min(n, b0 + block)
        mixed = _segment(sources[0][b0:b1], headroom)
        for src in sources[1:]:
            mixed = mixed.overlay(_segment(src[b0:b1], headroom))
        out[b0:b1] = _from_segment(mixed, b1 - b0, headroom)
        if reporter is not None:
            reporter.update(b1)
    return out


def _new_buffer(n: int) -> Buffer:
    """A zeroed (n, 2) float32 track: in memory, or in a temporary file when it is long."""
    if n * OUTPUT_CHANNELS * 4 > FILE_ABOVE_BYTES:
        # In the user's cache folder, on disk: the system's temporary folder is often in memory (tmpfs).
        return PcmFile(n, OUTPUT_CHANNELS, directory=str(cache_dir("tmp")))
    return np.zeros((n, OUTPUT_CHANNELS), dtype=np.float32)


def _block_len() -> int:
    """Samples the mix works on at a time (``_BLOCK_S``)."""
    return to_samples(_BLOCK_S, OUTPUT_RATE)


def _peak(x: Buffer) -> float:
    step = _block_len()
    return max((float(np.abs(x[b0 : b0 + step]).max()) for b0 in range(0, len(x), step)), default=0.0)


def _fade_gain(t0: int, t1: int, start: int, end: int, fade: int) -> np.ndarray | None:
    """Gain of the timeline samples [t0, t1) for linear fades over ``fade`` samples at the start and
    end of the [start, end) region (None where no fade reaches them)."""
    if fade <= 1 or end - start < 2 * fade:
        return None
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    t = np.arange(t0, t1)
    head = (t >= start) & (t < start + fade)
    tail = (t >= end - fade) & (t < end)
    if not head.any() and not tail.any():
        return None
    g = np.ones(t1 - t0, np.float32)
    g[head] = ramp[t[head] - start]
    g[tail] *= ramp[::-1][t[tail] - (end - fade)]
    return g


def _place(x: np.ndarray | FileRows, n: int, placement: TrackPlacement | None, video_duration_s: float, name: str,
           fade: tuple[int, int, int] | None = None, offset_s: float = 0.0) -> tuple[Buffer, list[str]]:
    """``x`` (48 kHz stereo) placed on a new timeline buffer of ``n`` samples, a block at a time.

    ``placement``: the track's offset, trims and gain (None: whole, at ``offset_s``, unit gain);
    ``fade``: (start, end, length) on the timeline of the edge fades."""
    if placement is None:
        a, b, d, _, warnings = timeline_span(len(x), OUTPUT_RATE, offset_s, 0.0, None, video_duration_s, name)
        gain = np.float32(1.0)
    else:
        a, b, d, _, warnings = timeline_span(len(x), OUTPUT_RATE, placement.offset_s, placement.trim_in_s,
                                             placement.trim_out_s, video_duration_s, name)
        gain = np.float32(db_to_gain(placement.gain_db))
    out = _new_buffer(n)
    step = _block_len()
    for i in range(a, b, step):
        j = min(b, i + step)
        t0 = d + (i - a)
        chunk = np.multiply(x[i:j], gain, dtype=np.float32)
        g = None if fade is None else _fade_gain(t0, t0 + (j - i), *fade)
        if g is not None:
            chunk *= g[:, None]
        out[t0 : t0 + (j - i)] = chunk
    return out, warnings


def _limit(samples: Buffer, ceiling_dbfs: float) -> tuple[float, float]:
    """Scale down in place so the peak is at most the ceiling. Returns (peak dBFS after, gain dB)."""
    peak = _peak(samples)
    ceiling = 10 ** (ceiling_dbfs / 20)
    gain_db = 0.0
    if peak > ceiling:
        g = ceiling / peak
        step = _block_len()
        for b0 in range(0, len(samples), step):
            block = samples[b0 : b0 + step] * np.float32(g)
            # float32 rounding can leave a sample a hair above: clamp those few.
            np.clip(block, -ceiling, ceiling, out=block)
            samples[b0 : b0 + step] = block
        gain_db = 20 * np.log10(g)
        peak = _peak(samples)
    return (20 * np.log10(peak) if peak > 0 else -np.inf), gain_db


def speech_on_timeline(dub: DubInput, video_duration_s: float) -> list[tuple[float, float]]:
    """The dub's speech segments mapped to video time (clipped to its trim and the video)."""
    p = dub.placement
    trim_out = p.trim_out_s if p.trim_out_s is not None else dub.track.duration_s
    out = []
    for s, e in detect_speech(dub.track.audio16k).segments:
        s, e = max(s, p.trim_in_s), min(e, trim_out)
        if e <= s:
            continue
        vs, ve = p.offset_s + (s - p.trim_in_s), p.offset_s + (e - p.trim_in_s)
        vs, ve = max(0.0, vs), min(video_duration_s, ve)
        if ve > vs:
            out.append((vs, ve))
    return sorted(out)


def duck_gain(segments: list[tuple[float, float]], n: int, settings: MixSettings) -> np.ndarray:
    """Per-sample linear gain for the original: ``duck_db`` under speech, ramps around it."""
    if not segments:
        return np.ones(n, dtype=np.float32)
    merged: list[list[float]] = []
    gap = settings.duck_attack_s + settings.duck_release_s
    for s, e in sorted(segments):
        if merged and s - merged[-1][1] <= gap:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    xs: list[float] = []
    ys: list[float] = []
    for s, e in merged:
        xs += [s - settings.duck_attack_s, s, e, e + settings.duck_release_s]
        ys += [0.0, settings.duck_db, settings.duck_db, 0.0]
    t = np.arange(n, dtype=np.float64) / OUTPUT_RATE
    db = np.interp(t, xs, ys, left=0.0, right=0.0)
    return (10 ** (db / 20)).astype(np.float32)


def _load_original(original: LoadedTrack | str | os.PathLike[str] | np.ndarray, n: int,
                   offset_s: float, warnings: list[str]) -> Buffer | None:
    x: np.ndarray | FileRows
    if isinstance(original, np.ndarray):
        x = np.asarray(original, dtype=np.float32)
        if x.ndim == 1:
            x = np.repeat(x[:, None], 2, axis=1)
        if x.shape[1] != 2:
            raise BadInputError(f"the original audio must be (n, 2) at 48 kHz, got shape {x.shape}")
    else:
        try:
            if isinstance(original, LoadedTrack):
                x = original.at(OUTPUT_RATE, OUTPUT_CHANNELS, FILE_ABOVE_BYTES)
            else:
                x = decode_for_output(Path(original), OUTPUT_RATE, OUTPUT_CHANNELS, file_above_bytes=FILE_ABOVE_BYTES)
        except MediaError as exc:
            warnings.append(f"the original audio cannot be used: {exc.user_text()}")
            return None
    placed, w = _place(x, n, None, n / OUTPUT_RATE, "the original audio", offset_s=offset_s)
    # A video's own audio commonly outlasts its last frame by a few packets: not worth a warning.
    warnings.extend(m for m in w if "past the end of the video" not in m)
    return placed


def mix_output(
    dubs: Sequence[DubInput],
    video_duration_s: float,
    original: LoadedTrack | str | os.PathLike[str] | np.ndarray | None = None,
    settings: MixSettings | None = None,
    original_offset_s: float = 0.0,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> MixResult:
    """Mix the dubbed tracks for export: float32 (n, 2) tracks at 48 kHz that never clip.

    ``original``: the video's own audio (a file, a LoadedTrack, or float32 (n, 2) at 48 kHz), needed by
    the modes that use it; when it is missing or unreadable the mix falls back to the dub alone with a
    warning. ``original_offset_s``: video time of the original audio's first sample (its start time
    relative to the first video frame).
    """
    s = settings or MixSettings()
    n = to_samples(video_duration_s, OUTPUT_RATE)
    warnings: list[str] = []
    reporter = ProgressReporter(progress, "audio mix", n)

    # Each source is placed on its own timeline buffer (a temporary file for a long video), and its
    # decoded samples are dropped before the next is decoded.
    sources: list[Buffer] = []
    for i, dub in enumerate(dubs):
        check_cancel(cancel)
        name = dub.name or dub.track.path.name or f"dub track {i + 1}"
        p = dub.placement
        start = max(0, to_samples(p.offset_s, OUTPUT_RATE))
        trim_out = min(dub.track.duration_s, p.trim_out_s if p.trim_out_s is not None else np.inf)
        end = min(n, to_samples(p.offset_s + (trim_out - p.trim_in_s), OUTPUT_RATE))
        # A long dub is decoded into a file (FILE_ABOVE_BYTES), never held whole at 48 kHz stereo.
        placed, w = _place(dub.track.at(OUTPUT_RATE, OUTPUT_CHANNELS, FILE_ABOVE_BYTES), n, p, video_duration_s, name,
                           fade=(start, end, to_samples(s.edge_fade_s, OUTPUT_RATE)))
        warnings.extend(w)
        sources.append(placed)
    if not dubs:
        warnings.append("no dubbed track to mix: the dub is silent")

    orig: Buffer | None = None
    if s.mode is not MixMode.DUB_ONLY:
        if original is None:
            warnings.append("the original audio is missing: exporting the dub alone")
        else:
            orig = _load_original(original, n, original_offset_s, warnings)

    if s.mode is MixMode.ORIGINAL_DUCKED and orig is not None:
        segments = [seg for d in dubs for seg in speech_on_timeline(d, video_duration_s)]
        block = _block_len()
        for b0 in range(0, n, block):
            g = duck_gain([(a - b0 / OUTPUT_RATE, b - b0 / OUTPUT_RATE) for a, b in segments],
                          min(block, n - b0), s)
            orig[b0 : b0 + block] = orig[b0 : b0 + block] * g[:, None]
        sources.append(orig)

    dub_mix = _sum_with_pydub(sources, n, cancel, reporter)
    peak, gain = _limit(dub_mix, s.ceiling_dbfs)
    label = "Dub + original (ducked)" if s.mode is MixMode.ORIGINAL_DUCKED and orig is not None else "Dub"
    tracks = [OutputTrack(label, dub_mix, peak, gain)]
    if s.mode is MixMode.DUB_AND_ORIGINAL and orig is not None:
        orig_out = orig
        peak, gain = _limit(orig_out, s.ceiling_dbfs)
        tracks.append(OutputTrack("Original", orig_out, peak, gain))
    reporter.finish()
    return MixResult(tracks, OUTPUT_RATE, warnings)
