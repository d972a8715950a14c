"""Audio features for the lip-sync engine, all on a track's own clock and sampled at video frame times.

- :func:`whisper_features`: Whisper-base encoder features, 512-d at 50 Hz (vector ``i`` describes the
  audio around ``i / 50`` s): the mean of the middle encoder blocks (:mod:`engine.audio.encoder` says
  which and why), for a whole track, in 30 s windows that overlap by 2 s so that no frame sits at a
  window edge without context. Cached on disk per track content.
- :func:`features_at_frames`: those vectors at each video frame's time (from the frame-time table, so
  29.97 fps and VFR stay in sync), with a window of context around each frame, linearly interpolated.
- :func:`log_mel_frames` / :func:`logmel_at_frames`: Whisper's log-mel at 100 Hz, the same way.
- :func:`band_energy_db`: energy of the 1.8-4.5 kHz band per video frame in dB (the sync meter's
  audio signal, QUALITY.md), floored 40 dB under the peak.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.audio import cache
from engine.audio.mel import (
    FRAMES_PER_SECOND,
    HOP,
    N_MELS,
    SAMPLE_RATE,
    WINDOW_FRAMES,
    as_samples,
    log_mel_max,
    log_mel_raw,
    power_blocks,
)
from engine.runtime.jobs import CancelToken, ProgressFn, ProgressReporter, check_cancel
from engine.runtime.paths import cache_dir
from engine.runtime.rowfile import FileRows, RowFile

FEATURE_RATE_HZ = 50.0  # encoder frames per second (mel at 100 Hz, conv stride 2)
FEATURE_DIM = 512
_ENC_PER_WINDOW = WINDOW_FRAMES // 2  # 1500 encoder frames per 30 s window
_MARGIN = 50  # encoder frames (1 s) dropped at inner window edges
_STRIDE = _ENC_PER_WINDOW - 2 * _MARGIN  # 28 s between window starts
# Names what the vectors are: a cache entry, or a speaker-library entry built from them, made with
# other features is not used.
FEATURES_VERSION = "whisper-base-blocks2-4-v1"
_CACHE_VERSION = FEATURES_VERSION
# A track whose vectors take more than this (about 5.5 minutes of audio) keeps them in a file.
FILE_ABOVE_BYTES = 32 * 2**20


@dataclass(frozen=True)
class WhisperFeatures:
    """Whisper-base encoder features for one track.

    ``vectors``: float32 (n, 512); ``vectors[i]`` describes the audio around ``i / rate_hz`` seconds of
    the track (track time 0 = first sample). A long track's vectors (more than ``FILE_ABOVE_BYTES``)
    are rows in a file (:class:`engine.runtime.rowfile.FileRows`: read by rows, a block at a time).
    ``silence``: float32 (512,), the encoder's mean output on digital silence, used for times outside
    the track.
    """

    vectors: np.ndarray | FileRows
    silence: np.ndarray
    duration_s: float
    rate_hz: float = FEATURE_RATE_HZ
    positions: np.ndarray | None = None  # int16 (n,): each vector's index inside its 30 s window

    @property
    def num_frames(self) -> int:
        return int(self.vectors.shape[0])

    def debiased(self, threads: int | None = None, in_place: bool = False) -> WhisperFeatures:
        """The vectors minus the encoder's output for silence at the same window position.

        Whisper's encoder output carries a large part that depends only on the position inside the
        30 s window (positional embeddings): the same sound encoded at two window positions has a
        cosine similarity near 0.45 on real speech, 0.74 after this subtraction (the time-varying
        part agrees either way: per-dimension correlation over time 0.90). Silence maps to zeros.
        ``in_place``: subtract from these vectors instead of a copy (for a caller that owns them and
        keeps only the result: a long track's vectors are 6 MB per minute). Vectors in a file give
        vectors in a file, written a block at a time (in place only in a temporary file of their own).
        """
        if self.positions is None:
            raise ValueError("these features carry no window positions; compute them with whisper_features")
        bias = silence_encoding(threads)
        src = self.vectors
        out: np.ndarray | FileRows
        if isinstance(src, np.ndarray):
            out = src if in_place and src.dtype == np.float32 else np.array(src, np.float32)
            for i in range(0, len(out), 4096):  # a block at a time: no full-size gathered copy of the bias
                out[i : i + 4096] -= bias[self.positions[i : i + 4096].astype(np.int64)]
        else:
            rows = src if in_place and isinstance(src, RowFile) else RowFile.blank(src.shape, np.float32, cache_dir("tmp"))
            for i in range(0, len(src), 4096):
                rows.write(i, src[i : i + 4096] - bias[self.positions[i : i + 4096].astype(np.int64)])
            out = rows
        return WhisperFeatures(
            out,
            np.zeros_like(self.silence),
            self.duration_s,
            self.rate_hz,
            self.positions,
        )


def _mel_for_encoder(audio16k: np.ndarray) -> tuple[np.ndarray, float]:
    """Scaled log-mel (80, n) of the whole track and the scaled value of the zero padding."""
    raw = log_mel_raw(audio16k)
    top = float(raw.max()) if raw.size else -10.0
    pad_value = _pad_value(top)
    # Scaled in place (whisper_scale's arithmetic): a long track's mel is not copied three times over.
    _scale_in_place(raw, top)
    return raw, pad_value


def _pad_value(top: float) -> float:
    # Whisper pads with zeros before its mel: log10(1e-10) = -10, floored at top - 8, then scaled.
    return (max(-10.0, top - 8.0) + 4.0) / 4.0


def _scale_in_place(raw: np.ndarray, top: float) -> None:
    # The padding takes part in Whisper's max too, so the floor is max(top, -10) - 8.
    np.maximum(raw, max(top, -10.0) - 8.0, out=raw)
    raw += 4.0
    raw /= 4.0


def _encode_windows(n_mel: int, window_mel: Callable[[int, int], np.ndarray], pad_value: float,
                    threads: int | None, device: str, progress: ProgressFn | None, cancel: CancelToken | None,
                    out: np.ndarray | RowFile) -> np.ndarray:
    """Encode the track's 30 s windows into ``out`` (n_enc, 512); returns each vector's window position.
    ``window_mel(a, b)``: the scaled log-mel of mel frames ``a .. b`` (clipped to the track)."""
    import torch

    from engine.audio.encoder import FEATURE_BLOCKS, load_encoder
    from engine.audio.whisper_model import default_threads

    encoder = load_encoder(device)
    if encoder.device.type == "cpu":
        # Capped like every torch stage (engine.runtime.compute): decoding and the GUI keep a core.
        n = threads or default_threads()
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    n_enc = (n_mel + 1) // 2
    positions = np.empty(n_enc, dtype=np.int16)
    starts = [0]
    while starts[-1] + _ENC_PER_WINDOW < n_enc:
        starts.append(starts[-1] + _STRIDE)
    reporter = ProgressReporter(progress, "audio features", len(starts))
    for w, s in enumerate(starts):
        check_cancel(cancel)
        window = np.full((1, N_MELS, WINDOW_FRAMES), pad_value, dtype=np.float32)
        seg = window_mel(2 * s, 2 * s + WINDOW_FRAMES)
        window[0, :, : seg.shape[1]] = seg
        enc = encoder.hidden_states(window, FEATURE_BLOCKS)[0]
        keep_from = 0 if w == 0 else _MARGIN
        keep_to = _ENC_PER_WINDOW if w == len(starts) - 1 else _ENC_PER_WINDOW - _MARGIN
        keep_to = min(keep_to, n_enc - s)
        if isinstance(out, np.ndarray):
            out[s + keep_from : s + keep_to] = enc[keep_from:keep_to]
        else:
            out.write(s + keep_from, enc[keep_from:keep_to])
        positions[s + keep_from : s + keep_to] = np.arange(keep_from, keep_to, dtype=np.int16)
        reporter.update(w + 1)
    reporter.finish()
    return positions


def silence_encoding(threads: int | None = None, device: str = "auto") -> np.ndarray:
    """The encoder's output for a 30 s window of digital silence: (1500, 512), cached on disk."""
    key = cache.content_key(np.zeros(1, np.float32), SAMPLE_RATE, _CACHE_VERSION, "silence-window")
    hit = cache.load("whisper", key)
    if hit is not None and "encoding" in hit:
        return hit["encoding"]
    level = (-10.0 + 4.0) / 4.0
    mel = np.full((N_MELS, WINDOW_FRAMES), level, dtype=np.float32)
    enc = np.empty((_ENC_PER_WINDOW, FEATURE_DIM), np.float32)
    _encode_windows(WINDOW_FRAMES, lambda a, b: mel[:, a:b], level, threads, device, None, None, enc)
    cache.store("whisper", key, encoding=enc)
    return enc


def silence_vector(threads: int | None = None, device: str = "auto") -> np.ndarray:
    """The encoder's mean output over a 30 s window of digital silence: (512,)."""
    return silence_encoding(threads, device).mean(axis=0).astype(np.float32)


def whisper_features(
    audio16k: np.ndarray | FileRows,
    *,
    threads: int | None = None,
    device: str = "auto",
    use_cache: bool = True,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> WhisperFeatures:
    """Whisper-base encoder features (512-d, 50 Hz) of a whole 16 kHz mono track.

    About 50 ms per second of audio on one core (torch, float32); cached by the samples' content.
    The track's log-mel is computed a window at a time (a first pass finds its maximum, which
    Whisper's scaling needs), and a long track's vectors go to a file as they are encoded: memory
    does not grow with the track's length beyond its samples (none when they are in a file).
    """
    x = as_samples(audio16k)
    key = cache.content_key(x, SAMPLE_RATE, _CACHE_VERSION, _STRIDE, _MARGIN)
    duration = len(x) / SAMPLE_RATE
    n_mel = len(x) // HOP
    n_enc = (n_mel + 1) // 2
    if use_cache:
        hit = cache.load("whisper", key)
        if hit is not None and {"silence", "positions"} <= hit.keys():
            if "vectors" in hit:
                return WhisperFeatures(hit["vectors"], hit["silence"], duration, FEATURE_RATE_HZ, hit["positions"])
            rows = cache.load_rows("whisper", key, "vectors")
            if rows is not None and rows.shape == (n_enc, FEATURE_DIM) and rows.dtype == np.float32:
                return WhisperFeatures(rows, hit["silence"], duration, FEATURE_RATE_HZ, hit["positions"])
    silence = silence_vector(threads, device)
    vectors: np.ndarray | RowFile
    if n_enc * FEATURE_DIM * 4 > FILE_ABOVE_BYTES:
        vectors = RowFile.blank((n_enc, FEATURE_DIM), np.float32, cache_dir("tmp"))
    else:
        vectors = np.zeros((n_enc, FEATURE_DIM), dtype=np.float32)
    positions = np.zeros(n_enc, dtype=np.int16)
    top = log_mel_max(x)
    if top is not None:

        def window_mel(a: int, b: int) -> np.ndarray:
            raw = log_mel_raw(x, (a, b))
            _scale_in_place(raw, top)
            return raw

        positions = _encode_windows(n_mel, window_mel, _pad_value(top), threads, device, progress, cancel, vectors)
    if use_cache:
        if isinstance(vectors, np.ndarray):
            cache.store("whisper", key, vectors=vectors, silence=silence, positions=positions)
        else:  # the rows first: the entry counts once its arrays are there
            cache.store_rows("whisper", key, "vectors", vectors)
            cache.store("whisper", key, silence=silence, positions=positions)
    return WhisperFeatures(vectors, silence, duration, FEATURE_RATE_HZ, positions)


def window_offsets(context_s: float, step_s: float) -> np.ndarray:
    """Time offsets (s) of the samples in a context window: symmetric around 0, ``step_s`` apart.

    The count is odd so the frame's own time is the middle sample: ``2 * round(context_s / 2 / step_s) + 1``.
    """
    if step_s <= 0:
        raise ValueError("step_s must be positive")
    half = max(0, round(context_s / 2.0 / step_s))
    return (np.arange(-half, half + 1, dtype=np.float64) * step_s).astype(np.float64)


def sample_series(series: np.ndarray | FileRows, rate_hz: float, times_s: np.ndarray,
                  fill: np.ndarray | None = None) -> np.ndarray:
    """Values of a regularly sampled series (n, d) (row ``i`` at ``i / rate_hz``) at arbitrary times.

    Linear interpolation between rows; times outside [0, (n - 1) / rate_hz] get ``fill`` (or the
    nearest row when ``fill`` is None). Output shape: times_s.shape + (d,).
    """
    if not isinstance(series, FileRows):
        series = np.asarray(series)
    t = np.asarray(times_s, dtype=np.float64)
    d = series.shape[1]
    n = series.shape[0]
    flat = t.reshape(-1)
    out = np.empty((flat.size, d), dtype=np.float32)
    if n == 0:
        out[:] = 0.0 if fill is None else fill
        return out.reshape((*t.shape, d))
    pos = flat * rate_hz
    inside = (pos >= -1e-9) & (pos <= (n - 1) + 1e-9)
    p = np.clip(pos, 0.0, n - 1)
    i0 = np.floor(p).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    frac = (p - i0).astype(np.float32)[:, None]
    if isinstance(series, FileRows):
        # Rows in a file: read each row these times need once, in order.
        need, inverse = np.unique(np.concatenate([i0, i1]), return_inverse=True)
        rows = series[need]
        out[:] = rows[inverse[: len(i0)]] * (1.0 - frac) + rows[inverse[len(i0) :]] * frac
    else:
        out[:] = series[i0] * (1.0 - frac) + series[i1] * frac
    if fill is not None:
        out[~inside] = fill
    return out.reshape((*t.shape, d))


def features_at_frames(
    feats_50hz: WhisperFeatures | np.ndarray,
    frame_times_s: np.ndarray,
    offset_s: float = 0.0,
    context_s: float = 0.5,
    step_s: float = 1.0 / FEATURE_RATE_HZ,
) -> np.ndarray:
    """Whisper vectors around each video frame: float32 (n_frames, k, 512).

    ``frame_times_s``: each frame's presentation time on the video timeline (the frame-time table, so
    any rate or VFR is exact). ``offset_s``: where the track's first sample sits on the video timeline
    (a DubTrack's offset; negative when the track starts before the video), so frame time ``t`` reads
    track time ``t - offset_s``. ``k = 2 * round(context_s / 2 / step_s) + 1`` samples from
    ``-context_s / 2`` to ``+context_s / 2`` (25 for the default half second), the middle one at the
    frame's own time. Times outside the track read the encoder's silence vector.
    The result takes n_frames * k * 2 KiB (25 frames of context: 50 KiB per frame), so call it on
    blocks of frames for long videos.
    """
    if isinstance(feats_50hz, WhisperFeatures):
        series, rate, fill = feats_50hz.vectors, feats_50hz.rate_hz, feats_50hz.silence
    else:
        series, rate, fill = np.asarray(feats_50hz), FEATURE_RATE_HZ, None
    times = np.asarray(frame_times_s, dtype=np.float64).reshape(-1) - float(offset_s)
    grid = times[:, None] + window_offsets(context_s, step_s)[None, :]
    return sample_series(series, rate, grid, fill)


def log_mel_frames(audio16k: np.ndarray) -> np.ndarray:
    """Whisper-scaled log-mel of a 16 kHz mono track as rows: float32 (n, 80) at 100 Hz."""
    mel, _ = _mel_for_encoder(np.asarray(audio16k, dtype=np.float32).reshape(-1))
    return np.ascontiguousarray(mel.T)


def logmel_at_frames(
    mel_100hz: np.ndarray,
    frame_times_s: np.ndarray,
    offset_s: float = 0.0,
    context_s: float = 0.5,
    step_s: float = 1.0 / FRAMES_PER_SECOND,
) -> np.ndarray:
    """Log-mel rows (from :func:`log_mel_frames`) around each video frame: float32 (n_frames, k, 80).

    Same conventions as :func:`features_at_frames`; times outside the track read the track's quietest
    level (the value Whisper gives silence).
    """
    mel = np.asarray(mel_100hz, dtype=np.float32)
    fill = mel.min(axis=0) if mel.size else None
    times = np.asarray(frame_times_s, dtype=np.float64).reshape(-1) - float(offset_s)
    grid = times[:, None] + window_offsets(context_s, step_s)[None, :]
    return sample_series(mel, float(FRAMES_PER_SECOND), grid, None if fill is None else np.full(mel.shape[1], fill.min()))


def frame_intervals(frame_times_s: np.ndarray, last_duration_s: float | None = None) -> np.ndarray:
    """(n, 2) [start, end) of each frame from presentation times; the last frame lasts the median."""
    t = np.asarray(frame_times_s, dtype=np.float64).reshape(-1)
    if t.size == 0:
        return np.zeros((0, 2))
    if last_duration_s is None:
        last_duration_s = float(np.median(np.diff(t))) if t.size > 1 else 1.0 / 25.0
    ends = np.append(t[1:], t[-1] + last_duration_s)
    return np.stack([t, ends], axis=1)


def band_energy_db(
    audio16k: np.ndarray | FileRows,
    frame_times_s: np.ndarray,
    offset_s: float = 0.0,
    low_hz: float = 1800.0,
    high_hz: float = 4500.0,
    floor_db: float = 40.0,
    last_duration_s: float | None = None,
) -> np.ndarray:
    """Energy of the ``low_hz``-``high_hz`` band integrated over each video frame, in dB: float32 (n,).

    The mean band power over the frame's interval [t_i, t_i+1), as 10 log10, floored ``floor_db`` under
    the loudest frame (QUALITY.md's sync-meter signal). Frames outside the track get the floor.
    """
    x = as_samples(audio16k)
    iv = frame_intervals(frame_times_s, last_duration_s) - float(offset_s)
    n_fft = 512
    hop = HOP  # 10 ms resolution
    freqs = np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE)
    band = (freqs >= low_hz) & (freqs <= high_hz)
    win_energy = float(np.sum((0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)) ** 2))
    # Band power per hop (Parseval, one-sided: x2 for non-DC bins), as a rate per second; hop j is
    # centred at j * hop samples. Summed a block of hops at a time (no whole-track spectrogram).
    power = np.zeros(len(x) // hop, np.float32)
    for b0, block in power_blocks(x, n_fft=n_fft, hop=hop):
        power[b0 : b0 + len(block)] = block[:, band].sum(axis=1)
    power *= 2.0 / (n_fft * win_energy)
    m = power.shape[0]
    if iv.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    if m == 0:
        return np.full(iv.shape[0], -floor_db, dtype=np.float32)
    # Cumulative energy: hop j covers [(j - 0.5) hop, (j + 0.5) hop) samples.
    edges = (np.arange(m + 1) - 0.5) * hop / SAMPLE_RATE
    cum = np.concatenate([[0.0], np.cumsum(power.astype(np.float64) * hop / SAMPLE_RATE)])
    e0 = np.interp(iv[:, 0], edges, cum)
    e1 = np.interp(iv[:, 1], edges, cum)
    dur = np.maximum(iv[:, 1] - iv[:, 0], 1e-6)
    mean_power = np.maximum(e1 - e0, 0.0) / dur
    db = 10.0 * np.log10(mean_power + 1e-20)
    outside = (iv[:, 1] <= edges[0]) | (iv[:, 0] >= edges[-1])
    valid = db[~outside]
    top = float(valid.max()) if valid.size else 0.0
    db = np.maximum(db, top - floor_db)
    db[outside] = top - floor_db
    return db.astype(np.float32)


def num_feature_frames(num_samples_16k: int) -> int:
    """How many 50 Hz vectors :func:`whisper_features` returns for a track of this many samples."""
    return math.ceil((num_samples_16k // HOP) / 2) if num_samples_16k >= HOP else 0
