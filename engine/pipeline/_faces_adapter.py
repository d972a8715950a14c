"""FaceAnalysis (engine.faces) -> the engine's FaceTrack, one per identity."""

from __future__ import annotations

import numpy as np

from engine.pipeline.tracks import FaceTrack
from engine.runtime.rowfile import FileRows


def convert(analysis: object) -> list[FaceTrack]:
    from engine.faces import FaceAnalysis

    if not isinstance(analysis, FaceAnalysis):
        raise TypeError(f"expected a FaceAnalysis, got {type(analysis).__name__}")
    cuts = np.asarray(sorted(int(c) for c in analysis.cuts), np.int64)
    out = []
    for ident in analysis.identities:
        flags = np.asarray(ident.flags)
        # The analysis's own float32 arrays (or rows in files), shared, not copied: a long video's
        # largest arrays.
        lm = _shared(ident.landmarks)
        usable = (flags == 0) & _finite_rows(lm)
        raw = _shared(ident.landmarks_raw)
        raw_ok = raw.shape[:2] == lm.shape[:2] and bool(_finite_rows(raw).all())
        out.append(FaceTrack(str(ident.id), np.asarray(ident.frames), lm, np.asarray(ident.pose), usable, cuts,
                             raw if raw_ok else None))
    return out


def _shared(a: np.ndarray | FileRows) -> np.ndarray | FileRows:
    return a if isinstance(a, FileRows) else np.asarray(a)


def _finite_rows(a: np.ndarray | FileRows, block: int = 2048) -> np.ndarray:
    """Per row: every value finite (read a block of rows at a time)."""
    out = np.zeros(len(a), bool)
    for i in range(0, len(a), block):
        out[i : i + block] = np.isfinite(a[i : i + block]).reshape(min(block, len(a) - i), -1).all(axis=1)
    return out
