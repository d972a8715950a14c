"""Speech detection with silero-vad's ONNX model, run by onnxruntime directly.

The model file is found inside the installed ``silero_vad`` package with ``importlib.util.find_spec``
and never imported: importing ``silero_vad`` sets torch's thread count to 1 for the whole process.
The model is stateful: 512-sample chunks at 16 kHz, each preceded by the previous chunk's last 64
samples, with a (2, 1, 128) recurrent state carried from chunk to chunk. Probabilities become speech
segments with hysteresis (start above ``threshold``, end below ``threshold - 0.15``), minimum speech
and silence durations, and a little padding.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio import cache
from engine.audio.mel import as_samples
from engine.errors import LipdubError
from engine.runtime.jobs import CancelToken, ProgressFn, ProgressReporter, check_cancel
from engine.runtime.rowfile import FileRows

SAMPLE_RATE = 16000
CHUNK = 512  # samples per model step at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous chunk prepended to each step
CHUNK_S = CHUNK / SAMPLE_RATE
_CACHE_VERSION = "silero-v5-onnx-1"

_lock = threading.Lock()
_session: Any = None


class VadModelError(LipdubError):
    """silero-vad's model file is missing or cannot be run."""


@dataclass(frozen=True)
class VadParams:
    """Segmenting parameters. Defaults follow silero-vad's own defaults."""

    threshold: float = 0.5
    neg_threshold: float | None = None  # default: threshold - 0.15
    min_speech_s: float = 0.25
    min_silence_s: float = 0.10
    pad_s: float = 0.03

    @property
    def off_threshold(self) -> float:
        return self.neg_threshold if self.neg_threshold is not None else max(0.01, self.threshold - 0.15)


@dataclass(frozen=True)
class VadResult:
    """Speech segments [(start_s, end_s)] on the track's clock, and the per-chunk probabilities."""

    segments: list[tuple[float, float]]
    probs: np.ndarray  # float32 (n_chunks,), chunk i covers [i, i+1) * CHUNK_S
    duration_s: float
    params: VadParams = field(default_factory=VadParams)

    @property
    def chunk_s(self) -> float:
        return CHUNK_S

    def speech_seconds(self) -> float:
        return float(sum(e - s for s, e in self.segments))


def model_path() -> Path:
    """silero_vad.onnx inside the installed silero_vad package (located without importing it)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadModelError("the Python package silero-vad is not installed", hint="run ./dev.sh setup")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise VadModelError("silero-vad's ONNX model is missing", path, "reinstall silero-vad")
    return path


def _get_session() -> Any:
    global _session
    with _lock:
        if _session is None:
            import onnxruntime as ort

            path = model_path()
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            try:
                sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own exception types
                raise VadModelError(f"cannot load the speech-detection model: {exc}", path) from exc
            names = {i.name for i in sess.get_inputs()}
            if not {"input", "state", "sr"} <= names:
                raise VadModelError(f"unexpected model inputs {sorted(names)}", path,
                                    "this silero-vad version is not supported")
            _session = sess
        return _session


def speech_probabilities(audio16k: np.ndarray | FileRows, cancel: CancelToken | None = None,
                         progress: ProgressFn | None = None) -> np.ndarray:
    """Speech probability per 32 ms chunk (the last partial chunk zero-padded): float32 (n_chunks,)."""
    sess = _get_session()
    x = as_samples(audio16k)
    n = (len(x) + CHUNK - 1) // CHUNK
    state = np.zeros((2, 1, 128), dtype=np.float32)
    sr = np.array(SAMPLE_RATE, dtype=np.int64)
    probs = np.empty(n, dtype=np.float32)
    reporter = ProgressReporter(progress, "speech detection", n)
    for i in range(n):
        if i % 256 == 0:
            check_cancel(cancel)
            reporter.update(i)
        # The chunk and the context before it, zeros before the first sample and after the last
        # (no zero-padded copy of the whole track).
        lo = i * CHUNK - CONTEXT
        a, b = max(lo, 0), min(i * CHUNK + CHUNK, len(x))
        chunk = np.zeros((1, CHUNK + CONTEXT), dtype=np.float32)
        chunk[0, a - lo : b - lo] = x[a:b]
        out, state = sess.run(None, {"input": chunk, "state": state, "sr": sr})
        probs[i] = float(out.reshape(-1)[0])
    reporter.finish()
    return probs


def segments_from_probs(probs: np.ndarray, duration_s: float, params: VadParams | None = None) -> list[tuple[float, float]]:
    """Hysteresis segmentation of per-chunk probabilities into [(start_s, end_s)] speech segments."""
    p = params or VadParams()
    on, off = p.threshold, p.off_threshold
    raw: list[list[float]] = []
    in_speech = False
    start = 0.0
    silence_from: float | None = None
    for i, prob in enumerate(np.asarray(probs, dtype=np.float64)):
        t = i * CHUNK_S
        if in_speech:
            if prob >= on:
                silence_from = None
            elif prob < off:
                if silence_from is None:
                    silence_from = t
                if t + CHUNK_S - silence_from >= p.min_silence_s:
                    raw.append([start, silence_from])
                    in_speech = False
                    silence_from = None
        elif prob >= on:
            in_speech = True
            start = t
            silence_from = None
    if in_speech:
        raw.append([start, silence_from if silence_from is not None else len(probs) * CHUNK_S])
    kept = [s for s in raw if s[1] - s[0] >= p.min_speech_s]
    out: list[tuple[float, float]] = []
    for s, e in kept:
        s = max(0.0, s - p.pad_s)
        e = min(duration_s, e + p.pad_s)
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return [(round(s, 4), round(e, 4)) for s, e in out if e > s]


def detect_speech(
    audio16k: np.ndarray | FileRows,
    params: VadParams | None = None,
    *,
    use_cache: bool = True,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> VadResult:
    """Speech segments of a 16 kHz mono track (probabilities cached per track content)."""
    p = params or VadParams()
    x = as_samples(audio16k)
    duration = len(x) / SAMPLE_RATE
    key = cache.content_key(x, SAMPLE_RATE, _CACHE_VERSION)
    probs = None
    if use_cache:
        hit = cache.load("vad", key)
        if hit is not None and "probs" in hit:
            probs = hit["probs"]
    if probs is None:
        probs = speech_probabilities(x, cancel=cancel, progress=progress)
        if use_cache:
            cache.store("vad", key, probs=probs)
    return VadResult(segments_from_probs(probs, duration, p), probs, duration, p)


def speech_mask(segments: list[tuple[float, float]], times_s: np.ndarray, offset_s: float = 0.0) -> np.ndarray:
    """True where track time ``t - offset_s`` falls inside a speech segment (e.g. per video frame)."""
    t = np.asarray(times_s, dtype=np.float64) - float(offset_s)
    mask = np.zeros(t.shape, dtype=bool)
    for s, e in segments:
        mask |= (t >= s) & (t < e)
    return mask
