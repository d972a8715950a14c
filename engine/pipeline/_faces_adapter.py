"""FaceAnalysis (engine.faces) -> the engine's FaceTrack, one per identity."""

from __future__ import annotations

import numpy as np

from engine.pipeline.tracks import FaceTrack


def convert(analysis: object) -> list[FaceTrack]:
    from engine.faces import FaceAnalysis

    if not isinstance(analysis, FaceAnalysis):
        raise TypeError(f"expected a FaceAnalysis, got {type(analysis).__name__}")
    cuts = np.asarray(sorted(int(c) for c in analysis.cuts), np.int64)
    out = []
    for ident in analysis.identities:
        flags = np.asarray(ident.flags)
        # The analysis's own float32 arrays, shared, not copied (a long video's largest arrays).
        lm = np.asarray(ident.landmarks)
        usable = (flags == 0) & np.isfinite(lm).all(axis=(1, 2))
        raw = np.asarray(ident.landmarks_raw)
        raw_ok = raw.shape[:2] == lm.shape[:2] and bool(np.isfinite(raw).all())
        out.append(FaceTrack(str(ident.id), np.asarray(ident.frames), lm, np.asarray(ident.pose), usable, cuts,
                             raw if raw_ok else None))
    return out
